"""Fault injection at each stage of a tick, against the real API server and a real Prometheus.

Whatever fails, the rollout never stalls silently: the fault shows where users look within one
tick, a human's `abort` still takes the canary's traffic away, and past the limit the operator
itself takes it away rather than leave a canary serving unwatched.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

import pytest
from kubernetes import client

from modelrollout.controller import metrics
from modelrollout.controller.tick import TICK_FAILED, Ticker
from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.domain.kinds import JUDGES
from modelrollout.domain.machine import Event
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import ClusterError
from modelrollout.k8s.rest import ApiError
from modelrollout.routers.gateway_api import canary_weight_of
from modelrollout.testing.cluster import LocalCluster
from modelrollout.testing.fakes import FakeNotifier, real_ticker
from modelrollout.testing.manifests import rollout
from modelrollout.testing.prometheus import PrometheusPool
from modelrollout.testing.traefik import Traefik

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("modelrollout_crd")]
NAME = "fraud-detector"
LIMIT = 3


@dataclass
class Scene:
    cluster: LocalCluster
    kube: client.ApiClient
    namespace: str
    manifest: dict[str, Any]
    notifier: FakeNotifier = field(default_factory=FakeNotifier)
    ticker: Ticker = field(init=False)
    adapter: KubeCluster = field(init=False)

    def __post_init__(self) -> None:
        self.ticker, self.adapter = real_ticker(self.kube, self.notifier, fault_limit=LIMIT)

    @property
    def events(self) -> list[Event]:
        return [event for _, event in self.notifier.sent]

    def apply(self) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-",
                             stdin=json.dumps(self.manifest))  # fmt: skip

    def tick(self) -> None:
        time.sleep(1.05)  # the analysis interval is 1s: every tick evaluates
        assert self.ticker.run(self.namespace, NAME) is not None

    def stored(self) -> dict[str, Any]:
        body = client.CustomObjectsApi(self.kube).get_namespaced_custom_object(
            "modelrollout.io", "v1alpha1", self.namespace, "modelrollouts", NAME
        )
        return cast(dict[str, Any], body)

    def status(self) -> dict[str, Any]:
        return cast(dict[str, Any], self.stored().get("status") or {})

    def route_weight(self) -> int | None:
        route = client.CustomObjectsApi(self.kube).get_namespaced_custom_object(
            "gateway.networking.k8s.io", "v1", self.namespace, "httproutes", NAME
        )
        return canary_weight_of(cast(dict[str, Any], route), NAME)

    def abort(self) -> None:
        command = encode(new_command("abort", "ana"))
        self.cluster.kubectl("annotate", "--overwrite", "-n", self.namespace, "mro", NAME,
                             f"{COMMAND_ANNOTATION}={command}")  # fmt: skip


@pytest.fixture
def scene(cluster: LocalCluster, kube: client.ApiClient, namespace: str,
          prometheus: PrometheusPool, gateway: Traefik) -> Scene:  # fmt: skip
    """v1 stable, v2 a canary at 20% that waits at a pause step, its one signal passing; Traefik
    accepts the route (a step's weight counts only once a controller has)."""
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(namespace))
    server = prometheus([])
    manifest = rollout()
    manifest["spec"]["strategy"]["steps"] = [{"setWeight": 20}, {"pause": {}}]
    manifest["spec"]["analysis"] = {
        "interval": "1s",
        "consecutiveErrorLimit": 1,
        "prometheus": {"address": server.url},
        "signals": [{"name": "errors", "threshold": {"query": "vector(0.001)", "max": 0.01}}],
    }
    s = Scene(cluster, kube, namespace, manifest)
    s.apply()
    s.tick()
    s.manifest["spec"]["model"]["version"] = "v2"
    s.apply()
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        s.tick()
        status = s.status()
        if status.get("phase") == "Paused" and s.route_weight() == 20:
            break
    else:
        pytest.fail(f"the canary never reached 20% and the pause: {s.status()}")
    assert s.status()["analysis"]["signals"][0]["verdict"] == "Pass"
    return s


def _status_writes_fail(s: Scene, m: pytest.MonkeyPatch) -> None:
    """The API server answers 500 to every status write of the operator's client."""
    request = s.adapter.api.request

    def failing(method: str, path: str, *args: Any, **options: Any) -> Any:
        if method == "PATCH" and path.endswith("/status"):
            raise ApiError(500, "Internal Server Error")
        return request(method, path, *args, **options)

    m.setattr(s.adapter.api, "request", failing)


def _cluster_error(*_: object, **__: object) -> None:
    raise ClusterError("applying Deployment: the server is on fire", 500)


def _unexpected(*_: object, **__: object) -> None:
    raise ZeroDivisionError("float division by zero")


# Each stage of a tick, and how to break it.
TICK_STAGES: dict[str, Callable[[Scene, pytest.MonkeyPatch], None]] = {
    "read": lambda s, m: m.setattr(s.adapter, "read", _cluster_error),
    "observe": lambda s, m: m.setattr(s.adapter, "available", _unexpected),
    "status write": _status_writes_fail,
    "converge": lambda s, m: m.setattr(s.adapter, "converge", _cluster_error),
}  # fmt: skip


