"""Why a revision's pods are not ready, and what interrupted them between ticks, told from their
status as a kubelet writes it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from modelrollout.domain.machine import Incident
from modelrollout.k8s.objects import why_unready
from modelrollout.k8s.pods import Pods, deployment_of


def pod(name: str, *statuses: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"containerStatuses": list(statuses), **status}}  # fmt: skip


def test_a_crash_loop_is_named_with_its_exit_code_and_message() -> None:
    crashing = {
        "name": "server",
        "restartCount": 4,
        "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 8s"}},
        "lastState": {"terminated": {"exitCode": 3, "message": "weights not found\n"}},
    }
    told = why_unready([pod("ok", {"name": "server", "state": {"running": {}}}),
                        pod("p-1", crashing)])  # fmt: skip
    assert told == (
        "pod p-1 container server: CrashLoopBackOff exit code 3 "
        "(weights not found) after 4 restarts"
    )


def test_an_image_that_cannot_be_pulled_is_named_with_the_kubelets_message() -> None:
    pulling = {
        "name": "server",
        "state": {"waiting": {"reason": "ErrImagePull", "message": "not found: example/x:9"}},
    }
    assert why_unready([pod("p", pulling)]) == (
        "pod p container server: ErrImagePull (not found: example/x:9)"
    )


def test_a_pod_the_scheduler_cannot_place_is_named() -> None:
    waiting = pod("p", conditions=[{"type": "PodScheduled", "status": "False",
                                    "message": "0/3 nodes are available"}])  # fmt: skip
    assert why_unready([waiting]) == "pod p cannot be scheduled: 0/3 nodes are available"


def test_pods_that_are_only_starting_say_nothing() -> None:
    starting = {"name": "server", "state": {"waiting": {"reason": "ContainerCreating"}}}
    assert why_unready([pod("p", starting), pod("q")]) is None


# --- interruptions between ticks, from the pod watch (k8s/pods.py) ---------------------------

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def watched(ready: bool, restarts: int = 0, *, ended: dict[str, Any] | None = None,
            deleting: bool = False, name: str = "web-abc-1") -> dict[str, Any]:  # fmt: skip
    """A pod of Deployment `web-abc` (ReplicaSet web-abc-5d8f), as the watch delivers it."""
    meta: dict[str, Any] = {
        "name": name, "namespace": "ns", "labels": {"pod-template-hash": "5d8f"},
        "ownerReferences": [{"kind": "ReplicaSet", "name": "web-abc-5d8f"}],
    }  # fmt: skip
    if deleting:
        meta["deletionTimestamp"] = "2026-12-03T12:00:00Z"
    container: dict[str, Any] = {"name": "server", "restartCount": restarts,
                                 "state": {"running": {}}}  # fmt: skip
    if ended is not None:
        container["lastState"] = {"terminated": ended}
    return {"metadata": meta, "status": {
        "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        "containerStatuses": [container]}}  # fmt: skip


CRASH = {"exitCode": 1, "reason": "Error", "message": "out of memory\n",
         "finishedAt": "2026-12-03T11:59:00Z"}  # fmt: skip


def test_a_ready_pod_whose_container_exits_and_restarts_is_one_incident_naming_the_exit() -> None:
    pods = Pods()
    assert pods.put(watched(False), NOW) is None  # starting: not ready yet is no incident
    assert pods.put(watched(True), NOW) is None
    assert pods.put(watched(False, 1, ended=CRASH), NOW) == ("ns", "web-abc")
    assert pods.put(watched(True, 1, ended=CRASH), NOW) is None  # back: nothing new
    [incident] = pods.incidents("ns", "web-abc")
    assert incident == Incident(NOW, "web-abc-1", "pod web-abc-1 container server exited with "
                                "code 1 (Error): out of memory, 1 restart")  # fmt: skip


def test_a_readiness_flap_is_an_incident_and_a_crash_at_start_is_not() -> None:
    pods = Pods()
    pods.put(watched(False), NOW)
    pods.put(watched(False, 1, ended=CRASH), NOW)  # never Ready: the progress deadline's case
    assert pods.incidents("ns", "web-abc") == []
    pods.put(watched(True, 1, ended=CRASH), NOW)
    pods.put(watched(False, 1, ended=CRASH), NOW)  # lost readiness without a restart
    assert len(pods.incidents("ns", "web-abc")) == 1


def test_a_pod_being_deleted_is_no_incident_and_a_restarted_operator_still_sees_the_crash() -> None:
    pods = Pods()
    pods.put(watched(True), NOW)
    assert pods.put(watched(False, deleting=True), NOW) is None
    assert pods.incidents("ns", "web-abc") == []
    # an operator that starts after the crash: one incident, when the container's run ended
    fresh = Pods()
    assert fresh.put(watched(True, 2, ended=CRASH, name="web-abc-2"), NOW) == ("ns", "web-abc")
    [incident] = fresh.incidents("ns", "web-abc")
    assert incident.at == datetime(2026, 12, 3, 11, 59, tzinfo=UTC)
    assert "2 restarts" in incident.what
    fresh.forget("ns", "web-abc")
    assert fresh.incidents("ns", "web-abc") == []


def test_only_pods_of_a_replicaset_are_followed() -> None:
    bare = watched(True)
    bare["metadata"]["ownerReferences"] = []
    assert deployment_of(bare) is None
    assert Pods().put(bare, NOW) is None
    assert deployment_of(watched(True)) == "web-abc"
