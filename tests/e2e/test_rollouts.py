"""Rollouts end to end: the operator process, the real control plane and a real Prometheus."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelrollout.testing.cluster import LocalCluster, wait_for
from modelrollout.testing.exporter import ErrorRateExporter
from modelrollout.testing.manifests import rollout
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.prometheus import PrometheusServer

pytestmark = pytest.mark.cluster
NAME = "fraud-detector"


def model_rollout(prometheus: str, version: str) -> dict[str, Any]:
    m = rollout(NAME, version)
    m["spec"].update(
        progressDeadline="60s",
        scaleDownDelay="2s",
        strategy={"steps": [{"setWeight": 50}, {"analyze": {"duration": "3s"}}]},
        analysis={
            "interval": "1s",
            "prometheus": {"address": prometheus},
            "signals": [
                {
                    "name": "error-rate",
                    "threshold": {
                        "query": 'max(model_error_rate{version="{{ canary.version }}"})',
                        "max": 0.01,
                    },
                }
            ],
        },
    )
    return m


class Story:
    """Given / When / Then helpers over kubectl."""

    def __init__(self, cluster: LocalCluster, namespace: str, operator: OperatorProcess) -> None:
        self.cluster, self.namespace, self.operator = cluster, namespace, operator

    def apply(self, manifest: dict[str, Any]) -> None:
        self.cluster.kubectl("apply", "-n", self.namespace, "-f", "-", stdin=json.dumps(manifest))

    def get(self, kind: str, name: str) -> dict[str, Any] | None:
        out = self.cluster.kubectl(
            "get", kind, name, "-n", self.namespace, "-o", "json", check=False
        )
        return json.loads(out.stdout) if out.returncode == 0 else None

    def status(self) -> dict[str, Any]:
        body = self.get("mro", NAME) or {}
        status: dict[str, Any] = body.get("status") or {}
        return status

    def until(self, what: str, predicate: Any, timeout: float = 90) -> None:
        if not wait_for(predicate, timeout=timeout, interval=0.5):
            raise AssertionError(
                f"never: {what}\nstatus: {json.dumps(self.status(), indent=1)}\n"
                f"operator log:\n{self.operator.log()}"
            )

    def route_weights(self) -> list[tuple[str, int]]:
        route = self.get("httproute", NAME) or {}
        backends = route.get("spec", {}).get("rules", [{}])[0].get("backendRefs", [])
        return [(b["name"], b["weight"]) for b in backends]

    def deployments(self) -> list[dict[str, Any]]:
        out = self.cluster.kubectl("get", "deploy", "-n", self.namespace, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    def stable_version(self) -> str | None:
        return (self.status().get("stable") or {}).get("version")


@pytest.fixture
def story(cluster: LocalCluster, namespace: str, operator: OperatorProcess) -> Story:
    return Story(cluster, namespace, operator)


def test_a_good_model_is_promoted(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v2's error rate is well within bounds
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v2").set(0.002)
    story.apply(model_rollout(metrics.url, "v1"))
    story.until("v1 is stable", lambda: story.status().get("phase") == "Promoted")
    assert story.stable_version() == "v1"
    # When the model version changes to v2
    story.apply(model_rollout(metrics.url, "v2"))
    # Then v2 takes half the traffic while it is analysed
    story.until(
        "the canary takes 50%", lambda: ("fraud-detector-canary", 50) in story.route_weights()
    )
    # And then it is promoted: stable is v2 and the route sends everything to stable
    story.until("v2 is promoted", lambda: story.stable_version() == "v2")
    status = story.status()
    assert status["phase"] == "Promoted"
    assert status["history"][-1]["outcome"] == "Promoted"
    story.until(
        "the route is all stable",
        lambda: story.route_weights()[0] == ("fraud-detector-stable", 100),
    )
    # And the v1 revision is removed after scaleDownDelay
    story.until("one revision left", lambda: len(story.deployments()) == 1)


def test_a_threshold_breach_rolls_back(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v3 fails 20% of requests
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v3").set(0.2)
    story.apply(model_rollout(metrics.url, "v1"))
    story.until("v1 is stable", lambda: story.status().get("phase") == "Promoted")
    # When v3 is rolled out
    story.apply(model_rollout(metrics.url, "v3"))
    # Then it is rolled back with the signal, value and bound as the reason
    story.until("v3 is rolled back", lambda: story.status().get("phase") == "RolledBack")
    status = story.status()
    assert "error-rate: 0.2 above max 0.01" in status["message"]
    assert status["stable"]["version"] == "v1"
    # And no traffic goes to the canary, whose pods are scaled to zero
    story.until(
        "the route is all stable", lambda: story.route_weights()[1] == ("fraud-detector-canary", 0)
    )
    canary = story.get("deploy", f"fraud-detector-{status['canary']['revision']}") or {}
    assert canary["spec"]["replicas"] == 0
