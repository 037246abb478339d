"""One tick of one rollout: observe the cluster and Prometheus, advance the machine, converge the
cluster to the world the new status asks for, and record status and Events.

Blocking (the kubernetes client and prometheus-api-client are synchronous); the kopf daemon runs
it in a worker thread, so the event loop never blocks.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from pydantic import ValidationError

from modelrollout.analysis.evaluate import (
    Context,
    Evaluation,
    MeasurementError,
    failed_everywhere,
    period_of,
    unexpected,
)
from modelrollout.analysis.prometheus import Credentials, PrometheusSource
from modelrollout.analysis.webhooks import notify, payload
from modelrollout.api.v1alpha1 import (
    GROUP,
    MAX_NAME_LENGTH,
    NAME_MESSAGE,
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
    plans,
    timestamp,
    with_condition,
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
TICK_FAILED = "the operator could not complete a tick"
# Messages the ticker writes when it cannot act at all. Unlike the machine's own message (the
# rollback reason), each stops being true once a tick goes through, and is then taken back.
REFUSALS = (FORBIDDEN, UNSUPPORTED_ROUTER, INVALID_SPEC, TICK_FAILED)
# Ticks in a row that may fail before a canary the operator cannot watch loses its traffic.
FAULT_LIMIT = int(os.environ.get("MODELROLLOUT_FAULT_LIMIT", "3"))
FAULT_CONDITION = "OperatorFault"

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

    def __init__(self, api: client.ApiClient, emit: EventSink, *,
                 fault_limit: int = FAULT_LIMIT) -> None:  # fmt: skip
        self.api = api
        self._emit = emit
        self.apps = client.AppsV1Api(api)
        self.core = client.CoreV1Api(api)
        self.objects = client.CustomObjectsApi(api)
        self.fault_limit = max(1, fault_limit)
        self.faults = 0  # ticks in a row that did not complete (one Ticker per rollout)
        self.stage = "read"
        self.last: Rollout | None = None  # the latest read, for when reading itself fails
        # A fail-safe rollback whose status write failed: the first tick that can write records
        # it, so a route taken back to stable is not given back to the canary on recovery.
        self.owed: str | None = None

    def emit(self, event: Event) -> None:
        """Post an Event; best effort: a failure to post never fails the tick."""
        try:
            self._emit(event)
        except Exception:
            log.exception("could not post the Event %s", event.reason)

    def run(self, namespace: str, name: str, now: datetime | None = None) -> bool:
        """Read the object and tick it. False once it is gone or being deleted.

        A fault at any stage is said where users look within the tick (status message and
        condition `OperatorFault`, a Warning Event, `modelrollout_tick_faults`), a pending
        `abort` is still applied, and after `fault_limit` faulty ticks in a row the canary is
        rolled back: traffic goes to stable first, then the rollback is recorded."""
        moment = now or datetime.now(UTC)
        self.stage = "read"
        try:
            body = self.read(namespace, name)
        except Exception as error:
            self._fault(self.last, error, moment)
            return True
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            # Gone, or being deleted: its objects go with it (owner references), and in a
            # namespace that is terminating nothing new may be created. Nothing to decide.
            return False
        rollout = Rollout.from_body(body)
        self.last = rollout
        try:
            self.tick(rollout, moment)
        except Exception as error:
            # the freshest snapshot: after this tick's own status write when it got that far
            self._fault(self.last, error, moment)
            return True
        if self.faults:
            log.info("%s/%s: ticks complete again after %d faults", namespace, name, self.faults)
        self.faults = 0
        metrics.faulty(namespace, name, 0)
        return True

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
        self.stage = "observe"
        if len(rollout.owner.name) > MAX_NAME_LENGTH:  # admitted before the CRD had the rule
            self._refuse(rollout, f"{INVALID_SPEC}: {NAME_MESSAGE}")
            return None
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
            fault=self.owed,
        )
        if seen.results is not None:  # what was measured, whatever this tick goes on to decide
            metrics.record(rollout.owner.namespace, rollout.owner.name, seen.results)
        self.stage = "decide"
        step = advance(spec, status, seen)
        new_status = _without_fault(step.status, timestamp(moment)).model_copy(
            update={"observed_generation": rollout.generation}
        )
        # Status first, on the version read: a tick that acted on a stale read (a second ticker,
        # an operator restarting over a dying one) gets a conflict and changes nothing.
        self.stage = "status write"
        written = self._record(rollout, new_status)
        if written is None:
            return None
        self.owed = None
        owner = rollout.owner
        metrics.state(owner.namespace, owner.name, phase=new_status.phase,
                      weight=new_status.canary_weight, step=new_status.current_step or 0,
                      steps=len(spec.strategy.steps),
                      stable=new_status.stable.version if new_status.stable else "",
                      canary=new_status.canary.version if new_status.canary else "")  # fmt: skip
        metrics.decided(owner.namespace, owner.name, step.events)
        world = desired_world(spec, new_status)
        self.stage = "converge"
        if world is not None:
            self._converge(rollout.owner, spec, desired.revision, world, router)
        if new_status.message is not None and new_status.message.startswith(REFUSALS):
            # The tick went through, so the refusal is no longer true: a granted permission or
            # a fixed spec shows at once, not only when the next canary starts.
            new_status = new_status.model_copy(update={"message": machine_message(new_status)})
            self._write_status(replace(rollout, resource_version=written),
                               {"message": new_status.message})  # fmt: skip
        self.stage = "notify"
        self._announce(rollout, spec, step.events, (new_status.canary or new_status.stable
                                                    or desired).version)  # fmt: skip
        return new_status

    def _announce(self, rollout: Rollout, spec: ModelRolloutSpec, events: list[Event],
                  version: str) -> None:  # fmt: skip
        """Events and webhooks for what was decided; best effort, after the decision is
        recorded, so a failing receiver never undoes or repeats it."""
        for event in events:
            self.emit(event)
            body = payload(rollout.owner.namespace, rollout.owner.name, event.reason,
                           event.message, version)  # fmt: skip
            try:
                notify(spec.notifications, body)
            except Exception:
                log.exception("%s/%s: notifying %s failed", rollout.owner.namespace,
                              rollout.owner.name, event.reason)  # fmt: skip
                metrics.notification_failed(rollout.owner.namespace, rollout.owner.name)

    # -- when a tick cannot complete -------------------------------------------------------------

    def _fault(self, rollout: Rollout | None, error: BaseException, now: datetime) -> None:
        self.faults += 1
        stage = self.stage
        where = f"{rollout.owner.namespace}/{rollout.owner.name}" if rollout else "a rollout"
        log.error("%s: tick failed at %s (%d in a row)", where, stage, self.faults,
                  exc_info=error)  # fmt: skip
        if rollout is None:
            return  # nothing was ever read: there is no object to speak through yet
        owner = rollout.owner
        metrics.faulty(owner.namespace, owner.name, self.faults, stage)
        detail = _readable(error)
        message = (
            f"{TICK_FAILED} ({self.faults} in a row, limit {self.fault_limit}) at {stage}: {detail}"
        )
        if self.faults in {1, self.fault_limit}:
            self.emit(Event("Warning", "TickFailed", message))
        command = command_of(rollout.annotations)
        aborting = command is not None and command.kind == "abort"
        past_limit = self.faults >= self.fault_limit
        try:
            if past_limit:
                self.owed = self.owed or (
                    f"{TICK_FAILED} {self.faults} times in a row; the canary takes no traffic "
                    f"while it cannot be watched. Last fault, at {stage}: {detail}"
                )
            if past_limit or aborting:
                self._fail_safe(rollout, now, self.owed, message)
            else:
                self._say_fault(rollout, message, now)
        except Exception:
            log.exception("%s: could not record the fault", where)

    def _say_fault(self, rollout: Rollout, message: str, now: datetime) -> None:
        status = ModelRolloutStatus.model_validate(rollout.raw_status)
        self._record(rollout, _faulty(status.model_copy(update={"message": message}), message,
                                      now))  # fmt: skip

    def _fail_safe(self, rollout: Rollout, now: datetime, fault: str | None,
                   message: str) -> None:  # fmt: skip
        """Past the limit, or on a human's abort while ticks fail: take the canary's traffic
        away, then record why, each step on its own so that one failing does not stop the next:
        first the route (what users' requests see), then status through the machine (a
        rollback, or the human's abort), then the rest of the world."""
        owner = rollout.owner
        spec = ModelRolloutSpec.model_validate(rollout.raw_spec)
        status = ModelRolloutStatus.model_validate(rollout.raw_status)
        router = self._router(owner, spec)
        if router is not None:
            try:
                router.set_weight(0)
            except Exception:
                log.exception("%s/%s: could not take traffic off the canary", owner.namespace,
                              owner.name)  # fmt: skip
        desired = RevisionRef(revision=revision_of(spec), version=spec.model.version)
        seen = Observations(now=now, desired=desired, command=command_of(rollout.annotations),
                            fault=fault)  # fmt: skip
        step = advance(spec, status, seen)
        new_status = _faulty(step.status, message, now)
        if self._record(rollout, new_status) is None:
            return
        self.owed = None
        self._announce(rollout, spec, step.events, desired.version)
        world = desired_world(spec, new_status)
        if world is not None and router is not None:
            self._converge(owner, spec, desired.revision, world, router)

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
        analysis = spec.analysis
        if analysis is None or not evaluation_due(spec, status, now):
            return None
        canary, stable = status.canary, status.stable
        if canary is None or stable is None:
            return None
        self.stage = "credentials"
        try:
            credentials = self._credentials(rollout.owner, spec)
        except MeasurementError as error:
            return failed_everywhere(analysis, str(error), timestamp(now))
        self.stage = "measure"
        try:
            source = PrometheusSource(
                analysis.prometheus.address, timeout=analysis.prometheus.timeout,
                credentials=credentials,
            )  # fmt: skip
            context = Context(
                values=self._template_values(rollout.owner, spec, analysis.interval, status),
                canary_version=canary.version,
                stable_version=stable.version,
                canary_since=_parse_time(status.canary_since, now),
                now=now,
                weight=status.canary_weight,
                weight_since=_parse_time(status.weight_since, now) if status.weight_since else None,
                at=timestamp(now),
                period=period_of(analysis),
                plans=plans(spec, status, now),
            )
            load = partial(self._reference, rollout.owner.namespace)
            return Evaluation(source, context, load).run(analysis)
        except Exception as error:  # every signal says what went wrong
            return failed_everywhere(analysis, unexpected(error), timestamp(now))

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
        where = f"Prometheus credentials: Secret {owner.namespace}/{ref.name}"
        try:
            secret = self.core.read_namespaced_secret(ref.name, owner.namespace)
        except ApiException as error:
            said = "not found" if error.status == 404 else error_message(error)
            raise MeasurementError(f"{where}: {said}") from error
        try:
            data = {k: base64.b64decode(v).decode() for k, v in (secret.data or {}).items()}
            return Credentials.from_secret_data(data)
        except (ValueError, binascii.Error, UnicodeDecodeError) as error:
            raise MeasurementError(f"{where}: {error}") from error

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

    def _record(self, rollout: Rollout, status: ModelRolloutStatus) -> str | None:
        """Write the whole status on the version read and remember it as the latest snapshot (a
        read that fails next starts from it); the new resourceVersion, or None on a conflict."""
        dumped = status.model_dump(mode="json", by_alias=True)
        written = self._write_status(rollout, dumped)
        if written is not None:
            self.last = replace(rollout, resource_version=written, raw_status=dumped)
        return written

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


def _faulty(s: ModelRolloutStatus, message: str, now: datetime) -> ModelRolloutStatus:
    return with_condition(s, FAULT_CONDITION, "True", reason="TickFailed", message=message,
                          now=timestamp(now))  # fmt: skip


def _without_fault(s: ModelRolloutStatus, now: str) -> ModelRolloutStatus:
    """A tick that goes through ends a fault that was said."""
    if not any(c.type == FAULT_CONDITION and c.status == "True" for c in s.conditions):
        return s
    return with_condition(s, FAULT_CONDITION, "False", reason="TickCompleted", now=now)


def _readable(error: BaseException) -> str:
    if isinstance(error, ApiException):
        return f"the API server said {error.status}: {error_message(error)}"
    if isinstance(error, RuntimeError | RouterError) and str(error):
        return str(error).splitlines()[0][:300]
    return unexpected(error)


def _parse_time(text: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(text) if text else default
