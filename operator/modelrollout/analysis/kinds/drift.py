"""Drift: the canary's distribution and its reference's (stable over the same periods, a frozen
reference in a ConfigMap, or the same series `offset` back in time)."""

from __future__ import annotations

from datetime import timedelta

from modelrollout.analysis.counting import Counting, MeasurementError
from modelrollout.api.v1alpha1 import ConfigMapKeyRef, DriftSignal
from modelrollout.domain import signals
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.kinds.drift import Distributions
from modelrollout.domain.reference import decode as decode_reference


def measure(counting: Counting, signal: DriftSignal) -> Distributions:
    c = counting.c
    selector = signal.histogram or signal.categories or ""
    label = "le" if signal.histogram is not None else signal.category_label
    if signal.against == "baseline":
        if c.baseline is None:
            raise MeasurementError("against: baseline is judged only by the monitor")
        start, end = c.baseline
        canary = [counting.increases(selector, c.canary_version, label)]
        back = (c.now - end).total_seconds()  # the baseline, as an offset of `back` seconds
        since = start + timedelta(seconds=back)
        reference = [counting.increases(selector, c.canary_version, label, since=since,
                                        offset=back)]  # fmt: skip
    elif signal.reference is not None or signal.offset is not None:
        canary = [counting.increases(selector, c.canary_version, label)]
        if signal.reference is not None:
            text = counting.load_reference(signal.reference)
            reference = [_reference(text, signal.reference)]
        else:
            shift = parse_duration(signal.offset or "0s")
            reference = [counting.increases(selector, c.stable_version, label, offset=shift)]
    else:  # against stable: the same periods of time, so a shared change of mix cancels
        canary_p, stable_p = counting.arms(selector, label)
        canary, reference = counting.slices(canary_p), counting.slices(stable_p)
    if signal.histogram is not None:
        return Distributions([signals.histogram(r) for r in reference],
                             [signals.histogram(x) for x in canary])  # fmt: skip
    names = sorted({k for period in [*reference, *canary] for k in period})
    return Distributions([signals.categorical(r, names) for r in reference],
                         [signals.categorical(x, names) for x in canary])  # fmt: skip


def _reference(text: str, ref: ConfigMapKeyRef) -> dict[str, float]:
    """A frozen reference from a ConfigMap key, as `modelrollout reference` writes it."""
    try:
        return decode_reference(text)
    except ValueError as error:
        raise MeasurementError(
            f"ConfigMap {ref.name} key {ref.key} is not a reference: {error}"
        ) from error
