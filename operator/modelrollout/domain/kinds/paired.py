"""Paired: the candidate against the champion on the same mirrored requests, from the shadow
step's comparator counts (docs/analysis.md, "Paired"). Every test holds at any look: a confidence
sequence on a paired mean, or Robbins' beta-binomial mixture bounds where events are few."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from modelrollout.api.v1alpha1 import PairedSignal, SignalResult, Verdict
from modelrollout.domain import stats
from modelrollout.domain.signals import Plan, arm_samples, error, result

# A shadow is judged in its own step; promotion is gated by the kinds that judge users' traffic.
GATES_PROMOTION = False
# Below this many discordant pairs (or concordant ones) the normal approximation of a paired
# mean is poor: the exact mixture bounds instead.
MIN_EVENTS = 10


@dataclass(frozen=True)
class Pairs:
    """What the comparator counted since the step began, by its labels (docs/arms.md):
    `pairs` and `disagreements` by pair ("candidate": candidate against champion; "noise": the
    champion against itself); `labelled` by who was right ("both", "champion", "candidate",
    "neither"); `one_sided` by the side that failed alone; `mirrored`, the requests it got;
    `ratios`, cumulative counts of the pairs whose latency ratio (the candidate's over the
    champion's) is at or below each edge, the total under +Inf."""

    pairs: dict[str, float] = field(default_factory=dict)
    disagreements: dict[str, float] = field(default_factory=dict)
    labelled: dict[str, float] = field(default_factory=dict)
    one_sided: dict[str, float] = field(default_factory=dict)
    mirrored: float = 0.0
    ratios: dict[float, float] = field(default_factory=dict)


def _verdict(lower: float, upper: float, bound: float, *, fail_above: bool) -> Verdict:
    """Fail once the interval is entirely on the wrong side of `bound`, Pass once entirely on
    the right side, Inconclusive while it straddles it."""
    if (lower > bound) if fail_above else (upper < bound):
        return "Fail"
    if (upper < bound) if fail_above else (lower > bound):
        return "Pass"
    return "Inconclusive"


def _say(verdict: Verdict, failed: str, passed: str, undecided: str) -> str:
    return failed if verdict == "Fail" else passed if verdict == "Pass" else undecided


def _difference(a: tuple[float, float], b: tuple[float, float], n: float,
                alpha: float) -> stats.Interval:  # fmt: skip
    """(a - b) / n for two disjoint counts of the same n pairs, always valid: a confidence
    sequence on the mean of the pairs' -1/0/+1 differences, or, with few events, each count's
    exact mixture bounds at alpha / 2 (the union bound)."""
    (x, _), (y, _) = a, b
    d = (x - y) / n
    discordant = x + y
    if min(discordant, n - discordant) < MIN_EVENTS:
        lx, ux = stats.bernoulli_bounds(x, n, alpha / 2)
        ly, uy = stats.bernoulli_bounds(y, n, alpha / 2)
        return stats.Interval(d, lx - uy, ux - ly)
    variance = max(discordant / n - d * d, 0.0)
    return stats.Estimate(d, math.sqrt(variance / n), n).interval(alpha)


def _disagreement(name: str, signal: PairedSignal, m: Pairs, at: str) -> SignalResult:
    p1, d1 = m.pairs.get("candidate", 0.0), m.disagreements.get("candidate", 0.0)
    p0, d0 = m.pairs.get("noise", 0.0), m.disagreements.get("noise", 0.0)
    if p1 <= 0:
        return result(name, "paired", "NoData", at, message="no pairs compared yet")
    bound = signal.max if signal.max is not None else 0.0
    r1, r0 = d1 / p1, (d0 / p0 if p0 > 0 else 0.0)
    if min(p1, p0) < max(signal.min_samples, 1):
        return result(name, "paired", "Inconclusive", at, value=r1 - r0, bound=bound,
                      canary=r1, stable=r0, samples=arm_samples(p1, p0),
                      message=f"{int(p1)} pairs and {int(p0)} noise pairs; need "
                      f"{signal.min_samples} each")  # fmt: skip
    if min(d1, p1 - d1, d0, p0 - d0) < MIN_EVENTS:
        interval = stats.exact_difference((d1, p1), (d0, p0), signal.alpha)
    else:
        se = math.sqrt(r1 * (1 - r1) / p1 + r0 * (1 - r0) / p0)
        interval = stats.Estimate(r1 - r0, se, p1 + p0).interval(signal.alpha)
    verdict = _verdict(interval.lower, interval.upper, bound, fail_above=True)
    low, high = interval.lower, interval.upper
    shown = (f"disagreement {r1:.4g} over a noise floor of {r0:.4g}: excess "
             f"{interval.estimate:+.4g} in [{low:+.4g}, {high:+.4g}]")  # fmt: skip
    said = _say(verdict, f"the candidate disagrees with the champion more than {bound:g} above "
                f"the noise floor: {shown}",
                f"the candidate's disagreement is within {bound:g} of the noise floor: {shown}",
                f"{shown} still includes {bound:g}")  # fmt: skip
    return result(name, "paired", verdict, at, value=interval.estimate, lower=interval.lower,
                  upper=interval.upper, bound=bound, canary=r1, stable=r0,
                  samples=arm_samples(p1, p0), message=said)  # fmt: skip


def _correctness(name: str, signal: PairedSignal, m: Pairs, at: str) -> SignalResult:
    n = sum(m.labelled.values())
    champion_only, candidate_only = (
        m.labelled.get("champion", 0.0),
        m.labelled.get("candidate", 0.0),
    )
    bound = -(signal.margin or 0.0)
    if n <= 0:
        return result(name, "paired", "NoData", at, message="no labelled pairs yet")
    accuracy_c = (m.labelled.get("both", 0.0) + candidate_only) / n
    accuracy_s = (m.labelled.get("both", 0.0) + champion_only) / n
    numbers = {"canary": accuracy_c, "stable": accuracy_s, "samples": arm_samples(n, n)}
    if n < max(signal.min_samples, 1):
        return result(name, "paired", "Inconclusive", at, bound=bound, **numbers,
                      message=f"{int(n)} labelled pairs; need {signal.min_samples}")  # fmt: skip
    interval = _difference((candidate_only, n), (champion_only, n), n, signal.alpha)
    verdict = _verdict(interval.lower, interval.upper, bound, fail_above=False)
    shown = (f"accuracy {accuracy_c:.4g} against the champion's {accuracy_s:.4g} on {int(n)} "
             f"labelled pairs ({int(champion_only)} only the champion got right, "
             f"{int(candidate_only)} only the candidate): advantage {interval.estimate:+.4g} in "
             f"[{interval.lower:+.4g}, {interval.upper:+.4g}]")  # fmt: skip
    said = _say(verdict, f"the candidate is less accurate than tolerated ({bound:+g}): {shown}",
                f"the candidate is not less accurate than tolerated: {shown}",
                f"{shown} still includes {bound:+g}")  # fmt: skip
    return result(name, "paired", verdict, at, value=interval.estimate, lower=interval.lower,
                  upper=interval.upper, bound=bound, message=said, **numbers)  # fmt: skip


def _errors(name: str, signal: PairedSignal, m: Pairs, at: str) -> SignalResult:
    alone, champion_alone = m.one_sided.get("candidate", 0.0), m.one_sided.get("champion", 0.0)
    n = m.mirrored
    if n <= 0:
        return result(name, "paired", "NoData", at, message="no mirrored requests yet")
    rate = alone / n
    numbers = {"value": rate, "bound": signal.error_max, "canary": rate,
               "stable": champion_alone / n, "samples": arm_samples(n, n)}  # fmt: skip
    shown = (f"{int(alone)} of {int(n)} mirrored requests failed on the candidate alone, "
             f"{int(champion_alone)} on the champion alone")  # fmt: skip
    one_sided = alone + champion_alone
    if one_sided > 0:
        lower, _ = stats.bernoulli_bounds(alone, one_sided, signal.alpha)
        if lower > 0.5:
            return result(name, "paired", "Fail", at, lower=lower, **numbers,
                          message=f"the candidate fails where the champion does not: {shown} "
                          f"(its share of one-sided failures is above {lower:.3g} with "
                          "confidence)")  # fmt: skip
    if n < max(signal.min_samples, 1):
        return result(name, "paired", "Inconclusive", at, **numbers,
                      message=f"{shown}; need {signal.min_samples} requests")  # fmt: skip
    _, upper = stats.bernoulli_bounds(alone, n, signal.alpha)
    if upper < signal.error_max:
        return result(name, "paired", "Pass", at, upper=upper, **numbers,
                      message=f"{shown}: its own failure rate is below {upper:.3g}")  # fmt: skip
    return result(name, "paired", "Inconclusive", at, upper=upper, **numbers,
                  message=f"{shown}: its own failure rate may be up to {upper:.3g}, "
                  f"above {signal.error_max:g}")  # fmt: skip


def _latency(name: str, signal: PairedSignal, m: Pairs, at: str) -> SignalResult:
    total = m.ratios.get(math.inf, 0.0)
    if total <= 0:
        return result(name, "paired", "NoData", at, message="no paired latencies yet")
    limit = signal.ratio
    edges = sorted(e for e in m.ratios if math.isfinite(e))
    # pairs surely above the limit (above the first edge at or past it), and those perhaps above
    # it (above the last edge at or below it): each test takes the side that is safe for it
    upper_edge = next((e for e in edges if e >= limit), math.inf)
    lower_edge = next((e for e in reversed(edges) if e <= limit), None)
    surely = total - m.ratios.get(upper_edge, total)
    perhaps = total - (m.ratios.get(lower_edge, 0.0) if lower_edge is not None else 0.0)
    numbers = {"value": surely / total, "bound": 0.5, "samples": arm_samples(total, total)}
    if total < max(signal.min_samples, 1):
        return result(
            name,
            "paired",
            "Inconclusive",
            at,
            **numbers,
            message=f"{int(total)} paired latencies; need {signal.min_samples}",
        )
    low, _ = stats.bernoulli_bounds(surely, total, signal.alpha)
    _, high = stats.bernoulli_bounds(perhaps, total, signal.alpha)
    shown = f"{surely / total:.3g} of {int(total)} pairs slower than {limit:g} times the champion"
    if low > 0.5:
        return result(name, "paired", "Fail", at, lower=low, **numbers,
                      message=f"the candidate's median latency is above {limit:g} times the "
                      f"champion's: {shown}")  # fmt: skip
    if high < 0.5:
        return result(name, "paired", "Pass", at, upper=high, **numbers,
                      message=f"the candidate's median latency is below {limit:g} times the "
                      f"champion's: {shown}")  # fmt: skip
    return result(name, "paired", "Inconclusive", at, lower=low, upper=high, **numbers,
                  message=f"{shown}, in [{low:.3g}, {high:.3g}] around a half")  # fmt: skip


TESTS = {"disagreement": _disagreement, "correctness": _correctness, "errors": _errors,
         "latency": _latency}  # fmt: skip


def judge(name: str, signal: PairedSignal, measured: Pairs, at: str,
          plan: Plan | None) -> SignalResult:  # fmt: skip
    test = TESTS.get(signal.test)
    if test is None:
        return error(name, "paired", f"no paired test {signal.test!r}", at)
    return test(name, signal, measured, at)
