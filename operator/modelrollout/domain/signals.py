"""Judging the statistical signals: counts per arm in, a verdict with its numbers out.

Adapters measure counter increases since the canary took traffic (per label value: `le` for
histograms, a segment or a category); these functions turn them into `Pass`, `Fail`,
`Inconclusive`, `NoData` or `Error`, always with the numbers that decided (docs/analysis.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import (
    CompareSignal,
    DriftSignal,
    FairnessSignal,
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


def categories(reference: Counts, canary: Counts) -> tuple[list[str], list[float], list[float]]:
    """Both arms over the union of their categories, in a stable order."""
    names = sorted(set(reference) | set(canary))
    return names, [reference.get(n, 0.0) for n in names], [canary.get(n, 0.0) for n in names]


def _result(name: str, kind: str, verdict: Verdict, at: str, **numbers: object) -> SignalResult:
    fields = {k: v for k, v in numbers.items() if v is not None}
    for key, value in list(fields.items()):
        if isinstance(value, float) and not math.isfinite(value):
            fields[key] = None
    return SignalResult.model_validate({"name": name, "kind": kind, "verdict": verdict, "at": at,
                                        **fields})  # fmt: skip


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


def judge_compare_rate(name: str, signal: CompareSignal, canary: tuple[float, float],
                       stable: tuple[float, float], at: str) -> SignalResult:  # fmt: skip
    """A rate, successes of total per arm, compared with an always-valid confidence sequence."""
    samples = _samples(canary[1], stable[1])
    rates = {
        "canary": canary[0] / canary[1] if canary[1] > 0 else None,
        "stable": stable[0] / stable[1] if stable[1] > 0 else None,
    }
    if canary[1] <= 0 and stable[1] <= 0:
        return _result(name, "compare", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    if min(canary[1], stable[1]) < signal.min_samples or stats.too_few_events(canary, stable):
        message = (
            f"{int(canary[1])} canary and {int(stable[1])} stable observations; need "
            f"{signal.min_samples} each, and 5 successes and 5 failures each"
        )
        return _result(name, "compare", "Inconclusive", at, samples=samples, message=message,
                       bound=-signal.margin, **rates)  # fmt: skip
    interval = stats.proportion_difference(
        canary, stable, signal.alpha, higher_is_better=signal.higher_is_better
    )
    return _sequential(name, interval, signal.margin, at, samples=samples, **rates)


def judge_compare_histogram(name: str, signal: CompareSignal, canary: Histogram,
                            stable: Histogram, at: str) -> SignalResult:  # fmt: skip
    """A continuous KPI from histogram buckets: the effect P(canary > stable) - 1/2 from a
    tie-corrected Mann-Whitney U, with the confidence sequence's bounds."""
    samples = _samples(canary.total, stable.total)
    if canary.total <= 0 and stable.total <= 0:
        return _result(name, "compare", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    mismatch = _edges_differ(canary, stable)
    if mismatch:
        return error(name, "compare", mismatch, at)
    if min(canary.total, stable.total) < max(signal.min_samples, 1):
        return _result(name, "compare", "Inconclusive", at, samples=samples, bound=-signal.margin,
                       message=f"need {signal.min_samples} observations per arm")  # fmt: skip
    test = stats.mann_whitney(stable.counts, canary.counts)
    sign = 1.0 if signal.higher_is_better else -1.0
    half = stats.cs_multiplier(canary.total + stable.total, 2 * signal.alpha) * test.se_effect
    advantage = sign * test.effect
    interval = stats.Interval(advantage, advantage - half, advantage + half)
    return _sequential(name, interval, signal.margin, at, samples=samples, p_value=test.p_value)


def _edges_differ(a: Histogram, b: Histogram) -> str:
    if not a.counts or not b.counts or a.edges == b.edges:
        return ""
    only_a = sorted(set(a.edges) - set(b.edges))
    only_b = sorted(set(b.edges) - set(a.edges))
    return (
        f"bucket edges differ between the arms: only in the canary {only_a[:5]}, only in the "
        f"reference {only_b[:5]}; export the same buckets from every version"
    )


def judge_drift(name: str, signal: DriftSignal, reference: Histogram, canary: Histogram,
                at: str) -> SignalResult:  # fmt: skip
    """A distance between the canary's distribution and the reference's, against `max`."""
    samples = _samples(canary.total, reference.total)
    bound = signal.bound
    if canary.total <= 0 and reference.total <= 0:
        return _result(name, "drift", "NoData", at, samples=samples, max=bound,
                       message="no observations in either arm yet")  # fmt: skip
    mismatch = _edges_differ(canary, reference)
    if mismatch:
        return error(name, "drift", mismatch, at)
    if min(canary.total, reference.total) < max(signal.min_samples, 1):
        return _result(name, "drift", "Inconclusive", at, samples=samples, max=bound,
                       message=f"need {signal.min_samples} observations per arm")  # fmt: skip
    p_value = None
    r, c = reference.counts, canary.counts
    if signal.statistic == "jensenShannon":
        value = stats.jensen_shannon(r, c)
    elif signal.statistic == "psi":
        value = stats.psi(r, c)
    elif signal.statistic == "hellinger":
        value = stats.hellinger(r, c)
    elif signal.statistic == "ks":
        test = stats.ks(r, c)
        value, p_value = test.statistic, test.p_value
    elif signal.statistic == "chiSquare":
        test = stats.chi_square(r, c)
        value, p_value = test.statistic, test.p_value
    else:
        if len(reference.edges) < 2:
            return error(name, "drift", "wasserstein needs a histogram with 2 or more edges", at)
        value = stats.wasserstein(r, c, reference.edges)
    verdict: Verdict = "Fail" if value > bound else "Pass"
    relation = "above" if value > bound else "within"
    message = f"{signal.statistic} {value:.4g} {relation} max {bound:.4g}"
    return _result(name, "drift", verdict, at, value=value, max=bound, samples=samples,
                   p_value=p_value, message=message)  # fmt: skip


@dataclass(frozen=True)
class Segments:
    """Per-segment counts of one arm: how many were selected out of how many."""

    selected: Counts
    total: Counts


def judge_fairness(name: str, signal: FairnessSignal, canary: Segments, stable: Segments,
                   at: str) -> SignalResult:  # fmt: skip
    """The canary's gap across segments, against the stable arm's gap plus `margin`, and the
    absolute bound when one is set, each failing only with confidence (the always-valid bound);
    segments below minSamples in either arm are left out and listed."""
    kept = sorted(
        g for g in set(canary.total) | set(stable.total)
        if min(canary.total.get(g, 0.0), stable.total.get(g, 0.0)) >= max(signal.min_samples, 1)
    )  # fmt: skip
    excluded = sorted((set(canary.total) | set(stable.total)) - set(kept)) or None
    samples = _samples(sum(canary.total.values()), sum(stable.total.values()))
    if not canary.total and not stable.total:
        return _result(name, "fairness", "NoData", at, samples=samples,
                       message="no observations in either arm yet")  # fmt: skip
    if len(kept) < 2:
        return _result(name, "fairness", "Inconclusive", at, samples=samples, excluded=excluded,
                       message=f"fewer than 2 segments with {signal.min_samples} observations "
                               "in both arms")  # fmt: skip
    ratio = signal.metric == "disparateImpactRatio"
    measure = stats.impact_ratio if ratio else stats.parity_gap

    def gap(arm: Segments) -> stats.Gap:
        return measure({g: arm.selected.get(g, 0.0) for g in kept}, {g: arm.total[g] for g in kept})

    c, s = gap(canary), gap(stable)
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


def _absolute(signal: FairnessSignal, value: float, half: float) -> str | None:
    """Why the canary breaks the absolute bound with confidence, or None."""
    if signal.max is not None and value - half > signal.max:
        return f"above the absolute max {signal.max:.4g}"
    if signal.min is not None and value + half < signal.min:
        return f"below the absolute min {signal.min:.4g}"
    return None


SAMPLE_RATIO = "sample-ratio"


def judge_sample_ratio(settings: SampleRatio, canary: float, stable: float, weight: int,
                       at: str) -> SignalResult | None:  # fmt: skip
    """Is the traffic split real? None when there is nothing to judge (no traffic counted yet,
    or a weight of 0 or 100). A mismatch is an Error, never a pass."""
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
