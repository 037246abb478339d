"""Workloads and the Gateway API router against the real control plane."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes import client

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.domain.revision import REVISION_LABEL
from modelrollout.domain.routes import two_arms
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Desired, Manifest, Owner
from modelrollout.k8s.store import Store
from modelrollout.routers.base import RouterError
from modelrollout.routers.gateway_api import GatewayAPIRouter, build_route
from modelrollout.testing.cluster import LocalCluster, rest_of, wait_for
from modelrollout.testing.manifests import rollout
from modelrollout.workloads.builders import build_deployment, build_service

pytestmark = [pytest.mark.cluster, pytest.mark.usefixtures("modelrollout_crd")]


def apply(kube: client.ApiClient, *manifests: Manifest) -> None:
    """Converge to these objects, keeping every revision (nothing pruned)."""
    keep = frozenset(m["metadata"]["labels"].get(REVISION_LABEL, "") for m in manifests)
    who = manifests[0]["metadata"]
    owner = Owner(who["labels"]["modelrollout.io/rollout"], who["namespace"],
                  who["ownerReferences"][0]["uid"])  # fmt: skip
    KubeCluster(rest_of(kube)).converge(owner, Desired(list(manifests), {}, keep | {"r1", "r2"}))


@pytest.fixture
def owner(cluster: LocalCluster, namespace: str) -> tuple[Owner, ModelRolloutSpec]:
    manifest = rollout()
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(manifest))
    stored = json.loads(cluster.kubectl("get", "mro", "fraud-detector", "-n", namespace,
                                        "-o", "json").stdout)  # fmt: skip
    spec = ModelRolloutSpec.model_validate(stored["spec"])
    return Owner("fraud-detector", namespace, stored["metadata"]["uid"]), spec


def test_a_revision_deployment_carries_the_model_and_becomes_available(
    kube: client.ApiClient, owner: tuple[Owner, ModelRolloutSpec]
) -> None:
    who, spec = owner
    apps, core = client.AppsV1Api(kube), client.CoreV1Api(kube)
    # Given the Deployment of revision r1 with 2 pods, When it is applied
    apply(kube, build_deployment(who, spec, "r1", 2))
    name = "fraud-detector-r1"

    def available() -> bool:
        return (
            apps.read_namespaced_deployment_status(name, who.namespace).status.available_replicas
            == 2
        )

    # Then it becomes Available, owned by the rollout, its pods carrying the model's identity
    assert wait_for(available, timeout=60)
    deployment = apps.read_namespaced_deployment(name, who.namespace)
    assert deployment.metadata.owner_references[0].uid == who.uid
    pods = core.list_namespaced_pod(who.namespace, label_selector=f"{REVISION_LABEL}=r1").items
    assert len(pods) == 2
    env = {e.name: e.value for e in pods[0].spec.containers[0].env}
    assert env["MODEL_VERSION"] == "2026-11-20"
    assert pods[0].metadata.labels["modelrollout.io/model-version"] == "2026-11-20"
    # And converging to it again writes nothing
    before = deployment.metadata.resource_version
    cluster = KubeCluster(rest_of(kube))
    cluster.converge(who, Desired([build_deployment(who, spec, "r1", 2)], {}, frozenset({"r1"})))
    assert apps.read_namespaced_deployment(name, who.namespace).metadata.resource_version == before


def test_stable_and_canary_services_select_their_revision(
    kube: client.ApiClient, owner: tuple[Owner, ModelRolloutSpec]
) -> None:
    who, spec = owner
    core = client.CoreV1Api(kube)
    for revision, pods in (("r1", 2), ("r2", 1)):
        apply(kube, build_deployment(who, spec, revision, pods))
    apply(kube, build_service(who, spec, "stable", "r1"))
    apply(kube, build_service(who, spec, "canary", "r2"))

    def endpoints(service: str) -> int:
        slices = (
            client.DiscoveryV1Api(kube)
            .list_namespaced_endpoint_slice(
                who.namespace, label_selector=f"kubernetes.io/service-name={service}"
            )
            .items
        )
        return sum(1 for s in slices for e in (s.endpoints or []) if e.conditions.ready)

    assert wait_for(
        lambda: (endpoints("fraud-detector-stable"), endpoints("fraud-detector-canary")) == (2, 1),
        60,
    )
    assert (
        core.read_namespaced_service("fraud-detector-canary", who.namespace).spec.selector[
            REVISION_LABEL
        ]
        == "r2"
    )


def test_the_router_sets_and_reads_back_the_weight(
    kube: client.ApiClient, owner: tuple[Owner, ModelRolloutSpec]
) -> None:
    who, spec = owner
    assert spec.traffic.gateway_api is not None
    router = GatewayAPIRouter(
        KubeCluster(rest_of(kube)), who, spec.traffic.gateway_api, spec.service.port
    )
    assert router.read_weight() is None  # no route yet
    router.set_weight(0)
    assert router.read_weight() == 0
    router.set_weight(25)
    assert router.read_weight() == 25
    route: Any = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", who.namespace, "httproutes", who.name
    )
    weights = [(b["name"], b["weight"]) for b in route["spec"]["rules"][0]["backendRefs"]]
    assert weights == [("fraud-detector-stable", 75), ("fraud-detector-canary", 25)]
    assert route["spec"]["parentRefs"][0]["name"] == "public"  # the server adds group, kind


class RacedRouter(GatewayAPIRouter):
    """A router that, once, has another writer change the route between its read and write."""

    raced = False
    kube: Any = None  # the other writer's client

    def _get(self, *, fresh: bool) -> dict[str, Any] | None:
        route = super()._get(fresh=fresh)
        if route is not None and not self.raced:
            self.raced = True
            objects = client.CustomObjectsApi(self.kube)
            other = json.loads(json.dumps(route))
            other["metadata"].setdefault("annotations", {})["someone/else"] = "was here"
            objects.replace_namespaced_custom_object(
                "gateway.networking.k8s.io",
                "v1",
                self._owner.namespace,
                "httproutes",
                self._owner.name,
                other,
            )
        return route


def test_a_concurrent_write_is_retried_not_overwritten(
    kube: client.ApiClient, owner: tuple[Owner, ModelRolloutSpec]
) -> None:
    who, spec = owner
    assert spec.traffic.gateway_api is not None
    # Given the route as this operator last saw it (its store, as a watch keeps it)
    cluster = KubeCluster(rest_of(kube), Store())
    GatewayAPIRouter(cluster, who, spec.traffic.gateway_api, spec.service.port).set_weight(0)
    raced = RacedRouter(cluster, who, spec.traffic.gateway_api, spec.service.port)
    raced.kube = kube
    raced.set_weight(40)  # the first PUT gets 409 Conflict; the retry re-reads and succeeds
    assert raced.raced
    route: Any = client.CustomObjectsApi(kube).get_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", who.namespace, "httproutes", who.name
    )
    assert route["metadata"]["annotations"]["someone/else"] == "was here"
    assert raced.read_weight() == 40


def test_a_route_owned_by_someone_else_is_left_alone(
    kube: client.ApiClient, owner: tuple[Owner, ModelRolloutSpec]
) -> None:
    who, spec = owner
    assert spec.traffic.gateway_api is not None
    foreign = build_route(
        Owner(who.name, who.namespace, "another-uid"),
        spec.traffic.gateway_api,
        80,
        two_arms(who.name, 0),
    )
    foreign["metadata"].pop("ownerReferences")
    client.CustomObjectsApi(kube).create_namespaced_custom_object(
        "gateway.networking.k8s.io", "v1", who.namespace, "httproutes", foreign
    )
    router = GatewayAPIRouter(
        KubeCluster(rest_of(kube)), who, spec.traffic.gateway_api, spec.service.port
    )
    with pytest.raises(RouterError, match="not owned by this ModelRollout"):
        router.set_weight(10)
    assert router.read_weight() == 0
