"""Compare: each arm's successes and totals (or histogram buckets) per period."""

from __future__ import annotations

from modelrollout.analysis.counting import Counting
from modelrollout.api.v1alpha1 import CompareSignal
from modelrollout.domain import signals
from modelrollout.domain.kinds.compare import Histograms, Rates


def measure(counting: Counting, signal: CompareSignal) -> Rates | Histograms:
    if signal.histogram is not None:
        canary, stable = counting.arms(signal.histogram, "le")
        return Histograms([signals.histogram(h) for h in counting.slices(canary)],
                          [signals.histogram(h) for h in counting.slices(stable)])  # fmt: skip
    won_c, won_s = counting.arms(signal.successes or "")
    all_c, all_s = counting.arms(signal.total or "")
    at = counting.at
    return Rates([
        (at(won_c, "", i), at(all_c, "", i), at(won_s, "", i), at(all_s, "", i))
        for i in range(counting.count)
    ])  # fmt: skip
