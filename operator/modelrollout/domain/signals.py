"""Judging the statistical signals: counts per arm in, a verdict with its numbers out.

Adapters measure counter increases since the canary took traffic (per label value: `le` for
histograms, a segment or a category); these functions turn them into `Pass`, `Fail`,
`Inconclusive`, `NoData` or `Error`, always with the numbers that decided (docs/analysis.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import (
    CompareSignal,
    DriftSignal,
    FairnessSignal,
    Look,
    SampleRatio,
    Samples,
    SignalResult,
    Verdict,
)
from modelrollout.domain import stats

Counts = Mapping[str, float]  # increase per label value; "" when not grouped


@dataclass(frozen=True)
class Histogram:
    """Per-bucket counts; `edges` are the finite upper edges, `counts` has one more (+Inf)."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.counts)


def histogram(cumulative: Counts) -> Histogram:
    """From increases of `_bucket` series by `le` (cumulative) to per-bucket counts."""
    if not cumulative:
        return Histogram((), ())
    try:
        by_edge = sorted((float(le), count) for le, count in cumulative.items())
    except ValueError as error:
        raise ValueError(f"a bucket `le` label is not a number: {error}") from error
    if not math.isinf(by_edge[-1][0]):
        raise ValueError("the histogram has no +Inf bucket; select the `_bucket` series")
    edges = tuple(e for e, _ in by_edge[:-1])
    running = [c for _, c in by_edge]
    counts = [running[0]] + [max(0.0, b - a) for a, b in itertools.pairwise(running)]
    return Histogram(edges, tuple(counts))


def categorical(counts: Counts, names: list[str]) -> Histogram:
    """Category counts as a histogram over a fixed order of names (edges are just positions),
    so that every period and both arms line up."""
    values = tuple(counts.get(n, 0.0) for n in names)
    return Histogram(tuple(float(i) for i in range(len(values) - 1)), values)


def _result(name: str, kind: str, verdict: Verdict, at: str, **numbers: object) -> SignalResult:
    fields = {k: v for k, v in numbers.items() if v is not None}
    for key, value in list(fields.items()):
        if isinstance(value, float) and not math.isfinite(value):
            fields[key] = None
    return SignalResult.model_validate({"name": name, "kind": kind, "verdict": verdict, "at": at,
                                        **fields})  # fmt: skip


def gathering(result: SignalResult, series_exist: bool) -> SignalResult:
    """Nothing counted since the canary started, though the selectors match series: the evidence
    is still coming in (a scrape or two after the start, labels that arrive late), which is
    Inconclusive. NoData is kept for selectors that match no series at all, as a wrong query."""
    if result.verdict != "NoData" or not series_exist:
        return result
    return result.model_copy(update={
        "verdict": "Inconclusive",
        "message": "nothing counted since the canary started yet; the series exist",
    })  # fmt: skip


def error(name: str, kind: str, message: str, at: str) -> SignalResult:
    return _result(name, kind, "Error", at, message=message)


def _samples(canary: float, stable: float) -> Samples:
    return Samples(canary=int(canary), stable=int(stable))


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
    return _result(name, "compare", verdict, at, value=interval.estimate, lower=interval.lower,
                   upper=interval.upper, bound=bound, message=message, **numbers)  # fmt: skip


NO_PERIOD = "no period yet in which both arms were observed"
# Of a compare signal's alpha, this share is spent over the planned looks (a group-sequential
# boundary); the rest stays on the confidence sequence, valid for any look beyond the plan.
PLANNED_SHARE = 0.8
MAX_PLANNED_LOOKS = 256
# Alpha is spent as (planned time)^SPENDING_POWER: little on the first, thinly observed looks
# (where the normal approximation is weakest), most where the weights are highest.
SPENDING_POWER = 2.0


@dataclass(frozen=True)
class Plan:
    """Where a compare signal stands in the rollout's plan: how far into the planned time the
    rollout is (0 to 1; 1 once past it) and the signal's looks so far."""

    fraction: float
    looks: tuple[Look, ...] = ()


