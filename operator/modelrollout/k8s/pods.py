"""What the canary's pods went through between two ticks, from the pod watch: a sample of the
Deployment at tick time misses a container that crashed and came back within a second (issue 20:
a canary that served 30 s, exited 1 and restarted was promoted, and went on restarting).

An incident is a pod of a revision that was Ready and stopped being Ready, or whose containers
restarted while it was Ready (a crash, an OOM kill, a failed liveness probe, a readiness flap),
while nobody was deleting it. A container that never got Ready (a crash at start) is not an
incident: the progress deadline judges it, with the crash named. A pod first seen with restarts
already counted (an operator that restarted) is one incident at the end of its last run, so a
restart of the operator never hides a crash.

Pure (no client): the kopf handlers feed it.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from modelrollout.domain.machine import Incident
from modelrollout.k8s.owner import Manifest

# Incidents kept per Deployment: more than any restart limit admission lets a user state.
KEPT = 32


@dataclass(frozen=True)
class _Pod:
    ready: bool
    restarts: int


def deployment_of(body: Manifest) -> str | None:
    """The Deployment a pod belongs to: its ReplicaSet's name without the pod-template hash."""
    meta = body.get("metadata") or {}
    template_hash = (meta.get("labels") or {}).get("pod-template-hash")
    for ref in meta.get("ownerReferences") or []:
        name = str(ref.get("name", ""))
        if ref.get("kind") == "ReplicaSet" and template_hash and name.endswith(f"-{template_hash}"):
            return name[: -len(template_hash) - 1]
    return None


def _ready(status: dict[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in status.get("conditions") or [])  # fmt: skip


def _restarts(status: dict[str, Any]) -> int:
    return sum(int(c.get("restartCount") or 0) for c in status.get("containerStatuses") or [])


def _time(text: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(str(text)) if text else None
    except ValueError:
        return None


def describe(body: Manifest) -> tuple[str, datetime | None]:
    """What a pod's containers say about their last run: exit codes, reasons, messages and
    restarts, in the kubelet's words; and when that run ended."""
    name = (body.get("metadata") or {}).get("name", "?")
    words, ended_at = [], None
    for c in (body.get("status") or {}).get("containerStatuses") or []:
        ended = ((c.get("state") or {}).get("terminated")
                 or (c.get("lastState") or {}).get("terminated") or {})  # fmt: skip
        restarts = int(c.get("restartCount") or 0)
        if not ended and not restarts:
            continue
        said = f"container {c.get('name')}"
        if ended:
            said += f" exited with code {ended.get('exitCode')}"
            if ended.get("reason"):
                said += f" ({ended['reason']})"
            if ended.get("message"):
                said += f": {str(ended['message']).strip()[:300]}"
            ended_at = max(filter(None, (ended_at, _time(ended.get("finishedAt")))), default=None)
        said += f", {restarts} restart{'s' if restarts != 1 else ''}"
        words.append(said)
    if not words:
        return f"pod {name} stopped being ready", None
    return f"pod {name} {'; '.join(words)}", ended_at


class Pods:
    """Interruptions of the pods of our Deployments, by (namespace, Deployment); thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[tuple[str, str], _Pod] = {}  # (namespace, pod)
        self._incidents: dict[tuple[str, str], deque[Incident]] = {}  # (namespace, Deployment)

    def put(self, body: Manifest, now: datetime | None = None) -> tuple[str, str] | None:
        """Take a pod's new state; the (namespace, Deployment) it interrupted, if it did."""
        meta = body.get("metadata") or {}
        deployment = deployment_of(body)
        if deployment is None:
            return None
        namespace, name = str(meta.get("namespace", "")), str(meta.get("name", ""))
        status = body.get("status") or {}
        pod = _Pod(_ready(status), _restarts(status))
        with self._lock:
            before = self._seen.get((namespace, name))
            self._seen[(namespace, name)] = pod
            if meta.get("deletionTimestamp"):
                return None  # a pod being stopped on purpose: what it does now is not a fault
            if before is None:
                interrupted = pod.restarts > 0
            else:
                interrupted = before.ready and (not pod.ready or pod.restarts > before.restarts)
            if not interrupted:
                return None
            what, ended_at = describe(body)
            at = ended_at if before is None and ended_at else (now or datetime.now(UTC))
            kept = self._incidents.setdefault((namespace, deployment), deque(maxlen=KEPT))
            kept.append(Incident(at, name, what))
            return namespace, deployment

    def remove(self, body: Manifest) -> None:
        meta = body.get("metadata") or {}
        with self._lock:
            self._seen.pop((str(meta.get("namespace", "")), str(meta.get("name", ""))), None)

    def incidents(self, namespace: str, deployment: str) -> list[Incident]:
        with self._lock:
            return list(self._incidents.get((namespace, deployment), ()))

    def forget(self, namespace: str, deployment: str) -> None:
        """The Deployment is gone: its pods' incidents with it."""
        with self._lock:
            self._incidents.pop((namespace, deployment), None)


__all__ = ["KEPT", "Incident", "Pods", "deployment_of", "describe"]
