"""The store the watches keep: an older answer never replaces a newer one, and an owned
object's facts say when its rollout should look again."""

from __future__ import annotations

from typing import Any

from modelrollout.k8s.owner import APPLIED_ANNOTATION, ROLLOUT_LABEL
from modelrollout.k8s.store import Store, Workload
from modelrollout.routers.gateway_api import covers, route_news


def deployment(version: str, *, ready: int = 1, replicas: int = 2,
               applied: str = "abc") -> dict[str, Any]:  # fmt: skip
    return {
        "metadata": {"name": "fraud-detector-r1", "namespace": "ml", "resourceVersion": version,
                     "labels": {ROLLOUT_LABEL: "fraud-detector"},
                     "annotations": {APPLIED_ANNOTATION: applied}},
        "spec": {"replicas": replicas},
        "status": {"readyReplicas": ready,
                   "conditions": [{"type": "Available", "status": "True" if ready else "False"}]},
    }  # fmt: skip


def test_a_late_watch_event_does_not_take_the_store_back_before_our_own_write() -> None:
    store = Store()
    # Given the answer to our own write (version 12) is stored first
    assert store.deployments.put(deployment("12", replicas=3)) is not None
    # When the watch delivers the event from before it (version 11)
    assert store.deployments.put(deployment("11", replicas=2)) is None
    # Then the store still shows our write; and a deletion older than it is ignored too
    assert store.deployments.get(("ml", "fraud-detector-r1")).replicas == 3
    assert store.deployments.remove(deployment("11")) is None
    assert store.deployments.remove(deployment("12")) is not None
    assert store.deployments.get(("ml", "fraud-detector-r1")) is None


def test_only_a_change_of_a_fact_the_rollout_decides_on_is_news() -> None:
    ready = Workload.of(deployment("1"))
    assert ready.available
    assert ready.rollout == "fraud-detector"
    assert not Workload.of(deployment("2")).news(ready)  # a status field nobody reads
    assert Workload.of(deployment("3", ready=0)).news(ready)  # no longer available
    assert Workload.of(deployment("4", replicas=5)).news(ready)  # scaled by someone
    assert Workload.of(deployment("5", applied="other")).news(ready)  # edited by someone
    assert ready.news(None)


def test_a_route_with_the_servers_defaults_is_already_what_the_router_wants() -> None:
    desired = {"parentRefs": [{"name": "public"}],
               "rules": [{"backendRefs": [{"name": "s", "port": 80, "weight": 75}]}]}  # fmt: skip
    defaulted = {"parentRefs": [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                 "name": "public"}],
                 "rules": [{"backendRefs": [{"group": "", "kind": "Service", "name": "s",
                                             "port": 80, "weight": 75}],
                            "matches": [{"path": {"value": "/"}}]}]}  # fmt: skip
    assert covers(defaulted, desired)
    defaulted["rules"][0]["backendRefs"][0]["weight"] = 90
    assert not covers(defaulted, desired)


def test_a_rollout_finds_its_own_workloads_without_scanning_the_namespace() -> None:
    store = Store()
    store.deployments.put(deployment("1"))
    other = deployment("2")
    other["metadata"].update(name="other-r1", labels={ROLLOUT_LABEL: "other"})
    store.deployments.put(other)
    assert set(store.deployments.owned_by("ml", "fraud-detector")) == {"fraud-detector-r1"}
    assert store.deployments.remove(deployment("3")) is not None
    assert store.deployments.owned_by("ml", "fraud-detector") == {}
    assert set(store.deployments.owned_by("ml", "other")) == {"other-r1"}


def test_a_stored_body_leaves_out_what_no_tick_reads_and_keeps_the_rest() -> None:
    store = Store()
    last = "kubectl.kubernetes.io/last-applied-configuration"
    body = {"metadata": {"name": "fraud-detector", "namespace": "ml", "resourceVersion": "7",
                         "managedFields": [{"manager": "kubectl"}],
                         "annotations": {last: "{...}", "modelrollout.io/command": "x"}},
            "spec": {"replicas": 2}}  # fmt: skip
    # When a rollout and a route are stored
    store.rollouts.put(body)
    store.routes.put(body)
    rollout, route = store.rollouts.get(("ml", "fraud-detector")), store.routes.get(
        ("ml", "fraud-detector"))  # fmt: skip
    # Then neither keeps managedFields; the rollout drops kubectl's copy of itself, but a route
    # (which the router may write back whole) keeps every annotation
    assert "managedFields" not in rollout["metadata"]
    assert "managedFields" not in route["metadata"]
    assert rollout["metadata"]["annotations"] == {"modelrollout.io/command": "x"}
    assert route["metadata"]["annotations"] == body["metadata"]["annotations"]
    assert rollout["spec"] == body["spec"]
    assert rollout["metadata"]["resourceVersion"] == "7"
    # and the body given was not changed
    assert "managedFields" in body["metadata"]


def test_a_route_is_news_when_its_spec_or_its_acceptance_at_its_generation_changes() -> None:
    def route(generation: int, accepted_at: int | None, weight: int = 50) -> dict[str, Any]:
        parents = [] if accepted_at is None else [{
            "parentRef": {"name": "public"}, "controllerName": "traefik.io/gateway-controller",
            "conditions": [{"type": "Accepted", "status": "True",
                            "observedGeneration": accepted_at}]}]  # fmt: skip
        return {"metadata": {"namespace": "ml", "name": "r", "generation": generation},
                "spec": {"parentRefs": [{"name": "public"}], "rules": [{"backendRefs": [
                    {"name": "s", "port": 80, "weight": weight}]}]},
                "status": {"parents": parents}}  # fmt: skip

    assert route_news(None, route(1, None))
    assert route_news(route(1, None), route(1, 1))  # the controller accepted it: a step may count
    assert not route_news(route(1, 1), route(1, 1))  # the same status written again
    assert route_news(route(1, 1), route(2, 1, weight=60))  # a new spec
    assert route_news(route(2, 1, weight=60), route(2, 2, weight=60))  # accepted at the new one
