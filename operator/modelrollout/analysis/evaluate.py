"""One evaluation: every signal of a rollout measured in Prometheus and judged, plus the sample
ratio check. Measuring is here; judging is the domain's (judging.py, signals.py).

Compare, drift and fairness count since the canary started (`canary_since`), canary and stable
told apart by the `version` template variable, which is rendered once per arm.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from modelrollout.analysis.series import Increases, period_boundaries
from modelrollout.api import settings
from modelrollout.api.v1alpha1 import (
    Analysis,
    CompareSignal,
    ConfigMapKeyRef,
    DriftSignal,
    FairnessSignal,
    Signal,
    SignalResult,
    ThresholdSignal,
)
from modelrollout.domain import signals
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.judging import Measurement, judge_threshold
from modelrollout.domain.reference import decode as decode_reference
from modelrollout.domain.signals import Segments
from modelrollout.domain.templating import TemplateError, render

# The shortest period within which canary and stable are compared (docs/analysis.md): several
# scrape intervals, so that every period holds samples of both arms' series.
PERIOD_SECONDS = settings.PERIOD_SECONDS.number()


def period_of(analysis: Analysis) -> float:
    """How long each period compared like with like is: the interval, at least PERIOD_SECONDS."""
    return max(parse_duration(analysis.interval), PERIOD_SECONDS)


# Routers take a moment to apply a new weight everywhere; requests in flight meanwhile went by
# the old one. The sample ratio window starts this long after the weight was seen on the route.
SETTLE = timedelta(seconds=10)

LoadReference = Callable[[ConfigMapKeyRef], str]
PerPeriod = dict[str, list[float]]  # label value -> increase in each period


class MetricsSource(Protocol):
    """Where signals are measured (analysis/prometheus.py `Prometheus`; a fake in tests)."""

    def increases(self, selector: str, since: datetime, now: datetime, by: str | None = None,
                  *, every: float | None = None) -> Increases: ...  # fmt: skip

    def measure(self, query: str) -> Measurement: ...


class MeasurementError(Exception):
    """A signal could not be measured; the message says why, and becomes an Error verdict."""


@dataclass(frozen=True)
class Context:
    """What one evaluation knows about the rollout."""

    values: dict[str, str]  # template values; `version` is the canary's
    canary_version: str
    stable_version: str
    canary_since: datetime
    now: datetime
    weight: int
    weight_since: datetime | None
    at: str
    # Compare, drift against stable and fairness compare the arms within periods this long
    # (docs/analysis.md); None compares them over the whole canary at once.
    period: float | None = None
    # Each compare signal's place in the rollout's plan (machine.plans); none: no planned looks.
    plans: dict[str, signals.Plan] = field(default_factory=dict)


class Evaluation:
    def __init__(self, source: MetricsSource, context: Context,
                 load_reference: LoadReference) -> None:  # fmt: skip
        self.source = source
        self.c = context
        self.load_reference = load_reference
        self._matched = False  # did the current signal's selectors match any series

    def run(self, analysis: Analysis) -> list[SignalResult]:
        results = [self._one(signal) for signal in analysis.signals]
        ratio = self._sample_ratio(analysis)
        return [*results, ratio] if ratio is not None else results

    def _one(self, signal: Signal) -> SignalResult:
        try:
            return self._judge(signal)
        except (MeasurementError, TemplateError, ValueError) as error:
            return signals.error(signal.name, signal.kind, str(error), self.c.at)
        except Exception as error:  # a fault in one signal is that signal's Error verdict
            return signals.error(signal.name, signal.kind, unexpected(error), self.c.at)

    def _judge(self, signal: Signal) -> SignalResult:
        """Measure the signal by its kind's entry in KINDS; the verdict is the domain's, told
        whether any series matched (a kind that counts says Inconclusive, not NoData, while
        series exist but nothing was counted yet)."""
        measure = KINDS.get(signal.kind)
        if measure is None:
            return signals.error(signal.name, signal.kind, "a signal of no known kind", self.c.at)
        self._matched = False
        result = measure(self, signal.name, getattr(signal, signal.kind))
        return result if signal.kind == "threshold" else signals.gathering(result, self._matched)

    def _threshold(self, name: str, signal: ThresholdSignal) -> SignalResult:
        measured = self.source.measure(render(signal.query, self.c.values))
        return judge_threshold(name, signal, measured, self.c.at)

    # -- measuring per arm -----------------------------------------------------------------------

    def _arm(self, version: str) -> dict[str, str]:
        return {**self.c.values, "version": version}

    def _distinct_arms(self) -> None:
        if self.c.canary_version == self.c.stable_version:
            raise MeasurementError(
                f"canary and stable both have model version {self.c.canary_version!r}: the "
                "version label cannot tell the arms apart; give the new model its own version"
            )

    def _counted(self, selector: str, version: str, by: str | None = None, *,
                 since: datetime | None = None, offset: float = 0.0,
                 every: float | None = None) -> Increases:  # fmt: skip
        """One arm's counter increases since `since` (the canary's start), `offset` back in time,
        in total and per period of `every` seconds."""
        shift = timedelta(seconds=offset)
        start = (since or self.c.canary_since) - shift
        measured: Increases = self.source.increases(
            render(selector, self._arm(version)), start, self.c.now - shift, by, every=every
        )
        if measured.error is not None:
            raise MeasurementError(measured.error)
        self._matched |= bool(measured.by)
        return measured

    def _increases(self, selector: str, version: str, by: str | None = None, *,
                   since: datetime | None = None,
                   offset: float = 0.0) -> dict[str, float]:  # fmt: skip
        return self._counted(selector, version, by, since=since, offset=offset).by

    def _periods(self, selector: str, version: str, by: str | None = None) -> PerPeriod:
        return self._counted(selector, version, by, every=self.c.period).periods

    def _arms(self, selector: str, by: str | None = None) -> tuple[PerPeriod, PerPeriod]:
        """Both arms' increases per label value and per period."""
        self._distinct_arms()
        return (
            self._periods(selector, self.c.canary_version, by),
            self._periods(selector, self.c.stable_version, by),
        )

    @property
    def _count(self) -> int:
        """How many periods the canary's time is cut into."""
        since, now = self.c.canary_since.timestamp(), self.c.now.timestamp()
        return len(period_boundaries(since, now, self.c.period)) - 1

    @staticmethod
    def _at(measured: PerPeriod, key: str, period: int) -> float:
        values = measured.get(key)
        return values[period] if values is not None and period < len(values) else 0.0

    def _slices(self, measured: PerPeriod) -> list[dict[str, float]]:
        """Per period: label value -> increase."""
        return [{k: self._at(measured, k, i) for k in measured} for i in range(self._count)]

    # -- each kind ---------------------------------------------------------------------------------

    def _compare(self, name: str, signal: CompareSignal) -> SignalResult:
        if signal.histogram is not None:
            canary, stable = self._arms(signal.histogram, "le")
            return signals.judge_compare_histogram(
                name, signal, [signals.histogram(h) for h in self._slices(canary)],
                [signals.histogram(h) for h in self._slices(stable)], self.c.at,
                plan=self.c.plans.get(name),
            )  # fmt: skip
        won_c, won_s = self._arms(signal.successes or "")
        all_c, all_s = self._arms(signal.total or "")
        strata = [
            (self._at(won_c, "", i), self._at(all_c, "", i), self._at(won_s, "", i),
             self._at(all_s, "", i))
            for i in range(self._count)
        ]  # fmt: skip
        return signals.judge_compare_rate(name, signal, strata, self.c.at,
                                          plan=self.c.plans.get(name))  # fmt: skip

    def _drift(self, name: str, signal: DriftSignal) -> SignalResult:
        selector = signal.histogram or signal.categories or ""
        label = "le" if signal.histogram is not None else signal.category_label
        if signal.reference is not None or signal.offset is not None:
            canary = [self._increases(selector, self.c.canary_version, label)]
            if signal.reference is not None:
                reference = [_reference(self.load_reference(signal.reference), signal.reference)]
            else:
                shift = parse_duration(signal.offset or "0s")
                reference = [self._increases(selector, self.c.stable_version, label,
                                             offset=shift)]  # fmt: skip
        else:  # against stable: the same periods of time, so a shared change of mix cancels
            canary_p, stable_p = self._arms(selector, label)
            canary, reference = self._slices(canary_p), self._slices(stable_p)
        if signal.histogram is not None:
            ref_h = [signals.histogram(r) for r in reference]
            can_h = [signals.histogram(c) for c in canary]
        else:
            names = sorted({k for period in [*reference, *canary] for k in period})
            ref_h = [signals.categorical(r, names) for r in reference]
            can_h = [signals.categorical(c, names) for c in canary]
        return signals.judge_drift(name, signal, ref_h, can_h, self.c.at)

    def _fairness(self, name: str, signal: FairnessSignal) -> SignalResult:
        selected_c, selected_s = self._arms(signal.selected, signal.segment_label)
        total_c, total_s = self._arms(signal.total, signal.segment_label)
        canary = [Segments(sel, tot) for sel, tot in
                  zip(self._slices(selected_c), self._slices(total_c), strict=True)]  # fmt: skip
        stable = [Segments(sel, tot) for sel, tot in
                  zip(self._slices(selected_s), self._slices(total_s), strict=True)]  # fmt: skip
        return signals.judge_fairness(name, signal, canary, stable, self.c.at)

    def _sample_ratio(self, analysis: Analysis) -> SignalResult | None:
        check = analysis.sample_ratio
        if not check.enabled or self.c.weight_since is None or not 0 < self.c.weight < 100:
            return None
        since = self.c.weight_since + SETTLE
        if since >= self.c.now or self.c.canary_version == self.c.stable_version:
            return None
        try:
            canary = self._increases(check.requests, self.c.canary_version, since=since)
            stable = self._increases(check.requests, self.c.stable_version, since=since)
            return signals.judge_sample_ratio(
                check, canary.get(""), stable.get(""), self.c.weight, self.c.at
            )
        except (MeasurementError, TemplateError, ValueError) as error:
            return signals.error(signals.SAMPLE_RATIO, "sampleRatio", str(error), self.c.at)
        except Exception as error:
            return signals.error(signals.SAMPLE_RATIO, "sampleRatio", unexpected(error), self.c.at)


