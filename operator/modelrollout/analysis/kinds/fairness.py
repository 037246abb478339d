"""Fairness: each arm's selected and total counts per segment, per period; in the monitor, the
watched revision's last window against its own first window after promotion (its baseline)."""

from __future__ import annotations

from datetime import timedelta

from modelrollout.analysis.counting import Counting
from modelrollout.api.v1alpha1 import FairnessSignal
from modelrollout.domain.kinds.fairness import Gaps
from modelrollout.domain.signals import Segments


def measure(counting: Counting, signal: FairnessSignal) -> Gaps:
    c = counting.c
    if c.baseline is not None:  # the monitor: now against the baseline, one revision
        start, end = c.baseline
        back = (c.now - end).total_seconds()
        since = start + timedelta(seconds=back)
        label, version = signal.segment_label, c.canary_version
        now = Segments(counting.increases(signal.selected, version, label),
                       counting.increases(signal.total, version, label))  # fmt: skip
        then = Segments(
            counting.increases(signal.selected, version, label, since=since, offset=back),
            counting.increases(signal.total, version, label, since=since, offset=back),
        )
        return Gaps([now], [then])
    selected_c, selected_s = counting.arms(signal.selected, signal.segment_label)
    total_c, total_s = counting.arms(signal.total, signal.segment_label)
    canary = [Segments(sel, tot) for sel, tot in
              zip(counting.slices(selected_c), counting.slices(total_c), strict=True)]  # fmt: skip
    stable = [Segments(sel, tot) for sel, tot in
              zip(counting.slices(selected_s), counting.slices(total_s), strict=True)]  # fmt: skip
    return Gaps(canary, stable)
