"""Measuring: PromQL in, one number (or none, or an error) out, through prometheus-api-client.

This module only measures; judging is the domain's. It never raises for what Prometheus does:
an unreachable server, a timeout, a bad query or an ambiguous result become a Measurement with
an error, which the judge turns into an `Error` verdict (never a pass).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import requests
from prometheus_api_client import PrometheusConnect
from prometheus_api_client.exceptions import PrometheusApiClientException
from urllib3.util.retry import Retry

from modelrollout.analysis.series import (
    Credentials,
    Increases,
    period_boundaries,
    period_increases,
)
from modelrollout.api.v1alpha1 import PrometheusSource
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.judging import Measurement

__all__ = ["Credentials", "Increases", "Prometheus", "period_boundaries", "period_increases"]

# How far before `since` to look for a counter's value at `since`: Prometheus' default staleness.
LOOKBACK_SECONDS = 300


class _Checked(PrometheusConnect):  # type: ignore[misc]  # the client has no type hints
    """prometheus-api-client's connection, with an instant query that reads the answer's
    `status`: its own `custom_query` returns `data.result` of any HTTP 200, so an answer with
    `"status": "error"` and a stale `data` block was read as data (issue 20)."""

    def checked_query(self, query: str, params: dict[str, str] | None = None,
                      timeout: float | None = None) -> Any:  # fmt: skip
        response = self._session.request(
            method=self._method,
            url=f"{self.url}/api/v1/query",
            params={"query": query, **(params or {})},
            verify=self._session.verify,
            headers=self.headers,
            auth=self.auth,
            cert=self._session.cert,
            timeout=timeout,
        )
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            if response.status_code != 200:
                raise PrometheusApiClientException(f"answered HTTP {response.status_code}")
            raise PrometheusApiClientException("answered with no JSON object")
        status = body.get("status")
        if status != "success":
            said = ": ".join(str(body[k]) for k in ("errorType", "error") if body.get(k))
            raise PrometheusApiClientException(
                f"answered HTTP {response.status_code} with status {status!r}"
                + (f" ({said[:200]})" if said else "")
            )
        data = body.get("data")
        if not isinstance(data, dict) or "result" not in data:
            raise PrometheusApiClientException("answered success with no data.result")
        return data["result"]


class Prometheus:
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
        self._client = _Checked(
            url=address, headers=headers or None, auth=auth, timeout=self.timeout, retry=_no_retry()
        )

    @classmethod
    def of(cls, source: PrometheusSource, credentials: Credentials | None) -> Prometheus:
        """The server a rollout's `analysis.prometheus` names."""
        return cls(source.address, timeout=source.timeout, credentials=credentials)

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
            result: Any = self._client.checked_query(
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
            result: Any = self._client.checked_query(query, timeout=self.timeout)
        except (requests.RequestException, PrometheusApiClientException, ValueError) as error:
            return Measurement(error=f"Prometheus at {self.address}: {_short(error)}")
        return _one_number(result)


def _no_retry() -> Retry:
    # Retrying inside one evaluation would hold the tick for minutes; the next interval retries.
    return Retry(total=0)


def _short(error: Exception) -> str:
    """What went wrong in a few words: not the client's text, which repeats the URL-encoded
    query and the connection pool's internals."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    if isinstance(error, requests.ConnectionError):
        return "unreachable (cannot connect)"
    if isinstance(error, requests.HTTPError) and error.response is not None:
        return f"answered HTTP {error.response.status_code}"
    text = str(error).strip().splitlines()
    first = text[0] if text else type(error).__name__
    return first if len(first) <= 200 else first[:197] + "..."


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
