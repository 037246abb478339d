"""Outliers: the arm's histogram since it started (the canary's; the stable's last window in the
monitor) and the frozen reference's, whose tails the judge reads."""

from __future__ import annotations

from modelrollout.analysis.counting import Counting
from modelrollout.analysis.kinds.drift import _reference
from modelrollout.api.v1alpha1 import OutliersSignal
from modelrollout.domain import signals
from modelrollout.domain.kinds.drift import Distributions


def measure(counting: Counting, signal: OutliersSignal) -> Distributions:
    arm = counting.increases(signal.histogram, counting.c.canary_version, "le")
    reference = _reference(counting.load_reference(signal.reference), signal.reference)
    return Distributions([signals.histogram(reference)], [signals.histogram(arm)])