def _bounded(estimate: stats.Estimate, alpha: float,
             plan: Plan | None) -> tuple[stats.Interval, Look | None]:  # fmt: skip
    """The estimate's bounds: the confidence sequence alone without a plan; with one, the tighter
    of the planned boundary (PLANNED_SHARE of alpha, spent by planned time) and the sequence at
    the rest of alpha. The union bound keeps a wrong verdict's chance within alpha."""
    if plan is None:
        return estimate.interval(alpha), None
    multiplier = stats.cs_multiplier(estimate.n, 2 * alpha * (1 - PLANNED_SHARE))
    look = None
    earlier = plan.looks
    last = earlier[-1].fraction if earlier else 0.0
    fraction = min(1.0, max(plan.fraction, last))
    information = 1 / estimate.se**2 if estimate.se > 0 else 0.0
    grew = information > (earlier[-1].information if earlier else 0.0)
    if grew and fraction > last and len(earlier) < MAX_PLANNED_LOOKS:
        boundary = stats.planned_boundary(
            [x.information for x in earlier],
            [x.boundary if x.boundary is not None else math.inf for x in earlier],
            information,
            alpha * PLANNED_SHARE * (fraction**SPENDING_POWER - last**SPENDING_POWER),
        )
        look = Look(fraction=fraction, information=information,
                    boundary=boundary if math.isfinite(boundary) else None)  # fmt: skip
        multiplier = min(multiplier, boundary)
    return estimate.within(multiplier), look


# successes_canary, total_canary, successes_stable, total_stable, in one period
Stratum = tuple[float, float, float, float]


