"""Drift: has the distribution of an input or an output moved from its reference, by more than
`max`, with confidence."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import DriftSignal, SignalResult, Verdict
from modelrollout.domain import stats
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


def judge_drift(name: str, signal: DriftSignal, reference: Sequence[Histogram],
                canary: Sequence[Histogram], at: str) -> SignalResult:  # fmt: skip
    """A distance between the canary's distribution and the reference's, against `max`, with
    confidence: Fail when it is above `max` with confidence, Pass when below with confidence,
    Inconclusive in between. Per period when both arms come per period (against stable)."""
    ref_all, can_all = pool(reference), pool(canary)
    samples = arm_samples(can_all.total, ref_all.total)
    bound = signal.bound
    if can_all.total <= 0 and ref_all.total <= 0:
        return result(name, "drift", "NoData", at, samples=samples, max=bound,
                       message="no observations in either arm yet")  # fmt: skip
    mismatch = edges_differ(can_all, ref_all)
    if mismatch:
        return error(name, "drift", mismatch, at)
    if min(can_all.total, ref_all.total) < max(signal.min_samples, 1):
        return result(name, "drift", "Inconclusive", at, samples=samples, max=bound,
                       message=f"need {signal.min_samples} observations per arm")  # fmt: skip
    if signal.statistic == "wasserstein" and len(ref_all.edges) < 2:
        return error(name, "drift", "wasserstein needs a histogram with 2 or more edges", at)
    width = len(ref_all.counts)
    per_period = len(reference) == len(canary) and len(reference) > 1
    ref_rows = [h.counts or (0.0,) * width for h in reference] if per_period else [ref_all.counts]
    can_rows = [h.counts or (0.0,) * width for h in canary] if per_period else [can_all.counts]
    interval = stats.drift_interval(signal.statistic, ref_rows, can_rows, signal.alpha,
                                    edges=ref_all.edges)  # fmt: skip
    p_value = None
    if signal.statistic == "ks":
        p_value = stats.ks(ref_all.counts, can_all.counts).p_value
    elif signal.statistic == "chiSquare":
        p_value = stats.chi_square(ref_all.counts, can_all.counts).p_value
    shown = (
        f"{signal.statistic} {interval.estimate:.4g} in [{interval.lower:.4g}, "
        f"{interval.upper:.4g}]"
    )
    if interval.lower > bound:
        verdict: Verdict = "Fail"
        message = f"{shown}, above max {bound:.4g} with confidence"
    elif interval.upper < bound:
        verdict, message = "Pass", f"{shown}, within max {bound:.4g} with confidence"
    else:
        verdict, message = "Inconclusive", f"{shown} still includes max {bound:.4g}"
    return result(name, "drift", verdict, at, value=interval.estimate, lower=interval.lower,
                   upper=interval.upper, max=bound, samples=samples, p_value=p_value,
                   message=message)  # fmt: skip


@dataclass(frozen=True)
class Distributions:
    """The reference's and the canary's histograms: one each, or one per period of both."""

    reference: Sequence[Histogram]
    canary: Sequence[Histogram]


def judge(name: str, signal: DriftSignal, measured: Distributions, at: str,
          _plan: Plan | None) -> SignalResult:  # fmt: skip
    return judge_drift(name, signal, measured.reference, measured.canary, at)
