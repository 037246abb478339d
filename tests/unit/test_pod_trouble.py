"""Why a revision's pods are not ready, told from their status as a kubelet writes it."""

from __future__ import annotations

from typing import Any

from modelrollout.k8s.objects import why_unready


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
