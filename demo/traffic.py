"""The demo's model service and its users, in one process.

Every request is routed as the HTTPRoute says right now (weights read from the API server each
second, each Service followed to the model version its revision serves), answered by that
version's model, scored against the true label, and recorded in the telemetry conventions of
analysis.md, which Prometheus scrapes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kubernetes import client
from models import Model, ServingError, draw
from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from modelrollout.domain.revision import REVISION_LABEL, VERSION_LABEL
from modelrollout.testing.processes import free_ports

MODEL = "fraud-detector"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))
AMOUNT_BUCKETS = (10, 25, 50, 100, 250, 500, 1000, 2500)


class Telemetry:
    """The metric conventions of analysis.md, on one registry served over HTTP."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.requests = Counter(
            "model_requests", "requests", ["model", "version", "code"], registry=r
        )
        self.latency = Histogram("model_request_duration_seconds", "latency", ["model", "version"],
                                 buckets=LATENCY_BUCKETS, registry=r)  # fmt: skip
        self.score = Histogram("model_prediction_score", "score", ["model", "version"],
                               buckets=SCORE_BUCKETS, registry=r)  # fmt: skip
        self.feature = Histogram("model_feature_value", "input", ["model", "version", "feature"],
                                 buckets=AMOUNT_BUCKETS, registry=r)  # fmt: skip
        self.predictions = Counter(
            "model_predictions",
            "predictions",
            ["model", "version", "segment", "predicted"],
            registry=r,
        )
        self.feedback = Counter(
            "model_feedback", "labelled outcomes", ["model", "version", "outcome"], registry=r
        )
        (self.port,) = free_ports(1)
        self.server, self.thread = start_http_server(self.port, addr="127.0.0.1", registry=r)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


@dataclass
class Routing:
    """Which model version gets which share of requests, as the cluster says now."""

    shares: dict[str, float] = field(default_factory=dict)


def read_routing(api: client.ApiClient, namespace: str, name: str) -> Routing:
    objects, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        route: Any = objects.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
        )
    except client.exceptions.ApiException:
        return Routing()
    versions: dict[str, str] = {}
    for d in apps.list_namespaced_deployment(namespace).items:
        labels = d.spec.template.metadata.labels or {}
        if REVISION_LABEL in labels:
            versions[labels[REVISION_LABEL]] = labels[VERSION_LABEL]
    shares: dict[str, float] = {}
    for backend in route["spec"]["rules"][0]["backendRefs"]:
        if backend.get("weight", 0) <= 0:
            continue
        try:
            service = core.read_namespaced_service(backend["name"], namespace)
        except client.exceptions.ApiException:
            continue
        version = versions.get((service.spec.selector or {}).get(REVISION_LABEL, ""))
        if version:
            shares[version] = shares.get(version, 0.0) + backend["weight"]
    total = sum(shares.values())
    return Routing({v: w / total for v, w in shares.items()} if total else {})


class TrafficGenerator:
    """`rate` requests a second, split as routed, until stopped."""

    def __init__(self, api: client.ApiClient, namespace: str, models: dict[str, Model],
                 telemetry: Telemetry, rate: int = 200) -> None:  # fmt: skip
        self.api, self.namespace, self.models = api, namespace, models
        self.telemetry, self.rate = telemetry, rate
        self.routing = Routing()
        self.stopped = threading.Event()
        self.rng = np.random.default_rng(2026)
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def _run(self) -> None:
        last_read = 0.0
        while not self.stopped.is_set():
            if time.monotonic() - last_read >= 1.0:
                self.routing = read_routing(self.api, self.namespace, MODEL)
                last_read = time.monotonic()
            self._serve(self.rate // 10)
            self.stopped.wait(0.1)

    def _serve(self, n: int) -> None:
        if not self.routing.shares:
            return
        versions = list(self.routing.shares)
        chosen = self.rng.choice(
            len(versions), size=n, p=[self.routing.shares[v] for v in versions]
        )
        batch = draw(self.rng, n)
        for index, version in enumerate(versions):
            rows = np.flatnonzero(chosen == index)
            for row in rows:
                self._answer(version, batch.x[row : row + 1], int(batch.y[row]))

    def _answer(self, version: str, x: Any, truth: int) -> None:
        t, labels = self.telemetry, {"model": MODEL, "version": version}
        t.feature.labels(**labels, feature="amount").observe(float(x[0, 0]))
        started = time.perf_counter()
        try:
            score = float(self.models[version].score(x)[0])
        except ServingError:
            t.requests.labels(**labels, code="500").inc()
            return
        # the model's own time, plus the network and framework time a real server adds
        latency = time.perf_counter() - started + float(self.rng.gamma(2.0, 0.01))
        t.latency.labels(**labels).observe(latency)
        t.requests.labels(**labels, code="200").inc()
        t.score.labels(**labels).observe(score)
        predicted = int(score >= 0.5)
        segment = "foreign" if x[0, 3] else "domestic"
        t.predictions.labels(**labels, segment=segment, predicted=str(predicted)).inc()
        outcome = "correct" if predicted == truth else "incorrect"
        t.feedback.labels(**labels, outcome=outcome).inc()
