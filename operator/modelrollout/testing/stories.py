"""The cluster story driver: the real control plane and the operator process, acted on as a user
would (kubectl, the `modelrollout` command line). `Story` is a `Driver` of the typed
given / when / then vocabulary (testing/vocabulary.py), whose stories also run on the ticker over
fakes (`TickerDriver`); its checks read the traffic split through the product's router
(routers/registry.py), so the same stories run on every router. The pure machine driver is
testing/driver.py."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kubernetes import config

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.domain.revision import canary_service
from modelrollout.domain.routes import Routes, canary_weight
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers.registry import router_for
from modelrollout.testing.cluster import LocalCluster, rest_of, wait_for
from modelrollout.testing.exporter import ErrorRateExporter
from modelrollout.testing.kubelet import PLACEMENT
from modelrollout.testing.manifests import rollout
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.podserver import ECHO
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.traefik import Traefik

NAME = "fraud-detector"
CANARY_AT_50 = (canary_service(NAME), 50)


def model_rollout(
    prometheus: str, version: str, steps: list[dict[str, Any]] | None = None, **analysis: Any
) -> dict[str, Any]:
    m = rollout(NAME, version)
    # the revisions' pods are processes on the process node (kubelet.py), serving HTTP
    m["spec"]["template"]["spec"].update(copy.deepcopy(PLACEMENT))
    m["spec"].update(
        progressDeadline="60s",
        scaleDownDelay="2s",
        strategy={"steps": steps or [{"setWeight": 50}, {"analyze": {"duration": "3s"}}]},
        analysis={
            **analysis,
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
    """A `Driver` (testing/vocabulary.py) over kubectl, and helpers for what only a cluster has
    (Deployments, the command line's output)."""

    def __init__(self, cluster: LocalCluster, namespace: str, operator: OperatorProcess) -> None:
        self.cluster, self.namespace, self.operator = cluster, namespace, operator
        self._api: Any = None

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
            pods = self.cluster.kubectl("get", "deploy,pods", "-n", self.namespace, "-o", "wide",
                                        check=False).stdout  # fmt: skip
            raise AssertionError(
                f"never: {what}\nstatus: {json.dumps(self.status(), indent=1)}\n"
                f"deployments and pods:\n{pods}\noperator log:\n{self.operator.log()}"
            )

    def route_weights(self) -> list[tuple[str, int]]:
        """(Service, weight) of every arm, as the rollout's router carries them now: stable and
        canary, or an A/B/n phase's champion and candidates."""
        plan = self.plan()
        return list(plan.split().items()) if plan is not None else []

    def canary_weight(self) -> int | None:
        """The canary's weight, read through the product's own router for this rollout."""
        return canary_weight(self.plan(), NAME)

    def plan(self) -> Routes | None:
        """The traffic plan in effect, read through the product's own router."""
        if self._api is None:
            self._api = config.new_client_from_config(config_file=str(self.cluster.kubeconfig))
        cluster = KubeCluster(rest_of(self._api))
        body = cluster.read(self.namespace, NAME)
        if body is None:
            return None
        owner = Owner(NAME, self.namespace, body["metadata"]["uid"])
        router = router_for(cluster, owner, ModelRolloutSpec.model_validate(body["spec"]))
        return router.read() if router is not None else None

    def deployments(self) -> list[dict[str, Any]]:
        out = self.cluster.kubectl("get", "deploy", "-n", self.namespace, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    def cli(self, *args: str) -> str:
        """Run the `modelrollout` command line as a user would."""
        result = subprocess.run(
            [sys.executable, "-m", "modelrollout.cli.main", "--kubeconfig",
             str(self.cluster.kubeconfig), "-n", self.namespace, *args],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    def command(self, *args: str) -> None:
        self.cli(*args, NAME)

    def phase(self) -> str | None:
        phase: str | None = self.status().get("phase")
        return phase

    def canary_at_half(self, metrics: PrometheusServer, telemetry: ErrorRateExporter,
                       steps: list[dict[str, Any]], **analysis: Any) -> None:  # fmt: skip
        """Given v1 is stable and v2, as healthy, has taken 50% under `steps`."""
        telemetry.error_rate.labels(version="v1").set(0.001)
        telemetry.error_rate.labels(version="v2").set(0.001)
        self.apply(model_rollout(metrics.url, "v1", steps, **analysis))
        self.stable("v1")
        self.apply(model_rollout(metrics.url, "v2", steps, **analysis))
        self.until("v2 takes 50%", lambda: CANARY_AT_50 in self.route_weights())

    def promoted(self, v1: dict[str, Any], v2: dict[str, Any], timeout: float = 120) -> None:
        """Given v1 stable, When v2 is applied, Then it is promoted."""
        self.apply(v1)
        self.stable(v1["spec"]["model"]["version"])
        self.apply(v2)
        version = v2["spec"]["model"]["version"]
        self.until(f"{version} is promoted", lambda: self.stable_version() == version, timeout)

    def stable(self, version: str) -> None:
        """Given `version` is the stable revision (the first one is stable at once)."""
        self.until(f"{version} is stable", lambda: self.stable_version() == version)

    def served_versions(self) -> dict[str, str]:
        """Revision -> the model version its Deployment's pods run."""
        labels = [d["spec"]["template"]["metadata"]["labels"] for d in self.deployments()]
        return {
            lb["modelrollout.io/revision"]: lb["modelrollout.io/model-version"] for lb in labels
        }

    def stable_version(self) -> str | None:
        return (self.status().get("stable") or {}).get("version")


# --- on the real data plane: pods as processes, routed by Traefik --------------------------------

Z_999 = 3.2905  # two-sided 99.9% normal quantile


def served(version: str, host: str, prometheus: str, steps: list[dict[str, Any]],
           image: str = ECHO, *, env: dict[str, str] | None = None) -> dict[str, Any]:  # fmt: skip
    """A ModelRollout whose pods run `image` on the process node, routed for `host`, with
    `env` in its container; its signal is the canary's share of HTTP 5xx answers."""
    m = rollout(NAME, version)
    spec = m["spec"]
    spec["template"] = {
        "metadata": {"labels": {"app": NAME},
                     "annotations": {"prometheus.io/scrape": "true", "prometheus.io/port": "8080"}},
        "spec": {**PLACEMENT, "terminationGracePeriodSeconds": 2, "containers": [{
            "name": "server", "image": f"{image}:1",
            "env": [{"name": k, "value": v} for k, v in (env or {}).items()],
            "ports": [{"name": "http", "containerPort": 8080}],
            "readinessProbe": {"httpGet": {"path": "/healthz", "port": "http"},
                               "periodSeconds": 1, "timeoutSeconds": 5}}]},
    }  # fmt: skip
    spec["traffic"]["gatewayAPI"]["hostnames"] = [host]
    spec.update(progressDeadline="20s", scaleDownDelay="2s", strategy={"steps": steps})
    spec["analysis"] = {"interval": "1s", "prometheus": {"address": prometheus},
                        "consecutiveErrorLimit": 3, "signals": [{
        "name": "errors", "threshold": {"max": 0.01, "query": (
            'sum(rate(model_requests_total{version="{{ canary.version }}",code=~"5.."}[5s]))'
            " or vector(0)")}}]}  # fmt: skip
    return m


def stable_behind_traefik(story: Story, gateway: Traefik, host: str, prometheus: str,
                          steps: list[dict[str, Any]], **options: Any) -> None:  # fmt: skip
    """Given v1 is stable on processes, and Traefik routes `host` to it."""
    story.apply(served("v1", host, prometheus, steps, **options))
    story.until("v1 is stable", lambda: story.phase() == "Promoted")
    assert wait_for(lambda: gateway.send(host, 20) == {"v1": 20}, timeout=30), gateway.send(
        host, 20)  # fmt: skip


def at_the_cohort_step(story: Story, gateway: Traefik, host: str, prometheus: str,
                       steps: list[dict[str, Any]]) -> None:  # fmt: skip
    """Given v1 is stable behind Traefik, v2 rolls out with `steps` (a weight of 0, a cohort
    step, a pause) and is paused after its cohort step."""
    stable_behind_traefik(story, gateway, host, prometheus, steps)
    story.apply(served("v2", host, prometheus, steps))
    story.until("the cohort step is done", lambda: story.phase() == "Paused"
                and story.status().get("currentStep") == 2)  # fmt: skip


@contextmanager
def users(gateway: Traefik, host: str) -> Iterator[Counter[str]]:
    """Requests through the gateway all along, as users would send them; what answered them."""
    stop = threading.Event()
    answered: Counter[str] = Counter()

    def send() -> None:
        while not stop.is_set():
            answered.update(gateway.send(host, 40))

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    try:
        yield answered
    finally:
        stop.set()
        thread.join(timeout=30)


def within(count: int, total: int, weight: int) -> bool:
    """`count` of `total` fits `weight`% within a 99.9% binomial interval."""
    p = weight / 100
    return abs(count - total * p) <= Z_999 * math.sqrt(total * p * (1 - p))
