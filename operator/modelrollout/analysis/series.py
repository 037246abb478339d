"""What a metrics source answers, and the arithmetic of counters over periods: pure, so that
the ticker and the evaluation can name them without importing an HTTP client."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Credentials:
    """From the Secret named by authSecretRef: a bearer `token`, or `username` and `password`."""

    token: str | None = None
    username: str | None = None
    password: str | None = None

    @classmethod
    def from_secret_data(cls, data: dict[str, str]) -> Credentials:
        if "token" in data:
            return cls(token=data["token"])
        if "username" in data and "password" in data:
            return cls(username=data["username"], password=data["password"])
        raise ValueError("the auth Secret needs a `token` key, or `username` and `password`")


@dataclass(frozen=True)
class Increases:
    """Counter increases per label value, or the reason they could not be measured."""

    by: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    periods: dict[str, list[float]] = field(default_factory=dict)  # per label value, per period


def period_boundaries(since: float, now: float, every: float | None) -> list[float]:
    """since, since + every, ..., now: the edges of the periods compared like with like."""
    if every is None or every <= 0 or now - since <= every:
        return [since, max(since, now)]
    count = math.ceil((now - since) / every)
    return [since + i * every for i in range(count)] + [now]


def period_increases(samples: list[tuple[float, float]], cuts: list[float]) -> list[float]:
    """The increase of one counter in each period (cuts[i], cuts[i + 1]], from its (timestamp,
    value) samples in order; an increase belongs to the period of the sample that shows it."""
    before = [v for t, v in samples if t <= cuts[0]]
    previous = before[-1] if before else 0.0
    grown = [0.0] * (len(cuts) - 1)
    period = 0
    for t, value in samples:
        if t <= cuts[0] or math.isnan(value):
            continue
        if t > cuts[-1]:
            break
        while t > cuts[period + 1]:
            period += 1
        grown[period] += value - previous if value >= previous else value  # a drop is a reset
        previous = value
    return grown
