"""Fakes of the ticker's ports (controller/ports.py) that the tests own: a cluster in memory
with optimistic concurrency, a router, a metrics source and a notifier, each able to fail on
cue. With them, the ticker's stories run in milliseconds, without a cluster.

    world = FakeWorld()
    world.cluster.add(rollout())
    world.ticker().run("ml", "fraud-detector")
"""

from __future__ import annotations

import copy
import functools
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from modelrollout.analysis.prometheus import Prometheus
from modelrollout.analysis.series import Credentials, Increases
from modelrollout.api.v1alpha1 import ModelRolloutSpec, Notifications, PrometheusSource
from modelrollout.controller.tick import Ticker
from modelrollout.domain.judging import Measurement
from modelrollout.domain.machine import Event, Incident, World
from modelrollout.domain.routes import Routes, canary_weight, mirror_of
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import ClusterError, Desired, Manifest, Owner
from modelrollout.routers.base import Acceptance, Capability, Router
from modelrollout.routers.registry import router_for
from modelrollout.testing.cluster import rest_of

Key = tuple[str, str]


class Faults:
    """Errors to raise on cue, per operation: each call of that operation takes the next one."""

    def __init__(self) -> None:
        self._queued: dict[str, list[BaseException]] = {}

    def add(self, operation: str, error: BaseException, times: int = 1) -> None:
        self._queued.setdefault(operation, []).extend([error] * times)

    def check(self, operation: str) -> None:
        queued = self._queued.get(operation)
        if queued:
            raise queued.pop(0)


@dataclass
class FakeDeployment:
    replicas: int
    available: bool