# How each kind of signal is measured: one entry per kind (its judge is in domain/signals.py).
Measure = Callable[[Evaluation, str, Any], SignalResult]
KINDS: dict[str, Measure] = {
    "threshold": Evaluation._threshold,
    "compare": Evaluation._compare,
    "drift": Evaluation._drift,
    "fairness": Evaluation._fairness,
}


def unexpected(error: BaseException) -> str:
    """A short, readable line for an error nobody planned for: what failed, not a traceback."""
    lines = str(error).strip().splitlines()
    detail = lines[0][:200] if lines else ""
    kind = type(error).__name__
    said = f": {detail}" if detail else ""
    return f"could not measure or judge{said} ({kind})"


def failed_everywhere(analysis: Analysis, message: str, at: str) -> list[SignalResult]:
    """Every signal an Error with one reason: nothing could be measured (no credentials)."""
    return [signals.error(s.name, s.kind, message, at) for s in analysis.signals]


def _reference(text: str, ref: ConfigMapKeyRef) -> dict[str, float]:
    """A frozen reference from a ConfigMap key, as `modelrollout reference` writes it."""
    try:
        return decode_reference(text)
    except ValueError as error:
        raise MeasurementError(
            f"ConfigMap {ref.name} key {ref.key} is not a reference: {error}"
        ) from error
