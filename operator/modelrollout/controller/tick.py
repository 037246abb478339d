"""One tick of one rollout: read → observe → advance → write status → converge → emit.

A thin orchestrator over ports (controller/ports.py): the cluster, the router, the metrics
source and the notifier are given to it, so every story it tells can be told against fakes.
Blocking (the adapters are synchronous); the scheduler runs it on its worker threads. It imports
no client: an import-linter contract keeps `kubernetes` out of this module.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from pydantic import ValidationError

from modelrollout.analysis import monitor as monitoring
from modelrollout.analysis.counting import Context, MeasurementError
from modelrollout.analysis.evaluate import (
    Evaluation,
    failed_everywhere,
    unexpected,
)
from modelrollout.analysis.series import Credentials
from modelrollout.api import settings
from modelrollout.api.v1alpha1 import (
    IN_FLIGHT,
    MAX_CHALLENGERS,
    MAX_NAME_LENGTH,
    NAME_MESSAGE,
    ArmStatus,
    ConfigMapKeyRef,
    ModelRolloutSpec,
    ModelRolloutStatus,
    NotificationsStatus,
    RevisionRef,
    SignalResult,
)
from modelrollout.controller import metrics
from modelrollout.controller.ports import (
    Cluster,
    ClusterError,
    Deliveries,
    Notifier,
    Router,
    RouterError,
    RouterFor,
    SourceFor,
)
from modelrollout.domain import experiment, lifecycle, outbox, routes
from modelrollout.domain import monitor as watch
from modelrollout.domain import revision as revisions
from modelrollout.domain.cohorts import bucket_counts
from modelrollout.domain.commands import COMMAND_ANNOTATION, decode
from modelrollout.domain.durations import period_of
from modelrollout.domain.experiment import ArmSeen
from modelrollout.domain.lifecycle import REFUSED_CONDITION
from modelrollout.domain.machine import (
    Command,
    Event,
    Observations,
    World,
    cohort_in_effect,
    desired_world,
    evaluation_due,
    next_due,
    past_progress_deadline,
    plans,
    shadow_in_effect,
    timestamp,
    with_condition,
)
from modelrollout.domain.revision import (
    COMPARATOR_REVISION,
    FALLBACK_REVISION,
    arm_service,
    candidate_specs,
    deployment_name,
    revision_of,
)
from modelrollout.domain.routes import Routes, canary_weight, routes_of, service_of, two_arms
from modelrollout.domain.signals import error as signal_error
from modelrollout.k8s.owner import Desired, Owner, unanswered
from modelrollout.workloads.builders import (
    build_deployment,
    build_fallback,
    build_job,
    build_service,
)
from modelrollout.workloads.comparator import build_comparator

log = logging.getLogger(__name__)
FORBIDDEN = "permission denied, the operator's role lacks a rule (see the chart's RBAC)"
UNSUPPORTED_ROUTER = (
    "spec.traffic names no router this operator serves (it serves traffic.gatewayAPI). "
    "Nothing was created."
)
INVALID_SPEC = "invalid spec"
TICK_FAILED = "the operator could not complete a tick"
# Ticks in a row that may fail before a canary the operator cannot watch loses its traffic.
FAULT_LIMIT = int(settings.FAULT_LIMIT.number())
# The longest a rollout waits between two ticks: in flight, and at rest. Watch events and the
# rollout's own timers (machine.next_due) make it due sooner.
TICK_SECONDS = settings.TICK_SECONDS.number()
RESYNC_SECONDS = settings.RESYNC_SECONDS.number()


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


@dataclass
class _Memory:
    """What the ticker remembers of one rollout between its ticks."""

    faults: int = 0  # ticks in a row that did not complete, and that the fault limit counts
    unanswered: int = 0  # ticks in a row that failed because the API server did not answer
    stage: str = "read"
    last: Rollout | None = None  # the latest read, for when reading itself fails
    stale: bool = False  # the last status write conflicted: read the object afresh
    # This tick changed the route: the next tick observes the new weight at once (the answer to
    # our own write is no watch event's news, and the machine counts a weight once it reads it).
    moved: bool = False
    # A fail-safe rollback whose status write failed: the first tick that can write records
    # it, so a route taken back to stable is not given back to the canary on recovery.
    owed: str | None = None
    spec: ModelRolloutSpec | None = None  # the spec of the latest tick, parsed
    raw_spec: dict[str, Any] | None = None  # ... and as read

    def parsed(self, raw: dict[str, Any]) -> ModelRolloutSpec:
        """The spec as a model; the one parsed last time when the spec read is the same."""
        if self.spec is None or raw != self.raw_spec:
            self.spec = ModelRolloutSpec.model_validate(raw)
            self.raw_spec = raw
        return self.spec


class Ticker:
    """Ticks rollouts over the ports it is given; remembers each rollout's faults."""

    def __init__(self, cluster: Cluster, routers: RouterFor, sources: SourceFor,
                 notifier: Notifier, *, deliveries: Deliveries | None = None,
                 fault_limit: int = FAULT_LIMIT, poll: float = TICK_SECONDS,
                 resync: float = RESYNC_SECONDS) -> None:  # fmt: skip
        self.cluster = cluster
        self.deliveries = deliveries
        self.routers = routers
        self.sources = sources
        self.notifier = notifier
        self.fault_limit = max(1, fault_limit)
        self.poll = poll
        self.resync = max(poll, resync)
        self._memory: dict[tuple[str, str], _Memory] = {}

    def memory(self, namespace: str, name: str) -> _Memory:
        return self._memory.setdefault((namespace, name), _Memory())

    def forget(self, namespace: str, name: str) -> None:
        self._memory.pop((namespace, name), None)
        self.cluster.forget(namespace, name)
        if self.deliveries is not None:
            self.deliveries.forget(namespace, name)

    def run(self, namespace: str, name: str, now: datetime | None = None) -> float | None:
        """Read the object and tick it: seconds until it is next due, None once it is gone or
        being deleted.

        A fault at any stage is said where users look within the tick (status message and
        condition `OperatorFault`, a Warning Event, `modelrollout_tick_faults`), a pending
        `abort` is still applied, and after `fault_limit` faulty ticks in a row the canary is
        rolled back: traffic goes to stable first, then the rollback is recorded."""
        moment = now or datetime.now(UTC)
        m = self.memory(namespace, name)
        m.stage = "read"
        try:
            body = self.cluster.read(namespace, name, fresh=m.stale)
        except Exception as error:
            self._fault(m, m.last, error, moment)
            return self.poll
        m.stale = False
        if body is None or (body.get("metadata") or {}).get("deletionTimestamp"):
            # Gone, or being deleted: its objects go with it (owner references), and in a
            # namespace that is terminating nothing new may be created. Nothing to decide.
            self.forget(namespace, name)
            return None
        rollout = Rollout.from_body(body)
        m.last = rollout
        try:
            status = self.tick(rollout, moment)
        except Exception as error:
            # the freshest snapshot: after this tick's own status write when it got that far
            self._fault(m, m.last, error, moment)
            return self.poll
        if m.faults or m.unanswered:
            log.info("%s/%s: ticks complete again after %d faults and %d ticks the API server "
                     "did not answer", namespace, name, m.faults, m.unanswered)  # fmt: skip
            m.faults = m.unanswered = 0
            metrics.faulty(namespace, name, 0)
        return self._delay(rollout, status, moment)

    def _delay(self, rollout: Rollout, status: ModelRolloutStatus | None,
               now: datetime) -> float:  # fmt: skip
        """Seconds until the rollout's own timers want it, at most poll (in flight) or resync."""
        m = self.memory(rollout.owner.namespace, rollout.owner.name)
        if status is None:  # refused, or a conflict: the next watch event or a poll retries
            return 0.0 if m.stale else self.poll
        if m.moved:
            m.moved = False
            return 0.0
        in_flight = (status.canary is not None and status.phase in IN_FLIGHT) or (
            experiment.under_way(status)
        )
        # a retraining's Job is read every poll while it runs (its outcome is no watch event),
        # and the sender's progress is recorded every poll while notices are pending
        busy = watch.job_due(status, now) is not None or (
            status.notifications is not None and bool(status.notifications.pending)
        )
        bound = self.poll if in_flight or busy else self.resync
        spec = self.memory(rollout.owner.namespace, rollout.owner.name).spec
        if spec is None:
            return bound
        times = [t for t in (next_due(spec, status, now), watch.next_look(spec, status, now),
                             _retry_at(status)) if t is not None]  # fmt: skip
        if not times:
            return bound
        return max(0.0, min(bound, (min(times) - now).total_seconds()))

    def tick(self, rollout: Rollout, now: datetime | None = None) -> ModelRolloutStatus | None:
        """One tick on a snapshot: the status written, or None when nothing was (a refusal, or
        a conflict with a newer version of the object)."""
        m = self.memory(rollout.owner.namespace, rollout.owner.name)
        try:
            return self._tick(m, rollout, now or datetime.now(UTC))
        except (ClusterError, RouterError) as error:
            if error.terminating:
                # its namespace is being deleted, and the rollout with it: nothing to do or say
                log.info("%s/%s: namespace terminating", rollout.owner.namespace,
                         rollout.owner.name)  # fmt: skip
                return None
            if error.status != 403:
                raise
            message = f"{FORBIDDEN}: {error}"
            log.error("%s/%s: %s", rollout.owner.namespace, rollout.owner.name, message)
            try:
                if self._refuse(rollout, "Forbidden", message):
                    self._send(rollout.owner, Event("Warning", "Forbidden", message), None, "")
            except ClusterError as unwritten:  # status itself may be what is forbidden
                log.error("%s", unwritten)
            return None

    def _trouble(self, owner: Owner, revision: str) -> str | None:
        """Why the canary's pods are not ready, for a rollback's reason; never a fault itself."""
        try:
            return self.cluster.why_unready(owner, revision)
        except ClusterError as error:
            log.warning("%s/%s: %s", owner.namespace, owner.name, error)
            return None

    def _tick(self, m: _Memory, rollout: Rollout, moment: datetime) -> ModelRolloutStatus | None:
        m.stage = "observe"
        owner = rollout.owner
        if len(owner.name) > MAX_NAME_LENGTH:  # admitted before the CRD had the rule
            self._refuse(rollout, "InvalidSpec", f"{INVALID_SPEC}: {NAME_MESSAGE}")
            return None
        try:
            spec = m.parsed(rollout.raw_spec)
        except ValidationError as error:  # admission should have refused it; say so, touch nothing
            self._refuse(rollout, "InvalidSpec", f"{INVALID_SPEC}: {error}")
            return None
        status = ModelRolloutStatus.model_validate(rollout.raw_status)
        router = self.routers(owner, spec)
        if router is None:
            # Without a router nothing would send the canary traffic, and its weight would only
            # be a number in status: do nothing rather than promote on evidence never gathered.
            self._refuse(rollout, "UnsupportedRouter", UNSUPPORTED_ROUTER)
            return None
        desired = RevisionRef(revision=revision_of(spec), version=spec.model.version)
        canary = status.canary
        acceptance = router.acceptance(moment)
        in_effect = router.read()
        refused_route = acceptance.refused
        shadow = shadow_in_effect(spec, status)
        mirror = routes.mirror_of(in_effect)
        mirrored = None if shadow is None else mirror is not None and mirror.percent == shadow.share
        world = desired_world(spec, status) if shadow is not None else None
        mirror_refused = router.refuses(routes.routes_of(owner.name, world)) if world else None
        available = canary is not None and self.cluster.available(
            owner, deployment_name(owner.name, canary.revision))  # fmt: skip
        results, served = self._evaluate(m, rollout, spec, status, moment)
        candidates = revisions.candidates(spec)
        arms, shares = self._arms(rollout, spec, status, moment, in_effect) if candidates \
            else ({}, None)  # fmt: skip
        seen = Observations(
            now=moment,
            desired=desired,
            canary_available=available,
            canary_trouble=None
            if canary is None or available or not past_progress_deadline(spec, status, moment)
            else self._trouble(owner, canary.revision),
            weight=canary_weight(in_effect, owner.name),
            results=results,
            canary_requests=served,
            command=command_of(rollout.annotations),
            fault=m.owed,
            route_refused=refused_route,
            route_accepted=acceptance.accepted,
            canary_incidents=tuple(self.cluster.incidents(owner, canary.revision))
            if canary is not None and status.phase in IN_FLIGHT
            else (),
            candidates=candidates,
            arms=arms,
            shares=shares,
            cohorts_routed=routes.cohorts(in_effect),
            mirrored=mirrored,
            mirror_refused=mirror_refused,
        )
        if seen.results is not None:  # what was measured, whatever this tick goes on to decide
            metrics.record(owner.namespace, owner.name, seen.results)
        m.stage = "retraining"
        job = self._retraining_job(owner, spec, status, moment)
        m.stage = "monitor"
        look = self._look(rollout, spec, status, moment)
        m.stage = "decide"
        decision = lifecycle.decide(spec, status, seen, name=owner.name, job=job, look=look)
        if decision.monitored is not None:  # the monitor's verdicts are exported like a canary's
            metrics.record(owner.namespace, owner.name, decision.monitored)
        return self._conclude(m, rollout, spec, read=status, decision=decision, router=router,
                              desired=desired, weight=seen.weight,
                              at=timestamp(moment))  # fmt: skip

    def _conclude(self, m: _Memory, rollout: Rollout, spec: ModelRolloutSpec, *,
                  read: ModelRolloutStatus, decision: lifecycle.Decision, router: Router | None,
                  desired: RevisionRef, weight: int | None,
                  at: str) -> ModelRolloutStatus | None:  # fmt: skip
        """The tail of every tick, a fail-safe's included: the outbox, the status write, the
        sender, metrics, Events, then the world the new status asks for. None on a conflict."""
        owner, events, new_status = rollout.owner, decision.events, decision.status
        version = (new_status.canary or new_status.stable or desired).version
        told = self._outbox(owner, spec, new_status, events, at=at, version=version)
        new_status = new_status.edit(observed_generation=rollout.generation, notifications=told)
        # Status first, on the version read: a tick that acted on a stale read (a second ticker,
        # an operator restarting over a dying one) gets a conflict and changes nothing. Nothing
        # is written when nothing changed.
        m.stage = "status write"
        if new_status != read and self._record(m, rollout, new_status) is None:
            return None
        m.owed = None
        self._offer(owner, spec, new_status)
        metrics.state(owner.namespace, owner.name, phase=new_status.phase,
                      weight=new_status.canary_weight, step=new_status.current_step or 0,
                      steps=len(spec.strategy.steps),
                      stable=new_status.stable.version if new_status.stable else "",
                      canary=new_status.canary.version if new_status.canary else "")  # fmt: skip
        metrics.decided(owner.namespace, owner.name, events)
        m.stage = "notify"
        for event in events:
            self._send(owner, event, spec, version)
        world = desired_world(spec, new_status)
        m.stage = "converge"
        if world is not None and router is not None:
            world = router.shape(watch.with_fallback(spec, new_status, world))
            for said in self._converge(owner, spec, desired.revision, world, router):
                self._send(owner, Event("Warning", "Corrected", said), spec, version)
            m.moved = world.weight != weight
        return new_status

    # -- notifications ---------------------------------------------------------------------------

    def _outbox(self, owner: Owner, spec: ModelRolloutSpec, status: ModelRolloutStatus,
                events: list[Event], *, at: str,
                version: str) -> NotificationsStatus | None:  # fmt: skip
        """Status's outbox with how far the sender got, and this tick's Events as notices."""
        progress = self.deliveries.progress(owner) if self.deliveries is not None else {}
        hearing = watch.receivers(spec)
        box = outbox.fold(status.notifications, hearing, progress)
        box = outbox.enqueue(box, events, uid=owner.uid, at=at, version=version,
                             notifications=hearing)  # fmt: skip
        return outbox.fold(box, hearing, progress)

    def _offer(self, owner: Owner, spec: ModelRolloutSpec, status: ModelRolloutStatus) -> None:
        """Hand what status now holds to the sender: written first, told after."""
        if self.deliveries is None or status.notifications is None:
            return
        try:
            self.deliveries.offer(owner, watch.receivers(spec), status.notifications)
        except Exception:
            log.exception("%s/%s: could not hand notices to the sender", owner.namespace,
                          owner.name)  # fmt: skip

    # -- after promotion: what the pure decision needs read -----------------------------------

    def _retraining_job(self, owner: Owner, spec: ModelRolloutSpec, status: ModelRolloutStatus,
                        now: datetime) -> watch.JobSeen | None:  # fmt: skip
        """Create the current retraining's Job when it is due, or read how it is going. The API
        server's refusal (forbidden, a quota, an invalid template) is the retraining's Error,
        in its words, never the tick's fault."""
        due = watch.job_due(status, now)
        current = status.retraining.current if status.retraining else None
        action = watch.retrain_action(spec, current) if current is not None else None
        if due is None or current is None or action is None:
            return None
        if due == "create" and action.webhook is not None:
            return watch.JobSeen("Sent", action.webhook.url)  # its notice is the CloudEvent
        try:
            if due == "create":
                self.cluster.create_job(owner, build_job(owner, spec, current))
                return watch.JobSeen("Created")
            outcome = self.cluster.job_outcome(owner.namespace, current.job)
        except (ClusterError, ValueError) as error:
            if isinstance(error, ClusterError) and error.terminating:
                raise
            said = _readable(error) if isinstance(error, ClusterError) else str(error)
            if due == "read":
                log.warning("%s/%s: %s", owner.namespace, owner.name, said)
                return None  # read again next tick
            return watch.JobSeen("Error", said)
        return watch.JobSeen(*outcome) if outcome is not None else watch.JobSeen("Absent")

    def _look(self, rollout: Rollout, spec: ModelRolloutSpec, status: ModelRolloutStatus,
              now: datetime) -> watch.Look | None:  # fmt: skip
        """One look of the monitor at the stable revision, when it is due."""
        monitor, analysis = spec.monitor, spec.analysis
        if monitor is None or analysis is None or not watch.monitor_due(spec, status, now):
            return None
        m, stable = watch.current(status, now), status.stable
        if m is None or stable is None:
            return None
        at = timestamp(now)
        try:
            credentials = self._credentials(rollout.owner, spec)
            source = self.sources(analysis.prometheus, credentials)
            values = _template_values(rollout.owner, spec, monitor.interval,
                                      status.edit(canary=stable))  # fmt: skip
            context = Context(values=values, canary_version=stable.version,
                              stable_version=stable.version, canary_since=now, now=now,
                              weight=100, weight_since=None, at=at)  # fmt: skip
            load = partial(self._reference, rollout.owner.namespace)
            return monitoring.look(
                source, context, prometheus=analysis.prometheus, monitor=monitor, m=m, load=load
            )
        except Exception as error:  # every signal says what went wrong
            said = str(error) if isinstance(error, MeasurementError) else unexpected(error)
            errors = {s.name: signal_error(s.name, s.kind, said, at) for s in monitor.signals}
            return watch.Look(now=now, results=errors, counts={})

    def _send(self, owner: Owner, event: Event, spec: ModelRolloutSpec | None,
              version: str) -> None:  # fmt: skip
        """Queue the Event and its webhooks; delivery is the notifier's, outside the tick."""
        try:
            self.notifier.send(owner, event, spec.notifications if spec else None, version)
        except Exception:
            log.exception("%s/%s: could not queue %s", owner.namespace, owner.name, event.reason)
            metrics.notification_failed(owner.namespace, owner.name)

    # -- when a tick cannot complete -------------------------------------------------------------

    def _fault(self, m: _Memory, rollout: Rollout | None, error: BaseException,
               now: datetime) -> None:  # fmt: skip
        """A tick that did not complete. An API server that does not answer is an outage, not
        this rollout's fault: nothing could move the route meanwhile, a fail-safe included, so
        it does not count toward the fault limit, and the first tick after it looks again and
        acts on the evidence (issue 20: a 23-s restart of the API server rolled back a healthy
        canary at 5-s ticks). Every failed tick logs one line; the traceback, once per fault."""
        stage = m.stage
        where = f"{rollout.owner.namespace}/{rollout.owner.name}" if rollout else "a rollout"
        if unanswered(error):
            m.unanswered += 1
            log.warning("%s: tick failed at %s, the API server did not answer (%d ticks in a "
                        "row; not counted toward the fault limit): %s", where, stage,
                        m.unanswered, error)  # fmt: skip
            if rollout is not None:
                metrics.faulty(rollout.owner.namespace, rollout.owner.name, m.faults, stage)
            return
        m.faults += 1
        first = m.faults == 1
        log.error("%s: tick failed at %s (%d in a row): %s", where, stage, m.faults, error,
                  exc_info=error if first else None)  # fmt: skip
        if rollout is None:
            return  # nothing was ever read: there is no object to speak through yet
        owner = rollout.owner
        metrics.faulty(owner.namespace, owner.name, m.faults, stage)
        detail = _readable(error)
        message = (
            f"{TICK_FAILED} ({m.faults} in a row, limit {self.fault_limit}) at {stage}: {detail}"
        )
        if m.faults in {1, self.fault_limit}:
            self._send(owner, Event("Warning", "TickFailed", message), None, "")
        command = command_of(rollout.annotations)
        aborting = command is not None and command.kind == "abort"
        past_limit = m.faults >= self.fault_limit
        try:
            if past_limit:
                m.owed = m.owed or (
                    f"{TICK_FAILED} {m.faults} times in a row; the canary takes no traffic "
                    f"while it cannot be watched. Last fault, at {stage}: {detail}"
                )
            if past_limit or aborting:
                self._fail_safe(m, rollout, now, message)
            else:
                status = ModelRolloutStatus.model_validate(rollout.raw_status)
                said = lifecycle.faulty(status.edit(message=message), message, now)
                self._record(m, rollout, said)
        except Exception:
            log.exception("%s: could not record the fault", where)

    def _fail_safe(self, m: _Memory, rollout: Rollout, now: datetime, message: str) -> None:
        """Past the limit, or on a human's abort while ticks fail: take the canary's traffic
        away, then record why, each step on its own so that one failing does not stop the next:
        first the route (what users' requests see), then status through the machine (a
        rollback, or the human's abort), then the rest of the world."""
        owner = rollout.owner
        spec = ModelRolloutSpec.model_validate(rollout.raw_spec)
        status = ModelRolloutStatus.model_validate(rollout.raw_status)
        router = self.routers(owner, spec)
        if router is not None:
            try:
                router.apply(two_arms(owner.name, 0))
            except Exception:
                log.exception("%s/%s: could not take traffic off the canary", owner.namespace,
                              owner.name)  # fmt: skip
        desired = RevisionRef(revision=revision_of(spec), version=spec.model.version)
        seen = Observations(now=now, desired=desired, command=command_of(rollout.annotations),
                            fault=m.owed)  # fmt: skip
        decision = lifecycle.fail_safe(spec, status, seen, message)
        self._conclude(m, rollout, spec, read=status, decision=decision, router=router,
                       desired=desired, weight=None, at=timestamp(now))  # fmt: skip

    # -- observing -----------------------------------------------------------------------------

    def _evaluate(self, m: _Memory, rollout: Rollout, spec: ModelRolloutSpec,
                  status: ModelRolloutStatus,
                  now: datetime) -> tuple[list[SignalResult] | None, float | None]:  # fmt: skip
        """The signals' results when an evaluation is due, and the canary's requests in the
        current step (None: not counted)."""
        analysis = spec.analysis
        if analysis is None or not evaluation_due(spec, status, now):
            return None, None
        canary, stable = status.canary, status.stable
        if canary is None or stable is None:
            return None, None
        m.stage = "credentials"
        try:
            credentials = self._credentials(rollout.owner, spec)
        except MeasurementError as error:
            return failed_everywhere(analysis, str(error), timestamp(now)), None
        m.stage = "measure"
        try:
            source = self.sources(analysis.prometheus, credentials)
            context = Context(
                values=_template_values(rollout.owner, spec, analysis.interval, status),
                canary_version=canary.version,
                # while fallen back, the new canary is judged against the fallback's pods
                stable_version=spec.fallback.version
                if status.fallback and spec.fallback
                else stable.version,
                canary_since=_parse_time(status.canary_since, now),
                now=now,
                weight=status.canary_weight,
                weight_since=_parse_time(status.weight_since, now) if status.weight_since else None,
                at=timestamp(now),
                period=period_of(analysis),
                plans=plans(spec, status, now),
                step_since=_parse_time(status.step_started_at, now),
                buckets=_buckets(spec, status),
                **_shadow_context(spec, status, now),
            )
            load = partial(self._reference, rollout.owner.namespace)
            evaluation = Evaluation(source, context, load)
            return evaluation.run(analysis), evaluation.served(analysis)
        except Exception as error:  # every signal says what went wrong
            return failed_everywhere(analysis, unexpected(error), timestamp(now)), None

    def _arms(self, rollout: Rollout, spec: ModelRolloutSpec, status: ModelRolloutStatus,
              now: datetime, in_effect: Routes | None,
              ) -> tuple[dict[str, ArmSeen], dict[str, int] | None]:  # fmt: skip
        """An A/B/n phase under way: what is seen of each running candidate (Available, and
        when due, every signal against the champion) and the split in effect by revision."""
        owner, world = rollout.owner, desired_world(spec, status)
        if not experiment.under_way(status) or world is None:
            return {}, None
        running = [a for a in status.arms if a.role == "challenger" and a.state == "Running"]
        available = {a.revision: self.cluster.available(owner, deployment_name(
            owner.name, a.revision)) for a in running}  # fmt: skip
        measured = [a for a in running if available[a.revision]]
        seen = self._evaluate_arms(rollout, spec, status, measured, now) \
            if experiment.due(spec, status, now) else {}  # fmt: skip
        arms = {a.revision: replace(seen.get(a.revision, ArmSeen()),
                                    available=available[a.revision]) for a in running}  # fmt: skip
        return arms, routes.shares(in_effect, owner.name, world)

    def _evaluate_arms(self, rollout: Rollout, spec: ModelRolloutSpec, status: ModelRolloutStatus,
                       arms: list[ArmStatus], now: datetime) -> dict[str, ArmSeen]:  # fmt: skip
        """Each candidate against the champion, like a canary against the stable, with one read
        of the credentials and one metrics source for all; every signal an Error with the
        reason when nothing could be measured."""
        analysis, champion, phase = spec.analysis, status.stable, status.abn
        if analysis is None or champion is None or phase is None or not arms:
            return {}
        at = timestamp(now)
        champion_share = next((a.share for a in status.arms if a.role == "champion"), 0)
        load = partial(self._reference, rollout.owner.namespace)
        try:
            source = self.sources(analysis.prometheus, self._credentials(rollout.owner, spec))
        except Exception as error:
            said = str(error) if isinstance(error, MeasurementError) else unexpected(error)
            return {a.revision: ArmSeen(True, failed_everywhere(analysis, said, at)) for a in arms}
        seen = {}
        for arm in arms:
            # the sample-ratio check sees the pair: the candidate's share of what it and the
            # champion served is its share over both shares
            pair = round(100 * arm.share / (arm.share + champion_share)) if arm.share else 0
            as_canary = status.edit(canary=RevisionRef(revision=arm.revision, version=arm.version))
            context = Context(
                values=_template_values(rollout.owner, spec, analysis.interval, as_canary),
                canary_version=arm.version, stable_version=champion.version,
                canary_since=_parse_time(phase.since, now), now=now, weight=pair,
                weight_since=_parse_time(phase.shares_since or phase.since, now), at=at,
                period=period_of(analysis),
            )  # fmt: skip
            try:
                seen[arm.revision] = Evaluation(source, context, load).arm(analysis)
            except Exception as error:  # every signal says what went wrong
                said = str(error) if isinstance(error, MeasurementError) else unexpected(error)
                seen[arm.revision] = ArmSeen(True, failed_everywhere(analysis, said, at))
        return seen

    def _reference(self, namespace: str, ref: ConfigMapKeyRef) -> str:
        try:
            return self.cluster.config_value(namespace, ref.name, ref.key)
        except ClusterError as error:
            raise MeasurementError(str(error)) from error

    def _credentials(self, owner: Owner, spec: ModelRolloutSpec) -> Credentials | None:
        ref = spec.analysis.prometheus.auth_secret_ref if spec.analysis else None
        if ref is None:
            return None
        try:
            return Credentials.from_secret_data(self.cluster.secret_data(owner.namespace, ref.name))
        except (ClusterError, ValueError) as error:
            raise MeasurementError(f"Prometheus credentials: {error}") from error

    # -- converging ----------------------------------------------------------------------------

    def _converge(self, owner: Owner, spec: ModelRolloutSpec, current: str, world: World,
                  router: Router) -> list[str]:  # fmt: skip
        """The world the status asks for; what was put back after another writer, in words."""
        # every revision the spec can build (spec.model's, and in A/B/n each candidate's) is
        # applied whole; the others (a replaced stable kept for scaleDownDelay) only scaled
        specs = {revision_of(s): s for s in candidate_specs(spec)}
        specs[current] = spec
        built = {revision for revision in world.replicas if revision in specs}
        deployments = [build_deployment(owner, specs[revision], revision, world.replicas[revision])
                       for revision in sorted(built)]  # fmt: skip
        built |= {current, FALLBACK_REVISION}
        if spec.fallback is not None:
            deployments.append(build_fallback(owner, spec))
        services = [build_service(owner, spec, "stable", world.stable),
                    build_service(owner, spec, "canary", world.canary or world.stable)]  # fmt: skip
        for revision, _share in world.arms:  # an A/B/n phase: every candidate's Service
            if revision != world.stable:
                name = service_of(owner.name, world, revision)
                services.append(build_service(owner, spec, "arm", revision, name=name))
        keep = set(world.replicas)
        if world.shadow is not None:  # the comparator, the mirror's target, while it runs
            version = world.versions[1] if world.versions else spec.model.version
            services += build_comparator(owner, spec, world.shadow, version,
                                         str(settings.COMPARATOR_IMAGE))  # fmt: skip
            keep.add(COMPARATOR_REVISION)
        desired = Desired(
            apply=[*deployments, *services],
            scale={deployment_name(owner.name, revision): replicas
                   for revision, replicas in world.replicas.items() if revision not in built},
            keep=frozenset(keep),
            # the comparator's Service stays once the step is over: Traefik's TraefikService
            # still names it until the new route is loaded, and a mirror whose Service is gone
            # takes the whole route down for a moment (404s measured in the e2e story)
            retire=_retired_arms(owner.name, world, specs),
        )  # fmt: skip
        said = self.cluster.converge(owner, desired)
        corrected = router.apply(routes_of(owner.name, world))
        return [*said, corrected] if corrected else said

    # -- recording -----------------------------------------------------------------------------

    def _record(self, m: _Memory, rollout: Rollout, status: ModelRolloutStatus) -> str | None:
        """Write the whole status on the version read and remember it as the latest snapshot (a
        read that fails next starts from it); the new resourceVersion, or None on a conflict."""
        dumped = status.model_dump(mode="json", by_alias=True)
        written = self.cluster.write_status(rollout.owner, rollout.resource_version, dumped)
        if written is None:
            m.stale = True
        else:
            m.last = replace(rollout, resource_version=written, raw_status=dumped)
        return written

    def _refuse(self, rollout: Rollout, reason: str, message: str) -> bool:
        """Act on nothing and say why: the message and condition `Refused`, in one status write,
        made once, not on every tick. True when it was written now."""
        if rollout.raw_status.get("message") == message:
            return False
        try:
            status = ModelRolloutStatus.model_validate(rollout.raw_status)
        except ValidationError:
            status = ModelRolloutStatus()
        now = timestamp(datetime.now(UTC))
        refused = with_condition(status.edit(message=message),
                                 REFUSED_CONDITION, "True", reason=reason, message=message,
                                 now=now)  # fmt: skip
        written = self.cluster.write_status(
            rollout.owner, rollout.resource_version, refused.model_dump(mode="json", by_alias=True)
        )
        return written is not None


