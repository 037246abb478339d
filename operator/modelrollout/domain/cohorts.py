"""Cohorts compiled to what routers write: header regexes, anchored at both ends whatever the
router (Traefik matches a header regex as a substring: `v2.*` also matched `xv2`), a cookie as a
regex on the Cookie header (the Gateway API has no cookie match). Pure; the step machine asks
whether the route carries a step's cohort, the routes put it in the plan."""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.api.v1alpha1 import BUCKETS, Buckets, Cohort
from modelrollout.api.v1alpha1.strategy import ValueMatch

# The header a bucket rule stamps on the request with its arm's version, so that the model
# server's telemetry and the labels joined to its answers follow the arm.
ARM_HEADER = "x-modelrollout-arm"
_HEX = "0123456789abcdef"

# One rule's match: alternatives (OR), each a list of header conditions (AND).
Matches = tuple[tuple["HeaderRegex", ...], ...]


@dataclass(frozen=True)
class HeaderRegex:
    """A header whose whole value matches `regex` (RE2, anchored at both ends)."""

    name: str
    regex: str


# RE2's metacharacters: escaped so that an exact value matches itself only
_META = frozenset("\\.+*?()|[]{}^$")


def _literal(value: str) -> str:
    return "".join(f"\\{c}" if c in _META else c for c in value)


def _anchored(match: ValueMatch) -> str:
    return f"^{_literal(match.exact)}$" if match.exact is not None else f"^(?:{match.regex})$"


def compile_cohort(cohort: Cohort) -> Matches:
    """The cohort as header regexes, anchored at both ends whatever the router (Traefik matches
    a header regex as a substring: `v2.*` also matched `xv2`). A cookie becomes a regex on the
    Cookie header, for routers with no cookie match (the Gateway API has none). Buckets: the
    treatment buckets' match (the rule that sends them to the canary)."""
    if cohort.buckets is not None:
        return bucket_matches(cohort.buckets)[0]
    alternatives = []
    for item in cohort.match or []:
        conditions = [HeaderRegex(h.name, _anchored(h)) for h in item.headers]
        for c in item.cookies:
            value = _literal(c.exact) if c.exact is not None else f"(?:{c.regex})"
            conditions.append(HeaderRegex("Cookie", f"^(?:.*;\\s*)?{_literal(c.name)}={value}"
                                                    "(?:;.*)?$"))  # fmt: skip
        alternatives.append(tuple(conditions))
    return tuple(alternatives)


def bucket_counts(buckets: Buckets) -> tuple[int, int]:
    """How many of the 256 buckets are treatment and control (each at least one)."""
    return (max(1, round(BUCKETS * buckets.treatment / 100)),
            max(1, round(BUCKETS * buckets.control / 100)))  # fmt: skip


def _digit(low: int, high: int) -> str:
    """A character class for the hex digits low..high (0-15, either case): [0-3], [8-9a-bA-B]."""

    def span(a: int, b: int) -> str:
        return _HEX[a] if a == b else f"{_HEX[a]}-{_HEX[b]}"

    parts = [span(low, min(high, 9))] if low <= 9 else []
    if high >= 10:
        letters = span(max(low, 10), high)
        parts += [letters, letters.upper()]
    return "[" + "".join(parts) + "]"


def _range(low: int, high: int) -> str:
    """An RE2 alternation for the two-hex-digit values low..high (inclusive): the first digits
    whose every second digit is in range as one class, then the partial ones."""
    full = [f for f in range(low // 16, high // 16 + 1) if low <= f * 16 and f * 16 + 15 <= high]
    parts = [_digit(full[0], full[-1]) + _digit(0, 15)] if full else []
    for first in sorted({low // 16, high // 16} - set(full)):
        parts.append(_digit(first, first) + _digit(max(low, first * 16) % 16,
                                                   min(high, first * 16 + 15) % 16))  # fmt: skip
    return "|".join(parts)


def bucket_of(key: str) -> int | None:
    """The bucket a key falls in, by its last two hex digits; None when they are not hex."""
    try:
        return int(key[-2:], 16) if len(key) >= 2 else None
    except ValueError:
        return None


def bucket_matches(buckets: Buckets) -> tuple[Matches, Matches]:
    """The treatment buckets' match and the control buckets' (the first `treatment` buckets,
    then the next `control`), each a regex on the key's last two hex digits."""
    treatment, control = bucket_counts(buckets)

    def on(low: int, high: int) -> Matches:
        return ((HeaderRegex(buckets.key, f"^.*(?:{_range(low, high)})$"),),)

    return on(0, treatment - 1), on(treatment, treatment + control - 1)


__all__ = [
    "ARM_HEADER",
    "HeaderRegex",
    "Matches",
    "bucket_counts",
    "bucket_matches",
    "bucket_of",
    "compile_cohort",
]