def _said_in_status(s: Scene) -> bool:
    status = s.status()
    fault = [c for c in status.get("conditions", []) if c["type"] == "OperatorFault"]
    return (
        bool(fault) and fault[0]["status"] == "True"
        and str(status.get("message", "")).startswith(TICK_FAILED)
    )  # fmt: skip


def _faults_on_metrics(s: Scene) -> float:
    value = metrics.REGISTRY.get_sample_value(
        "modelrollout_tick_faults", {"namespace": s.namespace, "rollout": NAME}
    )
    return value or 0.0


@pytest.mark.parametrize("stage", list(TICK_STAGES))
def test_a_tick_that_keeps_failing_is_said_at_once_and_takes_the_canary_off_traffic(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # Given a stage of the tick that fails
    TICK_STAGES[stage](scene, monkeypatch)
    # When one tick runs into it
    scene.tick()
    # Then it is said within that tick: a Warning Event and the metric, and in status where
    # status can still be written
    assert [e.reason for e in scene.events if e.type == "Warning"] == ["TickFailed"]
    assert stage in scene.events[-1].message
    assert _faults_on_metrics(scene) == 1
    if stage != "status write":
        assert _said_in_status(scene), scene.status()
    assert scene.route_weight() == 20  # one fault is not yet a reason to act
    # When it keeps failing up to the limit
    for _ in range(LIMIT - 1):
        scene.tick()
    # Then the canary takes no traffic, and the rollback is recorded where status can be written
    assert scene.route_weight() == 0
    if stage != "status write":
        status = scene.status()
        assert status["phase"] == "RolledBack"
        assert f"{TICK_FAILED} {LIMIT} times in a row" in status["message"]
    # And once the fault is gone, the next tick goes through and takes the fault back
    monkeypatch.undo()
    scene.tick()
    status = scene.status()
    assert status["phase"] == "RolledBack"
    assert scene.route_weight() == 0
    assert not _said_in_status(scene)
    assert _faults_on_metrics(scene) == 0


@pytest.mark.parametrize("stage", ["observe", "status write", "converge"])
def test_abort_takes_the_traffic_away_while_ticks_fail(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # Given ticks failing at a stage (reading still works, so the command can be seen)
    TICK_STAGES[stage](scene, monkeypatch)
    scene.tick()
    # When a human aborts
    scene.abort()
    scene.tick()
    # Then the canary takes no traffic at once, well before the limit
    assert scene.route_weight() == 0
    if stage != "status write":
        status = scene.status()
        assert status["phase"] == "RolledBack"
        assert "aborted by ana" in status["message"]


SIGNAL_STAGES: dict[str, Callable[[Scene, pytest.MonkeyPatch], None]] = {
    "credentials": lambda s, m: s.manifest["spec"]["analysis"]["prometheus"].update(
        {"authSecretRef": {"name": "no-such-secret"}}
    ),
    "measure": lambda s, m: m.setattr(
        "modelrollout.analysis.prometheus.Prometheus.measure", _unexpected
    ),
    "judge": lambda s, m: m.setitem(JUDGES, "threshold", _unexpected),
}
SAID = {
    "credentials": "Prometheus credentials: Secret {ns}/no-such-secret: not found",
    "measure": "could not measure or judge: float division by zero (ZeroDivisionError)",
    "judge": "could not measure or judge: float division by zero (ZeroDivisionError)",
}


@pytest.mark.parametrize("stage", list(SIGNAL_STAGES))
def test_a_signal_that_cannot_be_measured_or_judged_is_an_error_and_rolls_back_past_the_limit(
    scene: Scene, monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    # Given credentials, measuring or judging that fails
    SIGNAL_STAGES[stage](scene, monkeypatch)
    scene.apply()
    # When one evaluation runs into it
    scene.tick()
    # Then the signal says so, readably, within the tick; the tick itself went through
    signal = scene.status()["analysis"]["signals"][0]
    assert (signal["verdict"], signal["message"]) == (
        "Error", SAID[stage].format(ns=scene.namespace)
    )  # fmt: skip
    assert not [e for e in scene.events if e.reason == "TickFailed"]
    # And past consecutiveErrorLimit (1) the canary is rolled back and takes no traffic
    scene.tick()
    status = scene.status()
    assert status["phase"] == "RolledBack", status
    assert scene.route_weight() == 0


def test_a_failing_webhook_never_undoes_or_stalls_a_decision(
    scene: Scene, monkeypatch: pytest.MonkeyPatch
) -> None:
    scene.notifier.broken = True
    scene.abort()
    scene.tick()
    assert scene.status()["phase"] == "RolledBack"
    assert scene.route_weight() == 0
    failures = metrics.REGISTRY.get_sample_value(
        "modelrollout_notification_failures_total", {"namespace": scene.namespace, "rollout": NAME}
    )
    assert failures == 1
