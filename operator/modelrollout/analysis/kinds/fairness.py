"""Fairness: each arm's selected and total counts per segment, per period."""

from __future__ import annotations

from modelrollout.analysis.counting import Counting
from modelrollout.api.v1alpha1 import FairnessSignal
from modelrollout.domain.kinds.fairness import Gaps
from modelrollout.domain.signals import Segments


def measure(counting: Counting, signal: FairnessSignal) -> Gaps:
    selected_c, selected_s = counting.arms(signal.selected, signal.segment_label)
    total_c, total_s = counting.arms(signal.total, signal.segment_label)
    canary = [Segments(sel, tot) for sel, tot in
              zip(counting.slices(selected_c), counting.slices(total_c), strict=True)]  # fmt: skip
    stable = [Segments(sel, tot) for sel, tot in
              zip(counting.slices(selected_s), counting.slices(total_s), strict=True)]  # fmt: skip
    return Gaps(canary, stable)
