"""Cohorts compiled to what routers write: header regexes, anchored at both ends whatever the
router (Traefik matches a header regex as a substring: `v2.*` also matched `xv2`), a cookie as a
regex on the Cookie header (the Gateway API has no cookie match). Pure; the step machine asks
whether the route carries a step's cohort, the routes put it in the plan."""

from __future__ import annotations

from dataclasses import dataclass

from modelrollout.api.v1alpha1 import Cohort
from modelrollout.api.v1alpha1.strategy import ValueMatch

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
    Cookie header, for routers with no cookie match (the Gateway API has none)."""
    alternatives = []
    for item in cohort.match:
        conditions = [HeaderRegex(h.name, _anchored(h)) for h in item.headers]
        for c in item.cookies:
            value = _literal(c.exact) if c.exact is not None else f"(?:{c.regex})"
            conditions.append(HeaderRegex("Cookie", f"^(?:.*;\\s*)?{_literal(c.name)}={value}"
                                                    "(?:;.*)?$"))  # fmt: skip
        alternatives.append(tuple(conditions))
    return tuple(alternatives)


__all__ = ["HeaderRegex", "Matches", "compile_cohort"]
