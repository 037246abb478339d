"""What the operator last saw of the objects it reads: ModelRollouts, and the Deployments,
Services and routes it owns. Fed by watch events and by the answers to its own writes, so a tick
reads from memory instead of the API server.

Pure (no client): the adapter (cluster.py) and the kopf handlers feed it. An answer older than
what is stored (by resourceVersion) never replaces it: a watch event that arrives after the
answer to our own write must not take us back to before it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from modelrollout.domain.revision import REVISION_LABEL
from modelrollout.k8s.owner import APPLIED_ANNOTATION, ROLLOUT_LABEL, Manifest
from modelrollout.k8s.pods import Pods

Key = tuple[str, str]  # namespace, name


def _meta(body: Manifest) -> dict[str, Any]:
    meta: dict[str, Any] = body.get("metadata") or {}
    return meta


def key_of(body: Manifest) -> Key:
    meta = _meta(body)
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def _version(body: Manifest) -> str:
    return str(_meta(body).get("resourceVersion", ""))


def older(candidate: str, stored: str) -> bool:
    """True when `candidate` is known to be older than `stored`. resourceVersions are opaque;
    every API server in practice gives integers that grow, and anything else is taken as news."""
    try:
        return int(candidate) < int(stored)
    except ValueError:
        return False


# What no tick reads, and is most of a stored body's memory: who wrote which field (an update
# that leaves it out keeps it), and the copy of the whole object that a client-side
# `kubectl apply` keeps in an annotation (left out only of what the operator never writes back).
UNREAD_METADATA = "managedFields"
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"


def _lean(body: Manifest, unread: tuple[str, ...]) -> Manifest:
    """`body` without what no tick reads (a shallow copy; the body itself is left alone)."""
    meta = _meta(body)
    annotations = meta.get("annotations") or {}
    if UNREAD_METADATA not in meta and not any(k in annotations for k in unread):
        return body
    lean = {k: v for k, v in meta.items() if k != UNREAD_METADATA}
    if annotations:
        lean["annotations"] = {k: v for k, v in annotations.items() if k not in unread}
    return {**body, "metadata": lean}


@dataclass(frozen=True)
class Workload:
    """The facts of an owned Deployment or Service that converging and ticking need."""

    resource_version: str
    rollout: str | None
    revision: str | None
    digest: str | None  # what the operator last applied (APPLIED_ANNOTATION)
    replicas: int | None  # Deployments: spec.replicas
    available: bool  # Deployments: Available and at least one ready replica

    @classmethod
    def of(cls, body: Manifest) -> Workload:
        meta = _meta(body)
        labels = meta.get("labels") or {}
        spec = body.get("spec") or {}
        state = body.get("status") or {}
        available = (
            any(
                c.get("type") == "Available" and c.get("status") == "True"
                for c in state.get("conditions") or []
            )
            and int(state.get("readyReplicas") or 0) >= 1
        )
        replicas = spec.get("replicas")
        return cls(
            resource_version=_version(body),
            rollout=labels.get(ROLLOUT_LABEL),
            revision=labels.get(REVISION_LABEL),
            digest=(meta.get("annotations") or {}).get(APPLIED_ANNOTATION),
            replicas=int(replicas) if replicas is not None else None,
            available=available,
        )

    def news(self, other: Workload | None) -> bool:
        """Whether a change from `other` to this may ask the rollout for a decision."""
        return other is None or (self.digest, self.replicas, self.available) != (
            other.digest, other.replicas, other.available
        )  # fmt: skip


class Kind:
    """One kind of object as last seen, by namespace and name; thread-safe."""

    def __init__(self, *, whole: bool, unread: tuple[str, ...] = ()) -> None:
        self._whole = whole  # keep the whole body (rollouts, routes) or only a Workload's facts
        self._unread = unread  # annotations left out of a whole body
        self._lock = threading.Lock()
        self._seen: dict[Key, Any] = {}
        # Workloads by the rollout that owns them (namespace, rollout) -> names: a tick looks up
        # its own few, not every object in the namespace.
        self._owned: dict[Key, set[str]] = {}

    def get(self, key: Key) -> Any:
        with self._lock:
            return self._seen.get(key)

    def put(self, body: Manifest) -> tuple[Any, Any] | None:
        """Store `body` unless what is stored is newer; (before, after), or None if ignored."""
        key = key_of(body)
        value: Any = _lean(body, self._unread) if self._whole else Workload.of(body)
        with self._lock:
            before = self._seen.get(key)
            if before is not None and older(_version(body), self._version(before)):
                return None
            self._unindex(key, before)
            self._seen[key] = value
            if isinstance(value, Workload) and value.rollout is not None:
                self._owned.setdefault((key[0], value.rollout), set()).add(key[1])
        return before, value

    def remove(self, body: Manifest) -> Any:
        """Forget an object that is gone, unless what is stored is newer (recreated since)."""
        key = key_of(body)
        with self._lock:
            before = self._seen.get(key)
            if before is None or older(_version(body), self._version(before)):
                return None
            self._unindex(key, before)
            return self._seen.pop(key)

    def forget(self, key: Key) -> None:
        with self._lock:
            self._unindex(key, self._seen.pop(key, None))

    def owned_by(self, namespace: str, rollout: str) -> dict[str, Any]:
        """The objects of `namespace` labelled as owned by `rollout`, by name."""
        with self._lock:
            names = self._owned.get((namespace, rollout), set())
            return {name: self._seen[(namespace, name)] for name in names}

    def _unindex(self, key: Key, value: Any) -> None:
        if isinstance(value, Workload) and value.rollout is not None:
            names = self._owned.get((key[0], value.rollout))
            if names is not None:
                names.discard(key[1])
                if not names:
                    del self._owned[(key[0], value.rollout)]

    def _version(self, value: Any) -> str:
        return _version(value) if self._whole else str(value.resource_version)


class Store:
    """Everything the operator reads, as last seen."""

    def __init__(self) -> None:
        self.rollouts = Kind(whole=True, unread=(LAST_APPLIED,))
        self.deployments = Kind(whole=False)
        self.services = Kind(whole=False)
        self.routes = Kind(whole=True)
        self.pods = Pods()


__all__ = ["Key", "Kind", "Store", "Workload", "key_of", "older"]
