"""Measuring: PromQL in, one number (or none, or an error) out, through prometheus-api-client.

This module only measures; judging is the domain's. It never raises for what Prometheus does:
an unreachable server, a timeout, a bad query or an ambiguous result become a Measurement with
an error, which the judge turns into an `Error` verdict (never a pass).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from modelrollout.domain.durations import parse_duration
from modelrollout.domain.judging import Measurement

# How far before `since` to look for a counter's value at `since`: Prometheus' default staleness.
LOOKBACK_SECONDS = 300


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


class PrometheusSource:
    """One Prometheus server. `measure` blocks: the ticker calls it from its worker thread."""

    def __init__(
        self, address: str, *, timeout: str = "10s", credentials: Credentials | None = None
    ) -> None:
        headers = {}
        auth = None
        if credentials is not None and credentials.token:
            headers["Authorization"] = f"Bearer {credentials.token}"
        elif credentials is not None and credentials.username is not None:
            auth = (credentials.username, credentials.password or "")
        self.address = address
        self.timeout = parse_duration(timeout)
        self._client = PrometheusConnect(
            url=address, headers=headers or None, auth=auth, timeout=self.timeout, retry=_no_retry()
        )

    def increases(self, selector: str, since: datetime, now: datetime, by: str | None = None,
                  *, every: float | None = None) -> Increases:  # fmt: skip
        """How much each counter matching `selector` grew from `since` to `now`, summed per value
        of the label `by` (or in total, under ""), and per period of `every` seconds from `since`
        (the last one ends at `now`; one period when `every` is None).

        Reads the raw samples (`selector[window]`) and adds up the increases itself: a drop is a
        counter reset (the new value is the increase since it), a series born after `since`
        counts from zero, and nothing is extrapolated, unlike `increase()`. An increase belongs
        to the period of the sample that shows it. The window reaches LOOKBACK further back, to
        find each older series' value at `since`."""
        span = max(0.0, (now - since).total_seconds())
        window = math.ceil(span) + LOOKBACK_SECONDS
        try:
            result: Any = self._client.custom_query(
                f"{selector.strip()}[{window}s]",
                params={"time": f"{now.timestamp():.3f}"},
                timeout=self.timeout,
            )
        except (requests.RequestException, PrometheusApiClientException, ValueError) as error:
            return Increases(error=f"Prometheus at {self.address}: {_short(error)}")
        if not isinstance(result, list):
            return Increases(error=f"unexpected result type {type(result).__name__}")
        cuts = period_boundaries(since.timestamp(), now.timestamp(), every)
        periods: dict[str, list[float]] = {}
        for series in result:
            values = series.get("values")
            if not isinstance(values, list):
                return Increases(error="the selector did not give a range of samples")
            key = (series.get("metric") or {}).get(by, "") if by else ""
            samples = [(float(t), float(v)) for t, v in values]
            if any(math.isinf(v) for _, v in samples):
                return Increases(error=f"{selector.strip()}: a counter sample is infinite")
            grown = period_increases(samples, cuts)
            known = periods.setdefault(key, [0.0] * len(grown))
            periods[key] = [a + b for a, b in zip(known, grown, strict=True)]
        return Increases({k: sum(v) for k, v in periods.items()}, periods=periods)

    def measure(self, query: str) -> Measurement:
        try:
            result: Any = self._client.custom_query(query, timeout=self.timeout)
        except (requests.RequestException, PrometheusApiClientException, ValueError) as error:
            return Measurement(error=f"Prometheus at {self.address}: {_short(error)}")
        return _one_number(result)


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


def _no_retry() -> Retry:
    # Retrying inside one evaluation would hold the tick for minutes; the next interval retries.
    return Retry(total=0)


def _short(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _one_number(result: Any) -> Measurement:
    """A vector of one sample or a scalar gives a number; an empty vector gives none."""
    if isinstance(result, list) and len(result) == 2 and not isinstance(result[0], dict):
        return Measurement(value=float(result[1]))  # a scalar: [timestamp, "value"]
    if not isinstance(result, list):
        return Measurement(error=f"unexpected result type {type(result).__name__}")
    if not result:
        return Measurement()
    if len(result) > 1:
        return Measurement(
            error=f"the query returned {len(result)} series; aggregate it to one (sum, max, ...)"
        )
    sample = result[0].get("value")
    if not isinstance(sample, list) or len(sample) != 2:
        return Measurement(error="the query returned a range, not an instant value")
    return Measurement(value=float(sample[1]))
