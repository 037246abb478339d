"""What the operator owns, and how a failed call to the API server is said: pure, no client, so
that the ticker can name owners and faults without importing the Kubernetes client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from modelrollout.api.v1alpha1 import GROUP, KIND, VERSION

Manifest = dict[str, Any]
ROLLOUT_LABEL = "modelrollout.io/rollout"
# The digest of what the operator last applied to an owned object: converging compares it with
# the desired object's, and writes only when they differ (or the object is gone).
APPLIED_ANNOTATION = "modelrollout.io/applied"


@dataclass(frozen=True)
class Owner:
    """The ModelRollout that owns (and garbage-collects) what the operator creates."""

    name: str
    namespace: str
    uid: str

    def reference(self) -> Manifest:
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }

    def metadata(self, name: str, labels: dict[str, str]) -> Manifest:
        return {
            "name": name,
            "namespace": self.namespace,
            "labels": {**labels, ROLLOUT_LABEL: self.name},
            "ownerReferences": [self.reference()],
        }

    def body(self) -> Manifest:
        """Enough of the ModelRollout to name it in an Event's involvedObject."""
        return {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": {"name": self.name, "namespace": self.namespace, "uid": self.uid},
        }


# The API server is throttling (429) or a proxy in front of it has no server behind it: like no
# answer at all, nothing the operator writes reaches the cluster now, its route included.
CANNOT_SERVE = frozenset({429, 502, 503, 504})


class ClusterError(RuntimeError):
    """The API server refused or failed a call; `status` is its HTTP status (None: no answer),
    and the message is the server's own (it names the field, verb or permission at fault).
    `terminating`: refused because the namespace is being deleted (nothing more to do there).
    `unanswered`: the API server did not answer, or said it cannot serve now (CANNOT_SERVE)."""

    def __init__(self, message: str, status: int | None = None, *, terminating: bool = False,
                 unanswered: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.terminating = terminating
        self.unanswered = unanswered


def unanswered(error: BaseException | None) -> bool:
    """`error`, or an error that caused it (a router's, wrapping the cluster's), is the API
    server not answering: an outage, not a fault of this rollout's tick."""
    while error is not None:
        if getattr(error, "unanswered", False) is True:
            return True
        error = error.__cause__
    return False


@dataclass(frozen=True)
class Desired:
    """The objects one rollout should own now, as converging asks the cluster for them."""

    apply: list[Manifest]  # applied whole: the current revision's Deployment, the Services
    scale: dict[str, int]  # other revisions' Deployments, by name: only their replica count
    keep: frozenset[str]  # the revisions that may have a Deployment; the others are deleted
    # Services that should no longer exist (an A/B/n phase's NAME-armN once it is over): deleted
    # when last seen, so asking costs no request once they are gone
    retire: frozenset[str] = frozenset()
