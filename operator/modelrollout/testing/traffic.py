"""Traffic that follows the live HTTPRoute, for tests and the demo.

`read_routing` turns the route's weights into a share per model version (each backend Service is
followed to the revision it selects, and the revision's Deployment to its model version).
`SimulatedTraffic` sends requests in those shares to simulated model versions whose truths the test
sets (accuracy, input distribution, selection rate per segment, error rate), and records them with
`modelrollout.telemetry` for a real Prometheus to scrape.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from kubernetes import client
from prometheus_client import CollectorRegistry

from modelrollout.domain.revision import REVISION_LABEL, VERSION_LABEL
from modelrollout.telemetry import Telemetry
from modelrollout.testing.processes import free_ports

AMOUNT_EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500)


def read_routing(api: client.ApiClient, namespace: str, name: str) -> dict[str, float]:
    """Model version -> share of requests, as the route says now (empty when nothing is routed)."""
    objects, core, apps = client.CustomObjectsApi(api), client.CoreV1Api(api), client.AppsV1Api(api)
    try:
        route: Any = objects.get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", namespace, "httproutes", name
        )
    except client.exceptions.ApiException:
        return {}
    versions: dict[str, str] = {}
    for d in apps.list_namespaced_deployment(namespace).items:
        meta = d.spec.template.metadata if d.spec else None
        labels = (meta.labels if meta else None) or {}
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
        selector = (service.spec.selector if service.spec else None) or {}
        version = versions.get(selector.get(REVISION_LABEL, ""))
        if version:
            shares[version] = shares.get(version, 0.0) + backend["weight"]
    total = sum(shares.values())
    return {v: w / total for v, w in shares.items()} if total else {}


@dataclass(frozen=True)
class Truth:
    """How a simulated model version behaves."""

    accuracy: float = 0.9
    amount_log_mean: float = 4.0  # amounts are log-normal: median e^4 ~ 55
    selection: dict[str, float] = field(default_factory=lambda: {"a": 0.4, "b": 0.4})
    error_rate: float = 0.0


class SimulatedTraffic:
    """`rate` requests a second, split as routed, each recorded by the version that served it."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str,
                 truths: dict[str, Truth], *, rate: int = 500, seed: int = 7) -> None:  # fmt: skip
        self.api, self.namespace, self.name = api, namespace, name
        self.truths, self.rate = truths, rate
        self.telemetry = Telemetry(features={"amount": AMOUNT_EDGES}, registry=CollectorRegistry())
        (self.port,) = free_ports(1)
        self.telemetry.serve(self.port, addr="127.0.0.1")
        self.rng = np.random.default_rng(seed)
        self.shares: dict[str, float] = {}
        # A change every version shares (the world, not a model): accuracy moving by this much a
        # second since `drift_accuracy` was called.
        self._drift = (0.0, time.monotonic())
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self.thread.start()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def drift_accuracy(self, per_second: float) -> None:
        """From now on every version's accuracy moves by `per_second` a second (0 to 1)."""
        self._drift = (per_second, time.monotonic())

    def accuracy(self, truth: Truth) -> float:
        per_second, since = self._drift
        return min(1.0, max(0.0, truth.accuracy + per_second * (time.monotonic() - since)))

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)
        self.telemetry.close()

    def _run(self) -> None:
        tick = 0
        while not self.stopped.is_set():
            if tick % 5 == 0:
                self.shares = read_routing(self.api, self.namespace, self.name)
            self._serve(self.rate // 10)
            tick += 1
            self.stopped.wait(0.1)

    def _serve(self, n: int) -> None:
        versions = [v for v in self.shares if v in self.truths]
        if not versions or n <= 0:
            return
        p = np.array([self.shares[v] for v in versions])
        counts = self.rng.multinomial(n, p / p.sum())
        for version, count in zip(versions, counts, strict=True):
            if count:
                self._answer(version, int(count))

    def _answer(self, version: str, n: int) -> None:
        truth, rng = self.truths[version], self.rng
        model = self.telemetry.model(self.name, version)
        failed = int(rng.binomial(n, truth.error_rate))
        for _ in range(failed):
            model.request("500")
        for amount in rng.lognormal(truth.amount_log_mean, 1.0, n - failed):
            model.inputs({"amount": float(amount)})
            model.request("200")
        segments = list(truth.selection)
        sizes = rng.multinomial(n - failed, [1 / len(segments)] * len(segments))
        for segment, size in zip(segments, sizes, strict=True):
            chosen = int(rng.binomial(size, truth.selection[segment]))
            t = self.telemetry
            t.predictions.labels(self.name, version, segment, "1").inc(chosen)
            t.predictions.labels(self.name, version, segment, "0").inc(size - chosen)
        correct = int(rng.binomial(n - failed, self.accuracy(truth)))
        self.telemetry.feedback.labels(self.name, version, "correct").inc(correct)
        self.telemetry.feedback.labels(self.name, version, "incorrect").inc(n - failed - correct)
