"""Compare: is the canary at least as good as stable on a KPI, within `margin`, with confidence.
A rate (successes of total per arm, per period) or a histogram (Mann-Whitney on its buckets)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import CompareSignal, Look, SignalResult, Verdict
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

# Promotion waits until every signal of this kind reached Pass (machine._unproven).
GATES_PROMOTION = True


def _sequential(
    name: str, interval: stats.Interval, margin: float, at: str, **numbers: object
) -> SignalResult:
    """Fail when the canary is worse than the margin with confidence, Pass when it is not worse
    than the margin with confidence, Inconclusive in between."""
    bound = -margin
    shown = f"advantage {interval.estimate:+.4g} in [{interval.lower:+.4g}, {interval.upper:+.4g}]"
    if interval.upper < bound:
        verdict: Verdict = "Fail"
        message = f"canary worse than tolerated: {shown}, entirely below {bound:+.4g}"
    elif interval.lower > bound:
        verdict, message = "Pass", f"canary not worse than tolerated: {shown}"
    else:
        verdict, message = "Inconclusive", f"{shown} still includes {bound:+.4g}"
    return result(name, "compare", verdict, at, value=interval.estimate, lower=interval.lower,
                   upper=interval.upper, bound=bound, message=message, **numbers)  # fmt: skip


NO_PERIOD = "no period yet in which both arms were observed"
# Of a compare signal's alpha, this share is spent over the planned looks (a group-sequential
# boundary); the rest stays on the confidence sequence, valid for any look beyond the plan.
PLANNED_SHARE = 0.8
MAX_PLANNED_LOOKS = 256
# Alpha is spent as (planned time)^SPENDING_POWER: little on the first, thinly observed looks
# (where the normal approximation is weakest), most where the weights are highest.
SPENDING_POWER = 2.0


def _bounded(estimate: stats.Estimate, alpha: float,
             plan: Plan | None) -> tuple[stats.Interval, Look | None]:  # fmt: skip
    """The estimate's bounds: the confidence sequence alone without a plan; with one, the tighter
    of the planned boundary (PLANNED_SHARE of alpha, spent by planned time) and the sequence at
    the rest of alpha. The union bound keeps a wrong verdict's chance within alpha.

    A look counts only when the information grew by stats.MIN_GAIN since the last one that
    counted (a period with no new labels is no look, however the rounding goes). Between looks
    the planned test decides nothing new: its last look's interval stands, intersected with the
    sequence's at this moment, so what the plan decided then is not lost while labels wait."""
    if plan is None:
        return estimate.interval(alpha), None
    multiplier = stats.cs_multiplier(estimate.n, 2 * alpha * (1 - PLANNED_SHARE))
    earlier = plan.looks
    previous = earlier[-1] if earlier else None
    last = previous.fraction if previous is not None else 0.0
    fraction = min(1.0, max(plan.fraction, last))
    information = 1 / estimate.se**2 if estimate.se > 0 else 0.0
    grew = stats.counts_as_look(previous.information if previous else 0.0, information)
    if grew and fraction > last and len(earlier) < MAX_PLANNED_LOOKS:
        planned = alpha * PLANNED_SHARE
        boundary = stats.planned_boundary(
            [x.information for x in earlier],
            [x.boundary if x.boundary is not None else math.inf for x in earlier],
            information,
            planned * (fraction**SPENDING_POWER - last**SPENDING_POWER),
            spent=planned * fraction**SPENDING_POWER,
        )
        look = Look(fraction=fraction, information=information, estimate=estimate.value,
                    boundary=boundary if math.isfinite(boundary) else None)  # fmt: skip
        return estimate.within(min(multiplier, boundary)), look
    interval = estimate.within(multiplier)
    if previous is None or previous.boundary is None or previous.estimate is None:
        return interval, None
    half = previous.boundary / math.sqrt(previous.information)
    lower = max(interval.lower, previous.estimate - half)
    upper = min(interval.upper, previous.estimate + half)
    if lower > upper:  # the two disagree: the sequence alone, which holds at every moment
        return interval, None
    return stats.Interval(estimate.value, lower, upper), None


# successes_canary, total_canary, successes_stable, total_stable, in one period
Stratum = tuple[float, float, float, float]


