"""One tick of one rollout: observe the cluster and Prometheus, advance the machine, converge the
cluster to the world the new status asks for, and record status and Events.

Blocking (the kubernetes client and prometheus-api-client are synchronous); the kopf daemon runs
it in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelrollout.analysis.evaluate import Context, Evaluation, MeasurementError
from modelrollout.analysis.prometheus import Credentials, PrometheusSource
from modelrollout.analysis.webhooks import notify, payload
from modelrollout.api.v1alpha1 import (
    GROUP,
    PLURAL,
    VERSION,
    ConfigMapKeyRef,
    ModelRolloutSpec,
    ModelRolloutStatus,
    RevisionRef,
    SignalResult,
)
from modelrollout.controller import metrics
from modelrollout.domain.commands import COMMAND_ANNOTATION, decode
from modelrollout.domain.machine import (
    Command,
    Event,
    Observations,
    World,
    advance,
    desired_world,
    evaluation_due,
    machine_message,
    timestamp,
)
from modelrollout.domain.revision import REVISION_LABEL, deployment_name, revision_of
from modelrollout.k8s.objects import ROLLOUT_LABEL, Owner, apply, error_message, scale
from modelrollout.routers.base import Router, RouterError
from modelrollout.routers.gateway_api import GatewayAPIRouter
from modelrollout.workloads.builders import build_deployment, build_service

log = logging.getLogger(__name__)
FORBIDDEN = "permission denied, the operator's role lacks a rule (see the chart's RBAC)"
UNSUPPORTED_ROUTER = (
    "traffic.istio and traffic.replicas are not implemented yet; use traffic.gatewayAPI. "
    "Nothing was created."
)
INVALID_SPEC = "invalid spec"
# Messages the ticker writes when it cannot act at all. Unlike the machine's own message (the
# rollback reason), each stops being true once a tick goes through, and is then taken back.
REFUSALS = (FORBIDDEN, UNSUPPORTED_ROUTER, INVALID_SPEC)

EventSink = Callable[[Event], None]


@dataclass(frozen=True)
class Rollout:
    """A snapshot of one ModelRollout object."""

    owner: Owner
    resource_version: str
    generation: int
    raw_spec: dict[str, Any]
    raw_status: dict[str, Any]
    annotations: dict[str, str]

    @classmethod
    def from_body(cls, body: dict[str, Any]) -> Rollout:
        meta = body["metadata"]
        return cls(
            owner=Owner(meta["name"], meta["namespace"], meta["uid"]),
            resource_version=str(meta.get("resourceVersion", "")),
            generation=int(meta.get("generation", 0)),
            raw_spec=body.get("spec", {}),
            raw_status=body.get("status") or {},
            annotations=meta.get("annotations") or {},
        )


def command_of(annotations: dict[str, str]) -> Command | None:
    raw = annotations.get(COMMAND_ANNOTATION)
    command = decode(raw)
    if raw and command is None:
        log.warning("ignoring a malformed %s annotation: %r", COMMAND_ANNOTATION, raw)
    return command


class Ticker:
    """Ticks rollouts: the API client and clients built on it, and where Events go."""

    def __init__(self, api: client.ApiClient, emit: EventSink) -> None:
        self.api = api
        self.emit = emit
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.objects = client.CustomObjectsApi(api)

    def read(self, namespace: str, name: str) -> dict[str, Any] | None:
        """The object as stored now, or None once it is gone."""
        try:
            body = self.objects.get_namespaced_custom_object(
                GROUP, VERSION, namespace, PLURAL, name
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return cast(dict[str, Any], body)

    def tick(self, rollout: Rollout, now: datetime | None = None) -> ModelRolloutStatus | None:
        try:
            return self._tick(rollout, now or datetime.now(UTC))
        except (ApiException, RouterError) as error:
            cause = error if isinstance(error, ApiException) else error.__cause__
            if not isinstance(cause, ApiException) or cause.status != 403:
                raise
            self._forbidden(rollout, cause)
            return None

    def _forbidden(self, rollout: Rollout, error: ApiException) -> None:
        """A permission the operator's role lacks: said once in status and as a Warning Event,
        in the API server's words (they name the verb, the resource and the ServiceAccount)."""
        message = f"{FORBIDDEN}: {error_message(error)}"
        log.error("%s/%s: %s", rollout.owner.namespace, rollout.owner.name, message)
        if rollout.raw_status.get("message") == message:
            return
        try:
            self._refuse(rollout, message)
        except RuntimeError as unwritten:  # status itself may be what is forbidden
            log.error("%s", unwritten)
        self.emit(Event("Warning", "Forbidden", message))

    def _tick(self, rollout: Rollout, moment: datetime) -> ModelRolloutStatus | None:
        try:
            spec = ModelRolloutSpec.model_validate(rollout.raw_spec)
        except ValidationError as error:  # admission should have refused it; say so, touch nothing
            self._refuse(rollout, f"{INVALID_SPEC}: {error}")
            return None
        status = ModelRolloutStatus.model_validate(rollout.raw_status)
        router = self._router(rollout.owner, spec)
        if router is None:
            # Without a router nothing would send the canary traffic, and its weight would only
            # be a number in status: do nothing rather than promote on evidence never gathered.
            self._refuse(rollout, UNSUPPORTED_ROUTER)
            return None
        desired = RevisionRef(revision=revision_of(spec), version=spec.model.version)
        seen = Observations(
            now=moment,
            desired=desired,
            canary_available=self._available(rollout.owner, status.canary),
            weight=router.read_weight(),
            results=self._evaluate(rollout, spec, status, moment),
            command=command_of(rollout.annotations),
        )
        if seen.results is not None:  # what was measured, whatever this tick goes on to decide
            metrics.record(rollout.owner.namespace, rollout.owner.name, seen.results)
        step = advance(spec, status, seen)
        new_status = step.status.model_copy(update={"observed_generation": rollout.generation})
        # Status first, on the version read: a tick that acted on a stale read (a second ticker,
        # an operator restarting over a dying one) gets a conflict and changes nothing.
        written = self._write_status(rollout, new_status.model_dump(mode="json", by_alias=True))
        if written is None:
            return None
        owner = rollout.owner
        metrics.state(owner.namespace, owner.name, phase=new_status.phase,
                      weight=new_status.canary_weight, step=new_status.current_step or 0,
                      steps=len(spec.strategy.steps),
                      stable=new_status.stable.version if new_status.stable else "",
                      canary=new_status.canary.version if new_status.canary else "")  # fmt: skip
        metrics.decided(owner.namespace, owner.name, step.events)
        world = desired_world(spec, new_status)
        if world is not None:
            self._converge(rollout.owner, spec, desired.revision, world, router)
        if new_status.message is not None and new_status.message.startswith(REFUSALS):
            # The tick went through, so the refusal is no longer true: a granted permission or
            # a fixed spec shows at once, not only when the next canary starts.
            new_status = new_status.model_copy(update={"message": machine_message(new_status)})
            self._write_status(replace(rollout, resource_version=written),
                               {"message": new_status.message})  # fmt: skip
        version = (new_status.canary or new_status.stable or desired).version
        for event in step.events:
            self.emit(event)
            body = payload(rollout.owner.namespace, rollout.owner.name, event.reason,
                           event.message, version)  # fmt: skip
            notify(spec.notifications, body)
        return new_status

    # -- observing -----------------------------------------------------------------------------

    def _router(self, owner: Owner, spec: ModelRolloutSpec) -> Router | None:
        if spec.traffic.gateway_api is not None:
            return GatewayAPIRouter(self.api, owner, spec.traffic.gateway_api, spec.service.port)
        return None  # istio and replica-ratio routers come later

    def _available(self, owner: Owner, canary: RevisionRef | None) -> bool:
        if canary is None:
            return False
        try:
            deployment = self.apps.read_namespaced_deployment_status(
                deployment_name(owner.name, canary.revision), owner.namespace
            )
        except ApiException as error:
            if error.status == 404:
                return False
            raise
        state = deployment.status
        if state is None:
            return False
        available = any(
            c.type == "Available" and c.status == "True" for c in state.conditions or []
        )
        return available and (state.ready_replicas or 0) >= 1

    def _evaluate(self, rollout: Rollout, spec: ModelRolloutSpec, status: ModelRolloutStatus,
                  now: datetime) -> list[SignalResult] | None:  # fmt: skip
        if spec.analysis is None or not evaluation_due(spec, status, now):
            return None
        source = PrometheusSource(
            spec.analysis.prometheus.address,
            timeout=spec.analysis.prometheus.timeout,
            credentials=self._credentials(rollout.owner, spec),
        )
        canary, stable = status.canary, status.stable
        if canary is None or stable is None:
            return None
        context = Context(
            values=self._template_values(rollout.owner, spec, spec.analysis.interval, status),
            canary_version=canary.version,
            stable_version=stable.version,
            canary_since=_parse_time(status.canary_since, now),
            now=now,
            weight=status.canary_weight,
            weight_since=_parse_time(status.weight_since, now) if status.weight_since else None,
            at=timestamp(now),
        )
        load = partial(self._reference, rollout.owner.namespace)
        return Evaluation(source, context, load).run(spec.analysis)

    def _reference(self, namespace: str, ref: ConfigMapKeyRef) -> str:
        try:
            config = self.core.read_namespaced_config_map(ref.name, namespace)
        except ApiException as error:
            raise MeasurementError(
                f"reference ConfigMap {namespace}/{ref.name}: {error_message(error)}"
            ) from error
        data = config.data or {}
        if ref.key not in data:
            raise MeasurementError(
                f"reference ConfigMap {namespace}/{ref.name} has no key {ref.key}"
            )
        return str(data[ref.key])

    def _template_values(self, owner: Owner, spec: ModelRolloutSpec, interval: str,
                         status: ModelRolloutStatus) -> dict[str, str]:  # fmt: skip
        values = {
            "model": spec.model.name,
            "namespace": owner.namespace,
            "name": owner.name,
            "interval": interval,
        }
        for role, ref in (("canary", status.canary), ("stable", status.stable)):
            if ref is not None:
                values[f"{role}.version"] = ref.version
                values[f"{role}.revision"] = ref.revision
        if status.canary is not None:
            values["version"] = status.canary.version
        return values

    def _credentials(self, owner: Owner, spec: ModelRolloutSpec) -> Credentials | None:
        ref = spec.analysis.prometheus.auth_secret_ref if spec.analysis else None
        if ref is None:
            return None
        secret = self.core.read_namespaced_secret(ref.name, owner.namespace)
        data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
        return Credentials.from_secret_data(data)

    # -- converging ----------------------------------------------------------------------------

    def _converge(self, owner: Owner, spec: ModelRolloutSpec, current: str, world: World,
                  router: Router) -> None:  # fmt: skip
        for revision, replicas in world.replicas.items():
            if revision == current:
                apply(self.api, build_deployment(owner, spec, revision, replicas))
            elif not scale(self.api, owner.namespace, deployment_name(owner.name, revision),
                           replicas):  # fmt: skip
                # Its template was the spec's when it was current; the spec no longer says it.
                log.warning("revision %s of %s/%s has no Deployment left to scale",
                            revision, owner.namespace, owner.name)  # fmt: skip
        apply(self.api, build_service(owner, spec, "stable", world.stable))
        apply(self.api, build_service(owner, spec, "canary", world.canary or world.stable))
        router.set_weight(world.weight)
        self._remove_other_revisions(owner, set(world.replicas))

    def _remove_other_revisions(self, owner: Owner, keep: set[str]) -> None:
        listed = self.apps.list_namespaced_deployment(
            owner.namespace, label_selector=f"{ROLLOUT_LABEL}={owner.name}"
        )
        for deployment in listed.items:
            meta = deployment.metadata
            revision = (meta.labels or {}).get(REVISION_LABEL) if meta else None
            if meta is not None and meta.name and revision is not None and revision not in keep:
                self.apps.delete_namespaced_deployment(meta.name, owner.namespace)

    # -- recording -----------------------------------------------------------------------------

    def _refuse(self, rollout: Rollout, message: str) -> None:
        """Act on nothing and say why in status; written once, not on every tick."""
        if rollout.raw_status.get("message") != message:
            self._write_status(rollout, {"message": message})

    def _write_status(self, rollout: Rollout, status: dict[str, Any]) -> str | None:
        """Merge-patch the whole status (cleared fields as null), on the resourceVersion read.

        The object's new resourceVersion; None when it changed since it was read (409) or is
        gone (404).
        """
        patch = {"metadata": {"resourceVersion": rollout.resource_version}, "status": status}
        try:
            stored = self.objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, rollout.owner.namespace, PLURAL, rollout.owner.name,
                cast(Any, patch),
            )  # fmt: skip
        except ApiException as error:
            if error.status in (404, 409):
                log.debug("status not written (%s): the object changed or went away", error.status)
                return None
            raise RuntimeError(f"writing status: {error_message(error)}") from error
        return str(cast(dict[str, Any], stored)["metadata"]["resourceVersion"])


def _parse_time(text: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(text) if text else default
