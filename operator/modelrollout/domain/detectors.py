"""The watch over a promoted model: detectors calibrated to a false-alarm budget, not an alpha.

A model in production is looked at every interval without end, so any per-look error rate adds up
to a false alarm sooner or later. What a user can state, and what this module calibrates to, is a
*mean time between false alarms* on a healthy model (docs/lifecycle.md), split evenly over the
monitor's signals:

- **kpi (concept drift)**: a one-sided CUSUM on the labelled KPI's counts per look, its increments
  the log-likelihood ratio of "fallen by `drop`" against "healthy". With threshold h = ln(A), the
  mean run length to a false alarm is at least A looks (Lorden's bound, through the
  Shiryaev-Roberts statistic, whose excess over the look count is a martingale while healthy, and
  which is always at least e^CUSUM). It holds whatever the traffic per look (daily swings, low
  traffic) and for any healthy rate, drifting or not, at or above the in-control floor: there the
  increments' likelihood ratio has expectation at most 1. The floor is the baseline's one-sided
  lower confidence bound (upper, for a KPI where lower is better), so a baseline's estimation
  error does not turn into false alarms.
- **judged looks (drift, outliers)**: each look is judged afresh at alpha = interval / (budget per
  signal). False alarms then come at most alpha per look in expectation, whatever the correlation of
  overlapping windows, so their mean spacing is at least the budget.
- **threshold**: a user's PromQL number against a bound, with no statistics: only the hysteresis.

Every signal then needs `confirm` alarming looks in a row (hysteresis) before it alarms, which can
only lengthen the time between false alarms; after an alarm it is quiet for `cooldown` and its
detector starts again from zero.

Pure functions over floats or numpy arrays alike, so that bench/monitor.py drives this very code
over many streams at once.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from modelrollout.domain.lazy import Lazy

if TYPE_CHECKING:
    import numpy as np
    from scipy import stats as sp
else:  # imported on first use (domain/lazy.py)
    np, sp = Lazy("numpy"), Lazy("scipy.stats")

# A float (one rollout) or a numpy array (a bench's thousand streams), through the same code.
Numeric = Any

# How sure the in-control floor is: the baseline's one-sided confidence bound.
BASELINE_CONFIDENCE = 0.99
_EDGE = 1e-9


def per_signal(mean_time_between: float, signals: int) -> float:
    """Each signal's share of the budget, in seconds (the budget is split evenly)."""
    return mean_time_between / max(1, signals)


def cusum_threshold(mean_time_between: float, interval: float, signals: int) -> float:
    """h = ln(A), A = the signal's budget in looks: E[looks to a false alarm] >= A."""
    looks = per_signal(mean_time_between, signals) / interval
    return math.log(max(looks, 1.0))


def look_alpha(mean_time_between: float, interval: float, signals: int) -> float:
    """The per-look error that keeps a judged signal's mean time between false alarms at least
    its budget: interval / budget, at most 0.05."""
    return min(0.05, interval / per_signal(mean_time_between, signals))


def healthy_floor(successes: Numeric, total: Numeric, *,
                  higher_is_better: bool = True) -> Numeric:  # fmt: skip
    """The worst rate still called healthy: the baseline's one-sided Clopper-Pearson bound at
    BASELINE_CONFIDENCE, below the baseline's rate when higher is better, above it otherwise."""
    successes, total = np.asarray(successes, dtype=float), np.asarray(total, dtype=float)
    if np.any(total <= 0):
        raise ValueError("a baseline needs labelled observations")
    tail = 1.0 - BASELINE_CONFIDENCE
    failures = total - successes
    with np.errstate(invalid="ignore", divide="ignore"):
        if higher_is_better:
            bound = np.where(successes <= 0, 0.0, sp.beta.ppf(tail, successes, failures + 1))
        else:
            bound = np.where(failures <= 0, 1.0, sp.beta.isf(tail, successes + 1, failures))
    clipped = np.clip(bound, _EDGE, 1.0 - _EDGE)
    return float(clipped) if clipped.ndim == 0 else clipped


def baseline_ready(successes: Numeric, total: Numeric, drop: float, *,
                   higher_is_better: bool = True) -> Numeric:  # fmt: skip
    """Whether a baseline is precise enough: its floor within a quarter of `drop` of its rate.
    A floor far below the rate would hide a fall of `drop` inside the healthy region (at 20
    labels a minute, an hour's baseline put the floor 2 points down: a 2-point fall was found
    in 18% of streams within 3 days, bench/monitor.py)."""
    total = np.asarray(total, dtype=float)
    counted = total > 0
    safe = np.where(counted, total, 1.0)
    rate = np.asarray(successes, dtype=float) / safe
    gap = np.abs(rate - healthy_floor(np.where(counted, successes, 0.0), safe,
                                      higher_is_better=higher_is_better))  # fmt: skip
    ready = counted & (gap <= drop / 4)
    return bool(ready) if ready.ndim == 0 else ready


def fallen(floor: Numeric, drop: float, *, higher_is_better: bool = True) -> Numeric:
    """The rate the detector is tuned to find: `drop` worse than the floor."""
    rate = np.clip(floor - drop if higher_is_better else floor + drop, _EDGE, 1.0 - _EDGE)
    return float(rate) if np.ndim(rate) == 0 else rate


def log_likelihood_ratio(successes: Numeric, total: Numeric, floor: Numeric,
                         degraded: Numeric) -> Numeric:  # fmt: skip
    """log P(counts | degraded) / P(counts | floor) for `successes` of `total` (binomial)."""
    return successes * np.log(degraded / floor) + (total - successes) * np.log(
        (1.0 - degraded) / (1.0 - floor)
    )


def cusum(statistic: Numeric, successes: Numeric, total: Numeric, floor: Numeric,
          degraded: Numeric) -> Numeric:  # fmt: skip
    """The CUSUM after one look: max(0, S + LLR)."""
    return np.maximum(statistic + log_likelihood_ratio(successes, total, floor, degraded), 0.0)


def confirmed(alarming: Numeric, above: Numeric, confirm: int) -> tuple[Numeric, Numeric]:
    """Hysteresis: alarming looks in a row, and whether this look makes it an alarm."""
    above = (above + 1) * alarming
    return above, above >= confirm


def kpi_look(statistic: Numeric, above: Numeric, successes: Numeric, total: Numeric, *,
             floor: Numeric, degraded: Numeric, threshold: float,
             confirm: int) -> tuple[Numeric, Numeric, Numeric]:  # fmt: skip
    """One look of the concept-drift detector: the CUSUM after this look's counts, the alarming
    looks in a row, and whether it alarms now; an alarm starts the detector again from zero."""
    statistic = cusum(statistic, successes, total, floor, degraded)
    above, alarm = confirmed(statistic >= threshold, above, confirm)
    return statistic * (1 - alarm), above * (1 - alarm), alarm


__all__ = [
    "BASELINE_CONFIDENCE",
    "baseline_ready",
    "confirmed",
    "cusum",
    "cusum_threshold",
    "fallen",
    "healthy_floor",
    "kpi_look",
    "log_likelihood_ratio",
    "look_alpha",
    "per_signal",
]
