"""Outliers: is the share of observations in the reference's tails above what the reference
itself puts there, with confidence (an always-valid bound, so repeated looks stay honest)?"""

from __future__ import annotations

from modelrollout.api.v1alpha1 import OutliersSignal, SignalResult, Verdict
from modelrollout.domain import stats
from modelrollout.domain.kinds.drift import Distributions
from modelrollout.domain.signals import (
    Histogram,
    Plan,
    arm_samples,
    edges_differ,
    error,
    pool,
    result,
)

# A signal of this kind can fail a canary; promotion does not wait for its Pass.
GATES_PROMOTION = False


def tail_buckets(reference: Histogram, tail: float) -> list[int]:
    """The buckets wholly in the reference's tails: from the lowest up while the mass below
    stays within `tail`, and from the highest (+Inf) down likewise."""
    total = reference.total
    if total <= 0:
        return []
    picked, below = [], 0.0
    for i, count in enumerate(reference.counts):
        if (below + count) / total > tail:
            break
        below += count
        picked.append(i)
    above = 0.0
    for i in range(len(reference.counts) - 1, -1, -1):
        count = reference.counts[i]
        if (above + count) / total > tail or i in picked:
            break
        above += count
        picked.append(i)
    return sorted(picked)


def judge(name: str, signal: OutliersSignal, measured: Distributions, at: str,
          _plan: Plan | None) -> SignalResult:  # fmt: skip
    reference, arm = pool(measured.reference), pool(measured.canary)
    samples = arm_samples(arm.total, reference.total)
    if arm.total <= 0:
        return result(name, "outliers", "NoData", at, samples=samples,
                      message="no observations yet")  # fmt: skip
    mismatch = edges_differ(arm, reference)
    if mismatch:
        return error(name, "outliers", mismatch, at)
    buckets = tail_buckets(reference, signal.tail)
    if not buckets:
        return error(name, "outliers", f"the reference has no bucket within its {signal.tail:g} "
                     "tails: export finer buckets at the edges", at)  # fmt: skip
    expected = sum(reference.counts[i] for i in buckets) / reference.total
    bound = signal.max_ratio * max(expected, 1.0 / reference.total)
    seen = sum(arm.counts[i] for i in buckets)
    share = seen / arm.total
    lower, upper = stats.bernoulli_bounds(seen, arm.total, signal.alpha)  # valid at every look
    shown = (f"{share:.4g} of {arm.total:g} in the reference's tails (its own {expected:.4g}), "
             f"in [{lower:.4g}, {upper:.4g}]")  # fmt: skip
    verdict: Verdict
    if arm.total < max(signal.min_samples, 1):
        verdict, message = "Inconclusive", f"{shown}; need {signal.min_samples} observations"
    elif lower > bound:
        verdict, message = "Fail", f"{shown}, above {bound:.4g} with confidence"
    elif upper < bound:
        verdict, message = "Pass", f"{shown}, within {bound:.4g} with confidence"
    else:
        verdict, message = "Inconclusive", f"{shown}, not yet sure against {bound:.4g}"
    return result(name, "outliers", verdict, at, value=share, stable=expected, lower=lower,
                  upper=upper, bound=bound, samples=samples, message=message)  # fmt: skip
