"""Threshold: one PromQL number against `min` and `max`."""

from __future__ import annotations

import math

from modelrollout.api.v1alpha1 import SignalResult, ThresholdSignal, Verdict
from modelrollout.domain.judging import Measurement
from modelrollout.domain.signals import Plan

# A signal of this kind can fail a canary; promotion does not wait for its Pass.
GATES_PROMOTION = False


def judge_threshold(
    name: str, signal: ThresholdSignal, measured: Measurement, at: str
) -> SignalResult:
    """Pass when min <= value <= max (inclusive); an empty result or NaN is NoData."""

    def verdict(
        kind: Verdict, value: float | None = None, message: str | None = None
    ) -> SignalResult:
        return SignalResult(
            name=name, verdict=kind, value=value, min=signal.min, max=signal.max,
            message=message, at=at,
        )  # fmt: skip

    if measured.error is not None:
        return verdict("Error", message=measured.error)
    value = measured.value
    if value is None or math.isnan(value):
        return verdict("NoData", message="the query returned no number")
    if math.isinf(value):
        kind, message = _infinite(signal, value)
        return verdict(kind, message=message)
    if signal.min is not None and value < signal.min:
        return verdict("Fail", value, f"{value:.6g} below min {signal.min:.6g}")
    if signal.max is not None and value > signal.max:
        return verdict("Fail", value, f"{value:.6g} above max {signal.max:.6g}")
    return verdict("Pass", value)


def _infinite(signal: ThresholdSignal, value: float) -> tuple[Verdict, str]:
    """A ratio over nothing (a 5xx rate over a stable rate of 0) gives +Inf: never a Pass. Past
    a bound it is a Fail like any number there; otherwise it says nothing we can judge."""
    shown = "+Inf" if value > 0 else "-Inf"
    if value > 0 and signal.max is not None:
        return "Fail", f"{shown} above max {signal.max:.6g}"
    if value < 0 and signal.min is not None:
        return "Fail", f"{shown} below min {signal.min:.6g}"
    return "Error", f"the query returned {shown} (a division by zero?); make it finite"


def judge(name: str, signal: ThresholdSignal, measured: Measurement, at: str,
          _plan: Plan | None) -> SignalResult:  # fmt: skip
    return judge_threshold(name, signal, measured, at)