def _template_values(owner: Owner, spec: ModelRolloutSpec, interval: str,
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


def _readable(error: BaseException) -> str:
    if isinstance(error, ClusterError) and error.status is not None:
        return f"the API server said {error.status}: {error}"
    if isinstance(error, RuntimeError) and str(error):
        return str(error).splitlines()[0][:300]
    return unexpected(error)


def _retry_at(status: ModelRolloutStatus) -> datetime | None:
    r = status.retraining
    c = r.current if r is not None else None
    return datetime.fromisoformat(c.retry_at) if c is not None and c.retry_at else None


def _retired_arms(rollout: str, world: World, specs: dict[str, ModelRolloutSpec],
                 ) -> frozenset[str]:  # fmt: skip
    """The A/B/n phase's NAME-armN Services, once no route can still send to them: the phase is
    over (the route names no arm) and no candidate other than the stable and the canary still
    has a Deployment (they go with scaleDownDelay, long after the route changed)."""
    if world.arms:
        return frozenset()
    lingering = (set(specs) - {world.stable, world.canary}) & set(world.replicas)
    if lingering:
        return frozenset()
    return frozenset(arm_service(rollout, i) for i in range(1, MAX_CHALLENGERS + 2))


def _shadow_context(spec: ModelRolloutSpec, status: ModelRolloutStatus,
                    now: datetime) -> dict[str, Any]:  # fmt: skip
    """The shadow step in effect, for the evaluation: its share, whether it mirrors every
    request, and since when the mirror is on the route."""
    shadow = shadow_in_effect(spec, status)
    if shadow is None:
        return {}
    since = _parse_time(status.mirror_since, now) if status.mirror_since else None
    return {"shadow": shadow.share, "shadow_all": not shadow.match, "mirror_since": since}


def _buckets(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> tuple[int, int] | None:
    """The sticky buckets in effect (treatment, control), for their sample-ratio check."""
    cohort = cohort_in_effect(spec, status)
    return None if cohort is None or cohort.buckets is None else bucket_counts(cohort.buckets)


def _parse_time(text: str | None, default: datetime) -> datetime:
    return datetime.fromisoformat(text) if text else default