class FakeCluster:
    """ModelRollouts, Deployments, ConfigMaps and Secrets in memory. Status writes check the
    resourceVersion as the API server does (a stale one is a conflict: None)."""

    def __init__(self, *, ready: bool = True) -> None:
        self.rollouts: dict[Key, Manifest] = {}
        self.deployments: dict[Key, FakeDeployment] = {}
        self.services: set[Key] = set()
        self.config: dict[Key, dict[str, str]] = {}
        self.secrets: dict[Key, dict[str, str]] = {}
        self.ready = ready  # whether Deployments become Available as soon as they exist
        self.faults = Faults()
        self.status_writes = 0
        self.reads = 0
        self.corrections: list[str] = []  # what the next converge says it put back
        self.forgotten: list[Key] = []  # rollouts the ticker said were gone
        self.trouble: dict[Key, str] = {}  # (namespace, revision): why its pods are not ready
        self.interruptions: dict[Key, list[Incident]] = {}  # (namespace, revision)
        self.jobs: dict[Key, Manifest] = {}  # created Jobs; a test sets their "outcome"
        self._versions = itertools.count(1)

    def add(self, body: Manifest, namespace: str = "ml") -> Manifest:
        body = copy.deepcopy(body)
        meta = body.setdefault("metadata", {})
        meta.setdefault("namespace", namespace)
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta["generation"] = int(meta.get("generation", 0)) + 1
        meta["resourceVersion"] = str(next(self._versions))
        key = (meta["namespace"], meta["name"])
        if key in self.rollouts:
            body["status"] = self.rollouts[key].get("status")
        self.rollouts[key] = body
        return body

    def annotate(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        meta = self.rollouts[(namespace, name)]["metadata"]
        meta.setdefault("annotations", {}).update(annotations)
        meta["resourceVersion"] = str(next(self._versions))

    def status(self, namespace: str = "ml", name: str = "fraud-detector") -> dict[str, Any]:
        return dict(self.rollouts[(namespace, name)].get("status") or {})

    # -- the port --------------------------------------------------------------------------------

    def read(self, namespace: str, name: str, *, fresh: bool = False) -> Manifest | None:
        self.faults.check("read")
        self.reads += 1
        body = self.rollouts.get((namespace, name))
        return copy.deepcopy(body) if body is not None else None

    def available(self, owner: Owner, deployment: str) -> bool:
        self.faults.check("available")
        seen = self.deployments.get((owner.namespace, deployment))
        return seen is not None and seen.available and seen.replicas > 0

    def incidents(self, owner: Owner, revision: str) -> list[Incident]:
        self.faults.check("incidents")
        return list(self.interruptions.get((owner.namespace, revision), ()))

    def why_unready(self, owner: Owner, revision: str) -> str | None:
        self.faults.check("why_unready")
        return self.trouble.get((owner.namespace, revision))

    def write_status(self, owner: Owner, resource_version: str,
                     status: dict[str, Any]) -> str | None:  # fmt: skip
        self.faults.check("write_status")
        body = self.rollouts.get((owner.namespace, owner.name))
        if body is None or body["metadata"]["resourceVersion"] != resource_version:
            return None
        self.status_writes += 1
        body["status"] = {k: v for k, v in copy.deepcopy(status).items() if v is not None}
        body["metadata"]["resourceVersion"] = str(next(self._versions))
        return str(body["metadata"]["resourceVersion"])

    def converge(self, owner: Owner, desired: Desired) -> list[str]:
        self.faults.check("converge")
        for manifest in desired.apply:
            key = (owner.namespace, manifest["metadata"]["name"])
            if manifest["kind"] == "Deployment":
                self.deployments[key] = FakeDeployment(manifest["spec"]["replicas"], self.ready)
            else:
                self.services.add(key)
        self.services -= {(owner.namespace, name) for name in desired.retire}
        for name, replicas in desired.scale.items():
            if (owner.namespace, name) in self.deployments:
                self.deployments[(owner.namespace, name)].replicas = replicas
        said, self.corrections = self.corrections, []
        return said

    def config_value(self, namespace: str, name: str, key: str) -> str:
        data = self.config.get((namespace, name))
        if data is None or key not in data:
            raise ClusterError(f"reference ConfigMap {namespace}/{name}: not found", 404)
        return data[key]

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        data = self.secrets.get((namespace, name))
        if data is None:
            raise ClusterError(f"Secret {namespace}/{name}: not found", 404)
        return data

    def create_job(self, owner: Owner, job: Manifest) -> None:
        self.faults.check("create_job")
        self.jobs.setdefault((owner.namespace, job["metadata"]["name"]), copy.deepcopy(job))

    def job_outcome(self, namespace: str, name: str) -> tuple[str, str] | None:
        self.faults.check("job_outcome")
        job = self.jobs.get((namespace, name))
        if job is None:
            return None
        state, message = job.get("outcome", ("Running", ""))
        return str(state), str(message)

    def forget(self, namespace: str, name: str) -> None:
        self.forgotten.append((namespace, name))


class FakeRouter:
    """The traffic plan per rollout, as a router would carry it; `weights` keeps the canary's
    weight of a two-arm plan for the stories that read it."""

    capabilities = frozenset({Capability.WEIGHTS})

    def __init__(self, routes: FakeRoutes, key: Key) -> None:
        self._routes = routes
        self._key = key

    def acceptance(self, now: datetime) -> Acceptance:
        return Acceptance(accepted=self._routes.accepted, refused=self._routes.refused)

    def refuses(self, routes: Routes) -> str | None:
        return self._routes.mirror_refused if mirror_of(routes) is not None else None

    def shape(self, world: World) -> World:
        return world

    def apply(self, routes: Routes) -> str | None:
        self._routes.faults.check("apply")
        self._routes.plans[self._key] = routes
        weight = canary_weight(routes, self._key[1])
        if weight is not None:
            self._routes.weights[self._key] = weight
        return None

    def read(self) -> Routes | None:
        self._routes.faults.check("read")
        return self._routes.plans.get(self._key)


class FakeRoutes:
    """The router registry's fake: a FakeRouter for a spec with `traffic.gatewayAPI`."""

    def __init__(self) -> None:
        self.weights: dict[Key, int] = {}
        self.plans: dict[Key, Routes] = {}
        self.faults = Faults()
        self.served = True  # False: no registered router serves the spec
        self.refused: str | None = None  # what the routing controller says, if it refuses
        self.accepted = True  # the routing controller accepted the route at its generation
        self.mirror_refused: str | None = None  # why the data plane cannot mirror, if it cannot

    def __call__(self, owner: Owner, spec: ModelRolloutSpec) -> Router | None:
        if not self.served or spec.traffic.gateway_api is None:
            return None
        return FakeRouter(self, (owner.namespace, owner.name))


Answer = Callable[[str], Measurement]


@dataclass
class FakeSource:
    """A metrics source answering every query with `answer` (a value, none, or an error)."""

    answer: Answer = field(default=lambda _query: Measurement(value=0.0))
    counted: Callable[[str], Increases] = field(default=lambda _selector: Increases())
    queries: list[str] = field(default_factory=list)

    def measure(self, query: str) -> Measurement:
        self.queries.append(query)
        return self.answer(query)

    def increases(self, selector: str, since: datetime, now: datetime, by: str | None = None,
                  *, every: float | None = None) -> Increases:  # fmt: skip
        self.queries.append(selector)
        return self.counted(selector)

    def __call__(self, _source: PrometheusSource, _credentials: Credentials | None) -> FakeSource:
        return self


@dataclass
class FakeNotifier:
    """What was queued for delivery; `broken` makes queuing itself raise."""

    sent: list[tuple[Owner, Event]] = field(default_factory=list)
    broken: bool = False

    def send(self, owner: Owner, event: Event, notifications: Notifications | None,
             version: str) -> None:  # fmt: skip
        if self.broken:
            raise RuntimeError("the notifier is broken")
        self.sent.append((owner, event))

    def reasons(self) -> list[str]:
        return [event.reason for _, event in self.sent]


def real_ticker(api: Any, notifier: FakeNotifier,
                **options: Any) -> tuple[Ticker, KubeCluster]:  # fmt: skip
    """A Ticker on the real adapters without watches (it reads the API server each tick), and
    the cluster adapter, for integration tests that tick by hand."""
    cluster = KubeCluster(rest_of(api))
    routers = functools.partial(router_for, cluster)
    return Ticker(cluster, routers, Prometheus.of, notifier, **options), cluster


@dataclass
class FakeWorld:
    """All four fakes, and a Ticker over them."""

    cluster: FakeCluster = field(default_factory=FakeCluster)
    routes: FakeRoutes = field(default_factory=FakeRoutes)
    source: FakeSource = field(default_factory=FakeSource)
    notifier: FakeNotifier = field(default_factory=FakeNotifier)

    def ticker(self, **options: Any) -> Ticker:
        return Ticker(self.cluster, self.routes, self.source, self.notifier, **options)
