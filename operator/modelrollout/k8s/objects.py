"""The API server's words for a failure, and the field manager the operator applies as."""

from __future__ import annotations

import json
from typing import Protocol

from modelrollout.k8s.owner import ROLLOUT_LABEL, ClusterError, Manifest, Owner

__all__ = ["ROLLOUT_LABEL", "ClusterError", "Manifest", "Owner", "error_message"]

FIELD_MANAGER = "modelrollout"


class Refused(Protocol):
    """An error status from the API server: ours (rest.py `ApiError`) or the official client's."""

    @property
    def status(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def body(self) -> str | None: ...


def error_message(error: Refused) -> str:
    """The API server's own message, which names the field or the permission at fault."""
    try:
        text = json.loads(error.body or "{}").get("message", "")
    except ValueError:
        text = ""
    return str(text or error.reason or error.status)


# A container waiting for one of these will not become ready by waiting longer.
_STUCK = ("CrashLoopBackOff", "ErrImagePull", "ImagePullBackOff", "CreateContainerConfigError",
          "CreateContainerError", "RunContainerError", "InvalidImageName")  # fmt: skip


def why_unready(pods: list[Manifest]) -> str | None:
    """What keeps these pods from being ready, in a kubelet's and scheduler's words, for the
    first pod that says: a container stuck (crash loop with its last exit code and message,
    image pull), or a pod the scheduler cannot place. None when nothing says why."""
    for pod in pods:
        name = pod.get("metadata", {}).get("name", "?")
        status = pod.get("status") or {}
        for c in status.get("containerStatuses") or []:
            waiting = (c.get("state") or {}).get("waiting") or {}
            last = (c.get("lastState") or {}).get("terminated") or {}
            done = (c.get("state") or {}).get("terminated") or {}
            ended = last or done
            if waiting.get("reason") in _STUCK or (ended and ended.get("exitCode", 0) != 0):
                words = [f"pod {name} container {c.get('name')}:"]
                if waiting.get("reason"):
                    words.append(waiting["reason"])
                if ended:
                    words.append(f"exit code {ended.get('exitCode')}")
                    if ended.get("message"):
                        words.append(f"({ended['message'].strip()[:300]})")
                elif waiting.get("message"):
                    words.append(f"({waiting['message'][:300]})")
                if c.get("restartCount"):
                    words.append(f"after {c['restartCount']} restarts")
                return " ".join(words)
        for condition in status.get("conditions") or []:
            if condition.get("type") == "PodScheduled" and condition.get("status") == "False":
                return f"pod {name} cannot be scheduled: {condition.get('message', '')[:300]}"
    return None
