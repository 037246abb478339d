"""What the ticker needs from the world, as protocols: the real adapters are in k8s/ (the
cluster), routers/ (traffic), analysis/ (metrics) and controller/notify.py (Events and webhooks);
fakes the tests own are in testing/fakes.py. Nothing here imports a client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from modelrollout.analysis.counting import MetricsSource
from modelrollout.analysis.series import Credentials
from modelrollout.api.v1alpha1 import (
    ModelRolloutSpec,
    Notifications,
    NotificationsStatus,
    PrometheusSource,
)
from modelrollout.domain.machine import Event, Incident
from modelrollout.domain.outbox import Progress
from modelrollout.k8s.owner import ClusterError, Desired, Manifest, Owner
from modelrollout.routers.base import Router, RouterError


class Cluster(Protocol):
    """The API server as the ticker uses it. Failures raise ClusterError (with the HTTP status
    when the server answered)."""

    def read(self, namespace: str, name: str, *, fresh: bool = False) -> Manifest | None:
        """The ModelRollout as last seen, or as stored now (`fresh`); None once it is gone."""

    def available(self, owner: Owner, deployment: str) -> bool:
        """Whether the Deployment is Available with at least one ready replica."""

    def incidents(self, owner: Owner, revision: str) -> list[Incident]:
        """Interruptions of the revision's pods seen since the operator started: crashes,
        restarts, readiness lost (k8s/pods.py)."""

    def why_unready(self, owner: Owner, revision: str) -> str | None:
        """What keeps the revision's pods from being ready (a crash loop, an image that cannot
        be pulled, no node for them), or None when they do not say."""

    def write_status(self, owner: Owner, resource_version: str,
                     status: dict[str, Any]) -> str | None:  # fmt: skip
        """Write the status on the version read: the new resourceVersion, or None when the
        object changed meanwhile (409) or is gone."""

    def converge(self, owner: Owner, desired: Desired) -> list[str]:
        """Make the owned objects what `desired` says; what was put back after another writer
        changed or deleted it, in words."""

    def config_value(self, namespace: str, name: str, key: str) -> str:
        """One key of a ConfigMap."""

    def secret_data(self, namespace: str, name: str) -> dict[str, str]:
        """A Secret's data, decoded."""

    def create_job(self, owner: Owner, job: Manifest) -> None:
        """Create a Job the rollout owns; one of the same name that exists already is left as
        it is (its name is the retraining's: creating it twice is one Job)."""

    def job_outcome(self, namespace: str, name: str) -> tuple[str, str] | None:
        """A Job's state ("Running", "Succeeded" or "Failed") and its words (the termination
        message of its last pod, or its condition's message); None when there is no such Job."""

    def forget(self, namespace: str, name: str) -> None:
        """The rollout is gone: drop what was remembered for it."""


class Deliveries(Protocol):
    """The sender of the durable outbox (controller/delivery.py)."""

    def offer(self, owner: Owner, notifications: Notifications | None,
              outbox: NotificationsStatus | None) -> None:  # fmt: skip
        """What status holds now; never blocks on a receiver."""

    def progress(self, owner: Owner) -> dict[str, Progress]:
        """How far each receiver of the rollout got."""

    def forget(self, namespace: str, name: str) -> None: ...


class Notifier(Protocol):
    def send(self, owner: Owner, event: Event, notifications: Notifications | None,
             version: str) -> None:  # fmt: skip
        """Queue an Event (and the webhooks that want it) for delivery; never blocks, never
        raises for a receiver's fault."""


RouterFor = Callable[[Owner, ModelRolloutSpec], Router | None]
SourceFor = Callable[[PrometheusSource, Credentials | None], MetricsSource]

__all__ = [
    "Cluster",
    "ClusterError",
    "Deliveries",
    "MetricsSource",
    "Notifier",
    "Router",
    "RouterError",
    "RouterFor",
    "SourceFor",
]
