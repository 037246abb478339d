"""Counting per arm: what every signal kind's measure shares. Canary and stable are told apart
by the `version` template variable, rendered once per arm; increases are counted since the
canary started (`canary_since`), in total and per period (docs/analysis.md)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from modelrollout.analysis.series import Increases, period_boundaries
from modelrollout.api.v1alpha1 import ConfigMapKeyRef
from modelrollout.domain import signals
from modelrollout.domain.judging import Measurement
from modelrollout.domain.templating import render

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
    # The monitor's baseline window (its first after promotion), for a drift against: baseline.
    baseline: tuple[datetime, datetime] | None = None
    # When the current step began: the canary's requests are counted from then (Evaluation.served).
    step_since: datetime | None = None
    # Sticky buckets in effect: how many are treatment and control (cohorts.bucket_counts).
    buckets: tuple[int, int] | None = None
    # A shadow step in effect: the share it mirrors, whether it mirrors every request (no
    # `match`), and since when the mirror is on the route (None: not yet).
    shadow: int | None = None
    shadow_all: bool = True
    mirror_since: datetime | None = None


class Counting:
    """One signal's measuring: the source, the context, and whether any selector matched a
    series (a kind that counts says Inconclusive, not NoData, while series exist but nothing
    was counted yet: `signals.gathering`)."""

    def __init__(self, source: MetricsSource, context: Context,
                 load_reference: LoadReference) -> None:  # fmt: skip
        self.source = source
        self.c = context
        self.load_reference = load_reference
        self.matched = False

    def values(self, version: str | None = None) -> dict[str, str]:
        """The template values, for one arm when `version` is given."""
        return self.c.values if version is None else {**self.c.values, "version": version}

    def distinct_arms(self) -> None:
        if self.c.canary_version == self.c.stable_version:
            raise MeasurementError(
                f"canary and stable both have model version {self.c.canary_version!r}: the "
                "version label cannot tell the arms apart; give the new model its own version"
            )

    def counted(self, selector: str, version: str, by: str | None = None, *,
                since: datetime | None = None, offset: float = 0.0,
                every: float | None = None) -> Increases:  # fmt: skip
        """One arm's counter increases since `since` (the canary's start), `offset` back in time,
        in total and per period of `every` seconds."""
        shift = timedelta(seconds=offset)
        start = (since or self.c.canary_since) - shift
        measured: Increases = self.source.increases(
            render(selector, self.values(version)), start, self.c.now - shift, by, every=every
        )
        if measured.error is not None:
            raise MeasurementError(measured.error)
        self.matched |= bool(measured.by)
        return measured

    def increases(self, selector: str, version: str, by: str | None = None, *,
                  since: datetime | None = None,
                  offset: float = 0.0) -> dict[str, float]:  # fmt: skip
        return self.counted(selector, version, by, since=since, offset=offset).by

    def periods(self, selector: str, version: str, by: str | None = None) -> PerPeriod:
        return self.counted(selector, version, by, every=self.c.period).periods

    def arms(self, selector: str, by: str | None = None) -> tuple[PerPeriod, PerPeriod]:
        """Both arms' increases per label value and per period."""
        self.distinct_arms()
        return (
            self.periods(selector, self.c.canary_version, by),
            self.periods(selector, self.c.stable_version, by),
        )

    @property
    def count(self) -> int:
        """How many periods the canary's time is cut into."""
        since, now = self.c.canary_since.timestamp(), self.c.now.timestamp()
        return len(period_boundaries(since, now, self.c.period)) - 1

    @staticmethod
    def at(measured: PerPeriod, key: str, period: int) -> float:
        values = measured.get(key)
        return values[period] if values is not None and period < len(values) else 0.0

    def slices(self, measured: PerPeriod) -> list[dict[str, float]]:
        """Per period: label value -> increase."""
        return [{k: self.at(measured, k, i) for k in measured} for i in range(self.count)]
