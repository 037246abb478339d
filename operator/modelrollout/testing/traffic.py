"""Traffic that follows the live HTTPRoute, for tests and the demo.

`read_routing` turns the canary's weight, read through the product's router, into a share per
model version (the stable and canary Services are followed to the revisions they select, and each
revision's Deployment to its model version).
`SimulatedTraffic` sends requests in those shares to simulated model versions whose truths the test
sets (accuracy, input distribution, selection rate per segment, error rate), and records them with
`modelrollout.telemetry` for a real Prometheus to scrape.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np
from kubernetes import client
from prometheus_client import CollectorRegistry

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.domain.revision import (
    REVISION_LABEL,
    VERSION_LABEL,
)
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers.registry import router_for
from modelrollout.telemetry import Telemetry
from modelrollout.testing.cluster import rest_of
from modelrollout.testing.processes import free_ports

AMOUNT_EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500)
# The selectors of the simulated telemetry, one arm each (the `version` template variable).
ARM = 'model="{{ model }}",version="{{ version }}"'
AMOUNTS = f'model_feature_value_bucket{{{ARM},feature="amount"}}'


def read_routing(api: client.ApiClient, namespace: str, name: str) -> dict[str, float]:
    """Model version -> share of requests, as the route says now (empty when nothing is routed).

    The plan is read through the product's own router (routers/registry.py), so the same traffic
    follows whichever router the rollout names, with two arms or an A/B/n phase's many."""
    cluster = KubeCluster(rest_of(api))
    body = cluster.read(namespace, name)
    if body is None:
        return {}
    meta = body["metadata"]
    spec = ModelRolloutSpec.model_validate(body["spec"])
    router = router_for(cluster, Owner(name, namespace, meta["uid"]), spec)
    plan = router.read() if router is not None else None
    if plan is None:
        return {}
    core, apps = client.CoreV1Api(api), client.AppsV1Api(api)
    versions: dict[str, str] = {}
    for d in apps.list_namespaced_deployment(namespace).items:
        template = d.spec.template.metadata if d.spec else None
        labels = (template.labels if template else None) or {}
        if REVISION_LABEL in labels:
            versions[labels[REVISION_LABEL]] = labels[VERSION_LABEL]
    shares: dict[str, float] = {}
    for service, share in plan.split().items():
        if share <= 0:
            continue
        try:
            found = core.read_namespaced_service(service, namespace).spec
        except client.exceptions.ApiException:
            continue
        selector = (found.selector if found else None) or {}
        version = versions.get(selector.get(REVISION_LABEL, ""))
        if version:
            shares[version] = shares.get(version, 0.0) + share
    total = sum(shares.values())
    return {v: w / total for v, w in shares.items()} if total else {}


@dataclass(frozen=True)
class Truth:
    """How a simulated model version behaves."""

    accuracy: float = 0.9
    amount_log_mean: float = 4.0  # amounts are log-normal: median e^4 ~ 55
    selection: dict[str, float] = field(default_factory=lambda: {"a": 0.4, "b": 0.4})
    error_rate: float = 0.0


class RoutedTraffic:
    """`rate` requests a second, split as the route says now (read every `every` seconds), each
    batch answered by `answer(version, n)`; one thread, until `close`. The harness's simulated
    versions and the demo's real models both stand on it."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str, *, rate: int,
                 seed: int, every: float = 0.5) -> None:  # fmt: skip
        self.api, self.namespace, self.name, self.rate = api, namespace, name, rate
        self.rng = np.random.default_rng(seed)
        self.every = every
        self.shares: dict[str, float] = {}
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._run, name="traffic", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)

    def serves(self, version: str) -> bool:
        return True

    def answer(self, version: str, n: int) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        last_read = -math.inf
        while not self.stopped.is_set():
            if time.monotonic() - last_read >= self.every:
                self.shares = read_routing(self.api, self.namespace, self.name)
                last_read = time.monotonic()
            self._serve(self.rate // 10)
            self.stopped.wait(0.1)

    def _serve(self, n: int) -> None:
        versions = [v for v in self.shares if self.serves(v)]
        if not versions or n <= 0:
            return
        p = np.array([self.shares[v] for v in versions])
        counts = self.rng.multinomial(n, p / p.sum())
        for version, count in zip(versions, counts, strict=True):
            if count:
                self.answer(version, int(count))


class SimulatedTraffic(RoutedTraffic):
    """Simulated model versions whose truths the test sets, recorded by the version that served
    each request."""

    def __init__(self, api: client.ApiClient, namespace: str, name: str,
                 truths: dict[str, Truth], *, rate: int = 500, seed: int = 7) -> None:  # fmt: skip
        super().__init__(api, namespace, name, rate=rate, seed=seed)
        self.truths = truths
        self.telemetry = Telemetry(features={"amount": AMOUNT_EDGES}, registry=CollectorRegistry())
        (self.port,) = free_ports(1)
        self.telemetry.serve(self.port, addr="127.0.0.1")
        # A change every version shares (the world, not a model): accuracy moving by this much a
        # second since `drift_accuracy` was called.
        self._drift = (0.0, time.monotonic())
        self.start()

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
        self.stop()
        self.telemetry.close()

    def serves(self, version: str) -> bool:
        return version in self.truths

    def answer(self, version: str, n: int) -> None:
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
