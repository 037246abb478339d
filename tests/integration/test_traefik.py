"""Traefik as the local control plane's Gateway API implementation: built from its Go module,
started against the local API server, it accepts the GatewayClass, programs the Gateway and
accepts the HTTPRoute the operator's router writes, which the router then reads as accepted."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers.gateway_api import ACCEPTANCE_SECONDS, GatewayAPIRouter
from modelrollout.testing.cluster import LocalCluster, rest_of, wait_for
from modelrollout.testing.manifests import rollout
from modelrollout.testing.processes import ControlPlaneError
from modelrollout.testing.traefik import CONTROLLER, GATEWAY, GATEWAY_CLASS, Traefik, locate

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("modelrollout_crd")]


def _condition(body: dict[str, Any] | None, kind: str) -> str | None:
    conditions = ((body or {}).get("status") or {}).get("conditions") or []
    return next((c["status"] for c in conditions if c["type"] == kind), None)


def _get(cluster: LocalCluster, *what: str) -> dict[str, Any] | None:
    out = cluster.kubectl("get", *what, "-o", "json", check=False)
    return json.loads(out.stdout) if out.returncode == 0 else None


def test_traefik_accepts_its_gateway_class_and_programs_the_gateway(
    cluster: LocalCluster, namespace: str, gateway: Traefik
) -> None:
    # When the GatewayClass and the Gateway on Traefik's entry point are applied
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(namespace))
    # Then Traefik accepts the class and programs the Gateway
    assert wait_for(lambda: _condition(_get(cluster, "gatewayclass", GATEWAY_CLASS),
                                       "Accepted") == "True", timeout=60)  # fmt: skip
    gateway = ("gateway", GATEWAY, "-n", namespace)
    assert wait_for(lambda: _condition(_get(cluster, *gateway), "Programmed") == "True", 60), (
        _get(cluster, *gateway))  # fmt: skip
    # And the class lists what it supports: routing by weight and header, not mirroring
    features = {f["name"] for f in (_get(cluster, "gatewayclass", GATEWAY_CLASS) or {})
                .get("status", {}).get("supportedFeatures", [])}  # fmt: skip
    assert {"Gateway", "HTTPRoute"} <= features
    assert "HTTPRouteRequestMirror" not in features


def test_the_route_the_router_writes_is_accepted_by_traefik(
    cluster: LocalCluster, namespace: str, gateway: Traefik, kube: client.ApiClient
) -> None:
    # Given Traefik's Gateway in the namespace, and a rollout whose route names it
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(namespace))
    manifest = rollout()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    stored = _get(cluster, "mro", "fraud-detector", "-n", namespace) or {}
    spec = ModelRolloutSpec.model_validate(stored["spec"])
    assert spec.traffic.gateway_api is not None
    assert spec.traffic.gateway_api.parent_refs[0].name == GATEWAY
    who = Owner("fraud-detector", namespace, stored["metadata"]["uid"])
    router = GatewayAPIRouter(KubeCluster(rest_of(kube)), who, spec.traffic.gateway_api,
                              spec.service.port)  # fmt: skip
    # When the router writes the route
    router.set_weight(20)

    # Then Traefik accepts it at its current generation, and the router reads no refusal
    def accepted() -> bool:
        route = _get(cluster, "httproute", "fraud-detector", "-n", namespace) or {}
        parents = (route.get("status") or {}).get("parents") or []
        return any(p.get("controllerName") == CONTROLLER and any(
            c["type"] == "Accepted" and c["status"] == "True"
            and c.get("observedGeneration") == route["metadata"]["generation"]
            for c in p.get("conditions") or []) for p in parents)  # fmt: skip

    assert wait_for(accepted, timeout=60), _get(cluster, "httproute", "fraud-detector", "-n",
                                                namespace)  # fmt: skip
    # (long past the deadline for a route no controller reports on)
    assert router.acceptance(datetime.now(UTC) + timedelta(minutes=5)).refused is None
    assert router.read_weight() == 20


def test_a_route_whose_gateway_does_not_exist_is_not_in_effect_after_the_deadline(
    cluster: LocalCluster, namespace: str, gateway: Traefik, kube: client.ApiClient
) -> None:
    # Given Traefik running, and a rollout whose route names a Gateway that does not exist
    manifest = rollout()
    manifest["spec"]["traffic"]["gatewayAPI"]["parentRefs"] = [{"name": "nowhere"}]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    stored = _get(cluster, "mro", "fraud-detector", "-n", namespace) or {}
    spec = ModelRolloutSpec.model_validate(stored["spec"])
    assert spec.traffic.gateway_api is not None
    who = Owner("fraud-detector", namespace, stored["metadata"]["uid"])
    router = GatewayAPIRouter(KubeCluster(rest_of(kube)), who, spec.traffic.gateway_api,
                              spec.service.port)  # fmt: skip
    # When the router writes the route
    router.set_weight(20)
    # Then it is not refused before the deadline (a controller may still report), and after it
    # the router says that no controller accepted it, naming the Gateway
    assert router.acceptance(datetime.now(UTC)).refused is None
    later = datetime.now(UTC) + timedelta(seconds=ACCEPTANCE_SECONDS + 1)
    said = router.acceptance(later).refused
    assert said is not None
    assert f"no controller accepted HTTPRoute fraud-detector for Gateway {namespace}/nowhere" in (
        said)  # fmt: skip


def test_a_missing_traefik_binary_is_named(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("MODELROLLOUT_TRAEFIK", str(tmp_path / "traefik"))
    with pytest.raises(ControlPlaneError, match=r"traefik: no executable at .*/traefik"):
        locate()
