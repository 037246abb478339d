"""Telemetry for Python model servers: the metric conventions modelrollout's signals read.

A few lines in a model server::

    from modelrollout.telemetry import Telemetry

    telemetry = Telemetry(features={"amount": [10, 50, 100, 500, 1000]})
    telemetry.serve(9100)                       # /metrics for Prometheus
    model = telemetry.model("fraud-detector", "2026-11-20")
    model.inputs({"amount": 120.0, "country": "FR"})
    model.request("200", seconds=0.012)
    model.prediction(score=0.91, predicted="1", segment="foreign")
    model.feedback(correct=True)                # when the true label arrives

Metrics (docs/analysis.md): model_requests_total, model_request_duration_seconds,
model_prediction_score, model_feature_value (buckets fixed per feature, so every version and every
frozen reference share them), model_feature_category_total, model_predictions_total,
model_feedback_total. Uses prometheus-client only.
"""

from __future__ import annotations

import bisect
import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
SCORE_BUCKETS = tuple(round(i / 10, 1) for i in range(1, 11))


class _FeatureHistograms(Collector):
    """model_feature_value: one histogram per (model, version, feature), each feature with its
    own fixed edges (prometheus-client's Histogram has one bucket set per metric)."""

    def __init__(self, edges: Mapping[str, Sequence[float]]) -> None:
        self.edges = {f: tuple(sorted(float(e) for e in es)) for f, es in edges.items()}
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], list[float]] = {}
        self._sums: dict[tuple[str, str, str], float] = {}

    def observe(self, model: str, version: str, feature: str, value: float) -> None:
        edges = self.edges[feature]
        key = (model, version, feature)
        with self._lock:
            counts = self._counts.setdefault(key, [0.0] * (len(edges) + 1))
            counts[bisect.bisect_left(edges, value)] += 1
            self._sums[key] = self._sums.get(key, 0.0) + value

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(
            "model_feature_value", "input feature values", labels=["model", "version", "feature"]
        )
        with self._lock:
            snapshot = {k: (list(v), self._sums[k]) for k, v in self._counts.items()}
        for key, (counts, total) in sorted(snapshot.items()):
            edges = self.edges[key[2]]
            running, buckets = 0.0, []
            for edge, count in zip([*edges, math.inf], counts, strict=True):
                running += count
                buckets.append(("+Inf" if math.isinf(edge) else _le(edge), running))
            family.add_metric(list(key), buckets, total)
        yield family


def _le(edge: float) -> str:
    return repr(float(edge))


class Telemetry:
    """The metric families on one registry; `model()` gives a recorder for one model version."""

    def __init__(
        self,
        *,
        features: Mapping[str, Sequence[float]] | None = None,
        latency_buckets: Sequence[float] = LATENCY_BUCKETS,
        score_buckets: Sequence[float] = SCORE_BUCKETS,
        registry: CollectorRegistry = REGISTRY,
    ) -> None:
        r = self.registry = registry
        self.requests = Counter(
            "model_requests", "requests answered", ["model", "version", "code"], registry=r
        )
        self.latency = Histogram(
            "model_request_duration_seconds",
            "time to answer",
            ["model", "version"],
            buckets=latency_buckets,
            registry=r,
        )
        self.score = Histogram(
            "model_prediction_score", "scores", ["model", "version"], buckets=score_buckets,
            registry=r,
        )  # fmt: skip
        self.features = _FeatureHistograms(features or {})
        r.register(self.features)
        self.categories = Counter(
            "model_feature_category",
            "categorical input values",
            ["model", "version", "feature", "category"],
            registry=r,
        )
        self.predictions = Counter(
            "model_predictions",
            "predictions by segment",
            ["model", "version", "segment", "predicted"],
            registry=r,
        )
        self.feedback = Counter(
            "model_feedback", "labelled outcomes", ["model", "version", "outcome"], registry=r
        )
        self._server: Any = None

    def model(self, name: str, version: str) -> ModelRecorder:
        return ModelRecorder(self, name, version)

    def serve(self, port: int, addr: str = "0.0.0.0") -> None:  # noqa: S104 (a pod's metrics port)
        """Serve /metrics on `port` in a background thread."""
        self._server = start_http_server(port, addr=addr, registry=self.registry)

    def close(self) -> None:
        if self._server is not None:
            server, thread = self._server
            server.shutdown()
            server.server_close()
            thread.join(timeout=5)
            self._server = None


@dataclass(frozen=True)
class ModelRecorder:
    """Records what one model version does; every metric carries its model and version."""

    telemetry: Telemetry
    name: str
    version: str

    def request(self, code: str | int = "200", seconds: float | None = None) -> None:
        t = self.telemetry
        t.requests.labels(self.name, self.version, str(code)).inc()
        if seconds is not None:
            t.latency.labels(self.name, self.version).observe(seconds)

    def inputs(self, values: Mapping[str, float | str]) -> None:
        """Numeric features with declared edges go to model_feature_value; strings are
        categories; other numbers are not recorded (declare their edges to drift-check them)."""
        t = self.telemetry
        for feature, value in values.items():
            if isinstance(value, str):
                t.categories.labels(self.name, self.version, feature, value).inc()
            elif feature in t.features.edges:
                t.features.observe(self.name, self.version, feature, float(value))

    def prediction(self, score: float | None = None, predicted: str | int = "1",
                   segment: str = "all") -> None:  # fmt: skip
        t = self.telemetry
        if score is not None:
            t.score.labels(self.name, self.version).observe(score)
        t.predictions.labels(self.name, self.version, segment, str(predicted)).inc()

    def feedback(self, correct: bool) -> None:
        outcome = "correct" if correct else "incorrect"
        self.telemetry.feedback.labels(self.name, self.version, outcome).inc()


__all__ = ["LATENCY_BUCKETS", "SCORE_BUCKETS", "ModelRecorder", "Telemetry"]