def judge_compare_rate(name: str, signal: CompareSignal, strata: Sequence[Stratum],
                       at: str, *, plan: Plan | None = None) -> SignalResult:  # fmt: skip
    """A rate, successes of total per arm per period, compared within each period with an
    always-valid confidence sequence; with few events, each arm's exact always-valid bounds."""
    xc, nc = sum(r[0] for r in strata), sum(r[1] for r in strata)
    xs, ns = sum(r[2] for r in strata), sum(r[3] for r in strata)
    samples = arm_samples(nc, ns)
    rates = {"canary": xc / nc if nc > 0 else None, "stable": xs / ns if ns > 0 else None}
    if nc <= 0 and ns <= 0:
        return result(name, "compare", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    if min(nc, ns) < max(signal.min_samples, 1):
        message = (
            f"{int(nc)} canary and {int(ns)} stable observations; need {signal.min_samples} each"
        )
        return result(name, "compare", "Inconclusive", at, samples=samples, message=message,
                       bound=-signal.margin, **rates)  # fmt: skip
    if stats.too_few_events((xc, nc), (xs, ns)):
        # A perfect canary or a rare error: the normal approximation is wrong here, the
        # Bernoulli mixture bounds hold at any count (docs/analysis.md, "Rare events").
        interval = stats.exact_difference((xc, nc), (xs, ns), signal.alpha,
                                          higher_is_better=signal.higher_is_better)  # fmt: skip
        return _sequential(name, interval, signal.margin, at, samples=samples, **rates)
    try:
        estimate = stats.stratified_difference(strata, higher_is_better=signal.higher_is_better)
    except ValueError:  # no period in which both arms were seen yet
        return result(name, "compare", "Inconclusive", at, samples=samples, message=NO_PERIOD,
                       bound=-signal.margin, **rates)  # fmt: skip
    bounded, look = _bounded(estimate, signal.alpha, plan)
    return _sequential(name, bounded, signal.margin, at, samples=samples, look=look, **rates)


def judge_compare_histogram(name: str, signal: CompareSignal, canary: Sequence[Histogram],
                            stable: Sequence[Histogram], at: str, *,
                            plan: Plan | None = None) -> SignalResult:  # fmt: skip
    """A continuous KPI from histogram buckets per period: the effect P(canary > stable) - 1/2
    from tie-corrected Mann-Whitney U within each period, pooled, with the confidence sequence's
    bounds."""
    total_c, total_s = sum(h.total for h in canary), sum(h.total for h in stable)
    samples = arm_samples(total_c, total_s)
    if total_c <= 0 and total_s <= 0:
        return result(name, "compare", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    mismatch = edges_differ(pool(canary), pool(stable))
    if mismatch:
        return error(name, "compare", mismatch, at)
    if min(total_c, total_s) < max(signal.min_samples, 1):
        return result(name, "compare", "Inconclusive", at, samples=samples, bound=-signal.margin,
                       message=f"need {signal.min_samples} observations per arm")  # fmt: skip
    pairs = [(c.counts, s.counts) for c, s in zip(canary, stable, strict=True)
             if c.counts and s.counts]  # fmt: skip
    try:
        effect = stats.stratified_mann_whitney([c for c, _ in pairs], [s for _, s in pairs])
    except ValueError:
        return result(name, "compare", "Inconclusive", at, samples=samples, bound=-signal.margin,
                       message=NO_PERIOD)  # fmt: skip
    advantage = effect if signal.higher_is_better else effect.flipped()
    interval, look = _bounded(advantage, signal.alpha, plan)
    pooled = stats.mann_whitney(pool(stable).counts, pool(canary).counts)
    return _sequential(name, interval, signal.margin, at, samples=samples, p_value=pooled.p_value,
                       look=look)  # fmt: skip


@dataclass(frozen=True)
class Rates:
    """A rate's counts per period: (successes, total) of canary, then of stable."""

    strata: Sequence[Stratum]


@dataclass(frozen=True)
class Histograms:
    """A histogram's per-bucket counts per period, of each arm."""

    canary: Sequence[Histogram]
    stable: Sequence[Histogram]


def advantage(signal: CompareSignal, measured: Rates | Histograms) -> stats.Estimate | None:
    """The advantage over the stable (an A/B/n candidate's over the champion) as the judge
    estimates it, for domain/abn.py; None while the judge would not use the normal approximation
    either (fewer than minSamples, no period both arms saw, or too few events)."""
    try:
        if isinstance(measured, Histograms):
            both = zip(measured.canary, measured.stable, strict=True)
            if min(
                sum(h.total for h in measured.canary), sum(h.total for h in measured.stable)
            ) < max(signal.min_samples, 1):
                return None
            pairs = [(c.counts, s.counts) for c, s in both if c.counts and s.counts]
            effect = stats.stratified_mann_whitney([c for c, _ in pairs], [s for _, s in pairs])
            return effect if signal.higher_is_better else effect.flipped()
        strata = measured.strata
        arms = ((sum(r[0] for r in strata), sum(r[1] for r in strata)),
                (sum(r[2] for r in strata), sum(r[3] for r in strata)))  # fmt: skip
        if min(arms[0][1], arms[1][1]) < max(signal.min_samples, 1) or stats.too_few_events(*arms):
            return None
        return stats.stratified_difference(strata, higher_is_better=signal.higher_is_better)
    except ValueError:
        return None


def judge(name: str, signal: CompareSignal, measured: Rates | Histograms, at: str,
          plan: Plan | None) -> SignalResult:  # fmt: skip
    if isinstance(measured, Histograms):
        return judge_compare_histogram(name, signal, measured.canary, measured.stable, at,
                                       plan=plan)  # fmt: skip
    return judge_compare_rate(name, signal, measured.strata, at, plan=plan)
