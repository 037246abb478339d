"""Threshold: the query's one number, as the source measures it."""

from __future__ import annotations

from modelrollout.analysis.counting import Counting
from modelrollout.api.v1alpha1 import ThresholdSignal
from modelrollout.domain.judging import Measurement
from modelrollout.domain.templating import render


def measure(counting: Counting, signal: ThresholdSignal) -> Measurement:
    return counting.source.measure(render(signal.query, counting.values()))