def judge_compare_rate(name: str, signal: CompareSignal, strata: Sequence[Stratum],
                       at: str, *, plan: Plan | None = None) -> SignalResult:  # fmt: skip
    """A rate, successes of total per arm per period, compared within each period with an
    always-valid confidence sequence; with few events, each arm's exact always-valid bounds."""
    xc, nc = sum(r[0] for r in strata), sum(r[1] for r in strata)
    xs, ns = sum(r[2] for r in strata), sum(r[3] for r in strata)
    samples = _samples(nc, ns)
    rates = {"canary": xc / nc if nc > 0 else None, "stable": xs / ns if ns > 0 else None}
    if nc <= 0 and ns <= 0:
        return _result(name, "compare", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    if min(nc, ns) < max(signal.min_samples, 1):
        message = (
            f"{int(nc)} canary and {int(ns)} stable observations; need {signal.min_samples} each"
        )
        return _result(name, "compare", "Inconclusive", at, samples=samples, message=message,
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
        return _result(name, "compare", "Inconclusive", at, samples=samples, message=NO_PERIOD,
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
    samples = _samples(total_c, total_s)
    if total_c <= 0 and total_s <= 0:
        return _result(name, "compare", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    mismatch = _edges_differ(_pooled(canary), _pooled(stable))
    if mismatch:
        return error(name, "compare", mismatch, at)
    if min(total_c, total_s) < max(signal.min_samples, 1):
        return _result(name, "compare", "Inconclusive", at, samples=samples, bound=-signal.margin,
                       message=f"need {signal.min_samples} observations per arm")  # fmt: skip
    pairs = [(c.counts, s.counts) for c, s in zip(canary, stable, strict=True)
             if c.counts and s.counts]  # fmt: skip
    try:
        effect = stats.stratified_mann_whitney([c for c, _ in pairs], [s for _, s in pairs])
    except ValueError:
        return _result(name, "compare", "Inconclusive", at, samples=samples, bound=-signal.margin,
                       message=NO_PERIOD)  # fmt: skip
    advantage = effect if signal.higher_is_better else effect.flipped()
    interval, look = _bounded(advantage, signal.alpha, plan)
    pooled = stats.mann_whitney(_pooled(stable).counts, _pooled(canary).counts)
    return _sequential(name, interval, signal.margin, at, samples=samples, p_value=pooled.p_value,
                       look=look)  # fmt: skip


def _pooled(periods: Sequence[Histogram]) -> Histogram:
    """One histogram of all periods (periods share their edges)."""
    present = [h for h in periods if h.counts]
    if not present:
        return Histogram((), ())
    edges = present[0].edges
    if any(h.edges != edges for h in present):
        raise ValueError("bucket edges changed during the canary; export fixed buckets")
    return Histogram(
        edges, tuple(sum(col) for col in zip(*(h.counts for h in present), strict=True))
    )


def _edges_differ(a: Histogram, b: Histogram) -> str:
    if not a.counts or not b.counts or a.edges == b.edges:
        return ""
    only_a = sorted(set(a.edges) - set(b.edges))
    only_b = sorted(set(b.edges) - set(a.edges))
    return (
        f"bucket edges differ between the arms: only in the canary {only_a[:5]}, only in the "
        f"reference {only_b[:5]}; export the same buckets from every version"
    )


def judge_drift(name: str, signal: DriftSignal, reference: Sequence[Histogram],
                canary: Sequence[Histogram], at: str) -> SignalResult:  # fmt: skip
    """A distance between the canary's distribution and the reference's, against `max`, with
    confidence: Fail when it is above `max` with confidence, Pass when below with confidence,
    Inconclusive in between. Per period when both arms come per period (against stable)."""
    ref_all, can_all = _pooled(reference), _pooled(canary)
    samples = _samples(can_all.total, ref_all.total)
    bound = signal.bound
    if can_all.total <= 0 and ref_all.total <= 0:
        return _result(name, "drift", "NoData", at, samples=samples, max=bound,
                       message="no observations in either arm yet")  # fmt: skip
    mismatch = _edges_differ(can_all, ref_all)
    if mismatch:
        return error(name, "drift", mismatch, at)
    if min(can_all.total, ref_all.total) < max(signal.min_samples, 1):
        return _result(name, "drift", "Inconclusive", at, samples=samples, max=bound,
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
    return _result(name, "drift", verdict, at, value=interval.estimate, lower=interval.lower,
                   upper=interval.upper, max=bound, samples=samples, p_value=p_value,
                   message=message)  # fmt: skip


@dataclass(frozen=True)
class Segments:
    """Per-segment counts of one arm: how many were selected out of how many."""

    selected: Counts
    total: Counts


def judge_fairness(name: str, signal: FairnessSignal, canary: Sequence[Segments],
                   stable: Sequence[Segments], at: str) -> SignalResult:  # fmt: skip
    """The canary's gap across segments, against the stable arm's gap plus `margin`, and the
    absolute bound when one is set, each failing only with confidence (the always-valid bound);
    each segment's rate is compared within periods, so a drift shared by the arms cancels;
    segments below minSamples in either arm are left out and listed."""
    total_c, total_s = _segment_totals(canary), _segment_totals(stable)
    kept = sorted(
        g for g in set(total_c) | set(total_s)
        if min(total_c.get(g, 0.0), total_s.get(g, 0.0)) >= max(signal.min_samples, 1)
    )  # fmt: skip
    excluded = sorted((set(total_c) | set(total_s)) - set(kept)) or None
    samples = _samples(sum(total_c.values()), sum(total_s.values()))
    if not total_c and not total_s:
        return _result(name, "fairness", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    rates_c: dict[str, stats.Rate] = {}
    rates_s: dict[str, stats.Rate] = {}
    for g in kept:
        rows = [(c.selected.get(g, 0.0), c.total.get(g, 0.0), s.selected.get(g, 0.0),
                 s.total.get(g, 0.0)) for c, s in zip(canary, stable, strict=True)]  # fmt: skip
        try:
            rates_c[g], rates_s[g] = stats.stratified_rates(rows)
        except ValueError:
            continue  # no period in which both arms saw this segment yet
    if len(rates_c) < 2:
        return _result(name, "fairness", "Inconclusive", at, samples=samples, excluded=excluded,
                       message=f"fewer than 2 segments with {signal.min_samples} observations "
                               "in both arms")  # fmt: skip
    ratio = signal.metric == "disparateImpactRatio"
    measure = stats.ratio_of if ratio else stats.gap_of
    c, s = measure(rates_c), measure(rates_s)
    # How much worse the canary's gap is than the stable's (a lower ratio is worse).
    worse = (s.value - c.value) if ratio else (c.value - s.value)
    n = samples.canary + samples.stable
    half = stats.cs_multiplier(n, 2 * signal.alpha) * math.hypot(c.se, s.se)
    numbers: dict[str, object] = {
        "value": c.value, "canary": c.value, "stable": s.value, "lower": worse - half,
        "upper": worse + half, "bound": signal.margin, "samples": samples, "excluded": excluded,
    }  # fmt: skip
    shown = (
        f"{signal.metric} canary {c.value:.4g} ({c.lowest} vs {c.highest}), stable {s.value:.4g}"
    )
    c_half = stats.cs_multiplier(n, 2 * signal.alpha) * c.se
    if worse - half > signal.margin:
        message = f"{shown}: worse than stable by more than {signal.margin:.4g}"
        return _result(name, "fairness", "Fail", at, **numbers, message=message)
    absolute = _absolute(signal, c.value, c_half)
    if absolute is not None:
        return _result(name, "fairness", "Fail", at, **numbers, message=f"{shown}: {absolute}")
    # No confident evidence of a wider gap: Pass, as drift does. Proving fairness (the upper bound
    # within the margin) would take far more traffic per segment than a rollout has; the
    # promotion gate asks that of compare signals only.
    return _result(name, "fairness", "Pass", at, **numbers, message=shown)


def _segment_totals(periods: Sequence[Segments]) -> dict[str, float]:
    totals: dict[str, float] = {}
    for period in periods:
        for g, n in period.total.items():
            totals[g] = totals.get(g, 0.0) + n
    return totals


def _absolute(signal: FairnessSignal, value: float, half: float) -> str | None:
    """Why the canary breaks the absolute bound with confidence, or None."""
    if signal.max is not None and value - half > signal.max:
        return f"above the absolute max {signal.max:.4g}"
    if signal.min is not None and value + half < signal.min:
        return f"below the absolute min {signal.min:.4g}"
    return None


SAMPLE_RATIO = "sample-ratio"


def judge_sample_ratio(settings: SampleRatio, canary: float | None, stable: float | None,
                       weight: int, at: str) -> SignalResult | None:  # fmt: skip
    """Is the traffic split real? None when there is nothing to judge: no request counter is
    exported for either arm (None: no series; the check is skipped, analysis.md), no traffic
    counted yet, or a weight of 0 or 100. A mismatch is an Error, never a pass."""
    if canary is None and stable is None:
        return None
    canary, stable = canary or 0.0, stable or 0.0
    total = canary + stable
    if total < max(settings.min_samples, 1) or not 0 < weight < 100:
        return None
    test = stats.sample_ratio(canary, stable, weight / 100)
    numbers: dict[str, object] = {
        "value": test.statistic, "bound": weight / 100, "p_value": test.p_value,
        "samples": _samples(canary, stable),
    }  # fmt: skip
    shown = f"canary got {test.statistic:.2%} of {int(total)} requests for a weight of {weight}%"
    if test.p_value < settings.p_value:
        message = (
            f"sample ratio mismatch: {shown} (p={test.p_value:.2g}); the router is not "
            "splitting traffic as the route says"
        )
        return _result(SAMPLE_RATIO, "sampleRatio", "Error", at, **numbers, message=message)
    return _result(SAMPLE_RATIO, "sampleRatio", "Pass", at, **numbers, message=shown)
