"""Fairness: is the canary's gap between segments wider than stable's by more than `margin`, or
past an absolute bound, with confidence."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import FairnessSignal, SignalResult
from modelrollout.domain import stats
from modelrollout.domain.signals import Plan, Segments, arm_samples, result

# A signal of this kind can fail a canary; promotion does not wait for its Pass.
GATES_PROMOTION = False


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
    samples = arm_samples(sum(total_c.values()), sum(total_s.values()))
    if not total_c and not total_s:
        return result(name, "fairness", "NoData", at, samples=samples,
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
        return result(name, "fairness", "Inconclusive", at, samples=samples, excluded=excluded,
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
        return result(name, "fairness", "Fail", at, **numbers, message=message)
    absolute = _absolute(signal, c.value, c_half)
    if absolute is not None:
        return result(name, "fairness", "Fail", at, **numbers, message=f"{shown}: {absolute}")
    # No confident evidence of a wider gap: Pass, as drift does. Proving fairness (the upper bound
    # within the margin) would take far more traffic per segment than a rollout has; the
    # promotion gate asks that of compare signals only.
    return result(name, "fairness", "Pass", at, **numbers, message=shown)


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


@dataclass(frozen=True)
class Gaps:
    """Each arm's selected and total counts per segment, per period."""

    canary: Sequence[Segments]
    stable: Sequence[Segments]


def judge(name: str, signal: FairnessSignal, measured: Gaps, at: str,
          _plan: Plan | None) -> SignalResult:  # fmt: skip
    return judge_fairness(name, signal, measured.canary, measured.stable, at)
