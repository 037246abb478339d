"""Where and how often signals are measured, and the limits that end a rollout."""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from modelrollout.api.durations import parse_duration
from modelrollout.api.v1alpha1.rules import DNS_LABEL_PATTERN, DURATION_PATTERN, Model, cel
from modelrollout.api.v1alpha1.signals import SampleRatio, Signal


class SecretRef(Model):
    name: str = Field(pattern=DNS_LABEL_PATTERN.replace("{0,61}", "{0,251}"), max_length=253)


class PrometheusSource(Model):
    address: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    auth_secret_ref: SecretRef | None = None
    timeout: str = Field(default="10s", pattern=DURATION_PATTERN, max_length=32)


# `0s` would evaluate at every tick, so the operator's tick, not the user, would set how long an
# outage may last before consecutiveErrorLimit rolls back. Sub-second looks read the same scrape
# again. docs/api.md says why the floor is not higher.
MIN_INTERVAL_SECONDS = 1
_INTERVAL_MESSAGE = (
    f"interval must be at least {MIN_INTERVAL_SECONDS}s (0s would evaluate at every tick)"
)


GATE_BUDGET = "30m"

BASELINE_MESSAGE = (
    "drift against: baseline is the monitor's (a promoted model's own first window); a canary "
    "is judged against stable, a reference or an offset"
)


class Analysis(Model):
    model_config = ConfigDict(
        json_schema_extra=cel(
            (
                f"duration(self.interval) >= duration('{MIN_INTERVAL_SECONDS}s')",
                _INTERVAL_MESSAGE,
                ".interval",
            ),
            (
                "!has(self.signals) || self.signals.all(s, !has(s.drift) || "
                "s.drift.against != 'baseline')",
                BASELINE_MESSAGE,
                ".signals",
            ),
        )
    )
    interval: str = Field(default="1m", pattern=DURATION_PATTERN, max_length=32)
    prometheus: PrometheusSource
    failure_limit: int = Field(default=0, ge=0, le=100)
    inconclusive_limit: int = Field(default=3, ge=0, le=100)
    # How long the canary may hold its last weight at the promotion gate while its compare
    # signals gather evidence; then a human is asked, told how much evidence is still needed.
    # What it costs: up to this long of the canary at its last weight, unproven.
    gate_budget: str = Field(default=GATE_BUDGET, pattern=DURATION_PATTERN, max_length=32)
    consecutive_error_limit: int = Field(default=4, ge=0, le=100)
    no_data: Literal["inconclusive", "fail"] = "inconclusive"
    sample_ratio: SampleRatio = Field(default_factory=SampleRatio)
    signals: list[Signal] = Field(
        default_factory=list,
        max_length=32,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["name"],
        },
    )

    @field_validator("interval")
    @classmethod
    def _long_enough(cls, interval: str) -> str:
        if parse_duration(interval) < MIN_INTERVAL_SECONDS:
            raise ValueError(_INTERVAL_MESSAGE)
        return interval

    @field_validator("signals")
    @classmethod
    def _no_baseline(cls, signals: list[Signal]) -> list[Signal]:
        for s in signals:
            if s.drift is not None and s.drift.against == "baseline":
                raise ValueError(BASELINE_MESSAGE)
        return signals

    @model_validator(mode="after")
    def _unique_names(self) -> Analysis:
        names = [s.name for s in self.signals]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"signal names must be unique: {', '.join(duplicates)}")
        return self
