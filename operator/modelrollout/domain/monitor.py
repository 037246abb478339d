"""The watch after promotion, and what its alarms do: pure, like the step machine.

`watch` folds one look of the monitor (docs/lifecycle.md) into `status.monitor`: each signal's
verdict, its hysteresis and quiet time, a kpi's baseline and CUSUM, and the alarms with the
Events they post. `retrain` turns alarms into at most one retraining at a time, at most one per
cooldown, waiting for a human when the spec says so; `decide` applies `approve` and `reject`;
`job_seen` records what became of the retraining's Job. Everything it knows is in status, so an
operator restart resumes where it was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Protocol

from modelrollout.api.v1alpha1 import (
    IN_FLIGHT,
    RETRAINING_OPEN,
    Alarm,
    Detector,
    FallbackState,
    HistoryEntry,
    KpiSignal,
    ModelRolloutSpec,
    ModelRolloutStatus,
    Monitor,
    MonitorSignal,
    MonitorStatus,
    Notifications,
    Retrain,
    Retraining,
    RetrainingState,
    RetrainingStatus,
    RevisionRef,
    ScaleDown,
    SignalResult,
    Trigger,
    Verdict,
    Webhook,
)
from modelrollout.domain import detectors
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.machine import Command, EventType, World, timestamp, with_condition
from modelrollout.domain.revision import FALLBACK_REVISION
from modelrollout.domain.signals import result

ALARMS_KEPT = 10


class Say(Protocol):
    """Post an Event: kind, reason, message, whether the notifications hear it too, and the
    structured details they carry."""

    def __call__(self, kind: EventType, reason: str, message: str, notify: bool,
                 details: tuple[tuple[str, str], ...] = (), /) -> None: ...  # fmt: skip


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _later(now: datetime, duration: str) -> str:
    return timestamp(now + timedelta(seconds=parse_duration(duration)))


# --- when to look ------------------------------------------------------------------------------


def watched(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> bool:
    """The monitor watches the stable revision whenever no canary is in flight and it serves
    (not while the fallback does)."""
    in_flight = status.canary is not None and status.phase in IN_FLIGHT
    serving = status.fallback is None
    return spec.monitor is not None and status.stable is not None and not in_flight and serving


def current(status: ModelRolloutStatus, now: datetime) -> MonitorStatus | None:
    """The watch of the stable revision: the one in status, or a new one when the stable
    revision changed (a new model starts with a new baseline and a new window)."""
    if status.stable is None:
        return None
    m = status.monitor
    if m is not None and m.revision == status.stable.revision:
        return m
    return MonitorStatus(revision=status.stable.revision, since=timestamp(now))


def monitor_due(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> bool:
    if not watched(spec, status) or spec.monitor is None:
        return False
    m = current(status, now)
    last = m.last_evaluated_at if m is not None else None
    if last is None:
        return True
    return (now - _parse(last)).total_seconds() >= parse_duration(spec.monitor.interval)


def next_look(spec: ModelRolloutSpec, status: ModelRolloutStatus,
              now: datetime) -> datetime | None:  # fmt: skip
    """When the monitor next wants a tick, for the ticker's timers."""
    if not watched(spec, status) or spec.monitor is None:
        return None
    m = status.monitor
    if m is None or m.last_evaluated_at is None:
        return now
    interval = timedelta(seconds=parse_duration(spec.monitor.interval))
    return _parse(m.last_evaluated_at) + interval


def judged_from(monitor: Monitor, m: MonitorStatus, signal: MonitorSignal) -> datetime:
    """When a signal is first judged. A window-based signal (drift, outliers) judges only windows
    entirely after the watch began: a rollout's mixed traffic does not count as the new model's
    (suppressed for one window); a drift against the baseline waits for the baseline too. A
    threshold's query has its own range, and a hard failure is not waited for."""
    since = _parse(m.since)
    if signal.threshold is not None:
        return since
    wait = parse_duration(monitor.window)
    if signal.fairness is not None or (signal.drift is not None
                                       and signal.drift.against == "baseline"):  # fmt: skip
        wait += parse_duration(monitor.baseline)
    return since + timedelta(seconds=wait)


def baseline_window(monitor: Monitor, m: MonitorStatus) -> tuple[datetime, datetime]:
    """The watched revision's first `baseline` after the watch began."""
    since = _parse(m.since)
    return since, since + timedelta(seconds=parse_duration(monitor.baseline))


# --- one look ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Counted:
    """A kpi signal's labelled counts since it last counted, up to `until`."""

    successes: float
    total: float
    until: str


@dataclass(frozen=True)
class Look:
    """What the ticker measured for one look: judged results (threshold, drift) and a kpi's
    counts, by signal name; a signal that could not be measured has an Error result."""

    now: datetime
    results: dict[str, SignalResult]
    counts: dict[str, Counted]


def watch(spec: ModelRolloutSpec, status: ModelRolloutStatus, look: Look,
          emit: Say) -> tuple[ModelRolloutStatus, list[Trigger]]:  # fmt: skip
    """Fold one look into status.monitor; the alarms raised, as retraining triggers."""
    monitor = spec.monitor
    m = current(status, look.now)
    if monitor is None or m is None or status.stable is None:
        return status, []
    at = timestamp(look.now)
    known = {d.name: d for d in m.detectors}
    results, kept, triggers = [], [], []
    alarms = list(m.alarms)
    for signal in monitor.signals:
        detector = known.get(signal.name, Detector(name=signal.name))
        verdict, detector = _judge(monitor, m, signal, detector=detector, look=look)
        above, alarm = detectors.confirmed(verdict.verdict == "Fail", detector.above,
                                           monitor.confirm)  # fmt: skip
        detector = detector.model_copy(update={"above": 0 if alarm else above})
        if alarm and detector.statistic is not None:  # a kpi's CUSUM starts again
            detector = detector.model_copy(update={"statistic": 0.0})
        quiet = detector.quiet_until is not None and look.now < _parse(detector.quiet_until)
        if alarm and not quiet:
            message = f"{signal.name}: {verdict.message or verdict.verdict}"
            quiet_until = _later(look.now, monitor.cooldown)
            detector = detector.model_copy(update={"quiet_until": quiet_until})
            alarms = [*alarms, Alarm(signal=signal.name, at=at, message=message)][-ALARMS_KEPT:]
            actions = monitor.actions(signal.name)
            notify = not actions or any(a.notify for a in actions)
            emit("Warning", "MonitorAlarm", f"{status.stable.version} {message}", notify)
            triggers.append(_trigger(spec, status, monitor, signal, verdict))
        results.append(verdict)
        kept.append(detector)
    budget = detectors.per_signal(parse_duration(monitor.false_alarms.mean_time_between),
                                  len(monitor.signals))  # fmt: skip
    m = m.model_copy(update={
        "last_evaluated_at": at, "signals": results, "detectors": kept, "alarms": alarms,
        "budget_per_signal": f"{budget / 3600:g}h",
    })  # fmt: skip
    return status.edit(monitor=m), triggers


def _judge(monitor: Monitor, m: MonitorStatus, signal: MonitorSignal, *, detector: Detector,
           look: Look) -> tuple[SignalResult, Detector]:  # fmt: skip
    at = timestamp(look.now)
    if signal.kpi is not None:
        counted = look.counts.get(signal.name)
        if counted is None:
            given = look.results.get(signal.name)
            return given or result(signal.name, "kpi", "Error", at,
                                   message="not measured"), detector  # fmt: skip
        return _kpi(monitor, m, signal.name, signal.kpi, d=detector, counted=counted, at=at)
    first = judged_from(monitor, m, signal)
    if look.now < first:
        said = f"first window after promotion, until {timestamp(first)}"
        return result(signal.name, signal.kind, "Inconclusive", at, message=said), detector
    given = look.results.get(signal.name)
    return given or result(signal.name, signal.kind, "Error", at, message="not measured"), detector


def _kpi(monitor: Monitor, m: MonitorStatus, name: str, kpi: KpiSignal, *, d: Detector,
         counted: Counted, at: str) -> tuple[SignalResult, Detector]:  # fmt: skip
    """The baseline gathers (at least `baseline` long, and until its floor is close enough to
    its rate); then each look's counts go into the CUSUM."""
    d = d.model_copy(update={"counted_to": counted.until})
    better = kpi.higher_is_better
    base_s, base_n = d.baseline_successes, d.baseline_total
    if d.floor is None:
        base_s, base_n = base_s + counted.successes, base_n + counted.total
        d = d.model_copy(update={"baseline_successes": base_s, "baseline_total": base_n})
        long_enough = (_parse(counted.until) - _parse(m.since)).total_seconds() >= parse_duration(
            monitor.baseline
        )
        rate = base_s / base_n if base_n > 0 else None
        if not long_enough or not detectors.baseline_ready(base_s, base_n, kpi.drop,
                                                           higher_is_better=better):  # fmt: skip
            shown = f"{rate:.4g} of {base_n:g}" if rate is not None else "no labels yet"
            return result(name, "kpi", "Inconclusive", at, stable=rate,
                          message=f"baseline gathering: {shown}"), d  # fmt: skip
        floor = detectors.healthy_floor(base_s, base_n, higher_is_better=better)
        budget = parse_duration(monitor.false_alarms.mean_time_between)
        threshold = detectors.cusum_threshold(budget, parse_duration(monitor.interval),
                                              len(monitor.signals))  # fmt: skip
        d = d.model_copy(update={"floor": floor, "threshold": threshold, "statistic": 0.0})
        return result(name, "kpi", "Pass", at, stable=rate, bound=floor,
                      message=f"baseline {rate:.4g} of {base_n:g}; healthy while "
                              f"{'at least' if better else 'at most'} {floor:.4g}"), d  # fmt: skip
    floor = d.floor
    threshold = d.threshold if d.threshold is not None else 0.0
    degraded = detectors.fallen(floor, kpi.drop, higher_is_better=better)
    statistic = detectors.cusum(d.statistic or 0.0, counted.successes, counted.total, floor,
                                degraded)  # fmt: skip
    d = d.model_copy(update={"statistic": float(statistic)})
    rate = counted.successes / counted.total if counted.total > 0 else None
    baseline = base_s / base_n if base_n > 0 else None
    shown = f"{rate:.4g} of {counted.total:g} labels" if rate is not None else "no new labels"
    fell = statistic >= threshold
    verdict: Verdict = "Fail" if fell else "Pass"
    said = "has fallen" if fell else "holds"
    message = (
        f"{shown}; CUSUM {float(statistic):.3g} of {threshold:.3g}: the KPI {said} "
        f"(baseline {baseline or 0:.4g}, healthy floor {floor:.4g}, drop {kpi.drop:g})"
    )
    return result(name, "kpi", verdict, at, value=rate, stable=baseline, bound=floor,
                  message=message), d  # fmt: skip


def _trigger(spec: ModelRolloutSpec, status: ModelRolloutStatus, monitor: Monitor,
             signal: MonitorSignal, verdict: SignalResult) -> Trigger:  # fmt: skip
    stable = status.stable
    reference = ""
    if signal.drift is not None and signal.drift.reference is not None:
        reference = f"{signal.drift.reference.name}/{signal.drift.reference.key}"
    return Trigger(
        signal=signal.name, value=verdict.value,
        bound=next((b for b in (verdict.bound, verdict.max, verdict.min) if b is not None), None),
        message=verdict.message or "", window=monitor.window, model=spec.model.name,
        version=stable.version if stable else "", reference=reference,
    )  # fmt: skip


# --- what alarms do ----------------------------------------------------------------------------


def retrain(spec: ModelRolloutSpec, status: ModelRolloutStatus, triggers: list[Trigger],
            now: datetime, *, job_name: str, emit: Say) -> ModelRolloutStatus:  # fmt: skip
    """The first trigger whose action retrains asks for a retraining, unless one is open or the
    cooldown runs; what was not started is said in an Event."""
    monitor = spec.monitor
    if monitor is None:
        return status
    for trigger in triggers:
        action = next((a for a in monitor.actions(trigger.signal) if a.retrain), None)
        if action is None or action.retrain is None:
            continue
        r = status.retraining or RetrainingStatus()
        if r.current is not None and r.current.state in RETRAINING_OPEN:
            emit("Normal", "RetrainingSkipped", f"alarm of {trigger.signal}: retraining "
                 f"{r.current.id} is {r.current.state}; one at a time", True)  # fmt: skip
            return status
        if r.next_allowed_at is not None and now < _parse(r.next_allowed_at):
            emit("Normal", "RetrainingSkipped", f"alarm of {trigger.signal}: in the cooldown "
                 f"until {r.next_allowed_at}", True)  # fmt: skip
            return status
        n = r.count + 1
        waits = action.retrain.approval == "required"
        job = retraining_job(job_name, n)
        state: RetrainingState = "WaitingForApproval" if waits else "Pending"
        note = "waiting for `modelrollout approve`" if waits else ""
        opened = Retraining(id=n, job=job, trigger=trigger, state=state,
                            requested_at=timestamp(now), message=note)  # fmt: skip
        cooldown = _later(now, action.retrain.cooldown)
        r = r.model_copy(update={"current": opened, "count": n, "next_allowed_at": cooldown})
        if waits:
            emit("Warning", "ApprovalRequired",
                 f"retraining {n} ({job}) on the alarm of {trigger.signal} waits for "
                 "`modelrollout approve` or `reject`", True)  # fmt: skip
        elif action.retrain.webhook is None:  # a CloudEvent's request is told when it is sent
            emit("Normal", "RetrainingRequested", f"retraining {n} ({job}) on the alarm of "
                 f"{trigger.signal}: {trigger.message}", True)  # fmt: skip
        return status.edit(retraining=r)
    return status


def retraining_job(rollout: str, n: int) -> str:
    """The Job of retraining n: NAME-retrain-N, the name cut to fit 63 characters."""
    suffix = f"-retrain-{n}"
    return rollout[: 63 - len(suffix)] + suffix


def fall_back(spec: ModelRolloutSpec, status: ModelRolloutStatus, triggers: list[Trigger],
              now: datetime, emit: Say) -> ModelRolloutStatus:  # fmt: skip
    """The first trigger whose action falls back sends the traffic away from the stable revision
    in this tick: to the previous revision while it is warm (the failed one is then remembered
    as rejected, like a rollback), else to the fallback revision of `spec.fallback`."""
    monitor, stable = spec.monitor, status.stable
    if monitor is None or stable is None or status.fallback is not None:
        return status
    for trigger in triggers:
        action = next((a for a in monitor.actions(trigger.signal) if a.fallback), None)
        if action is None:
            continue
        why = f"{trigger.signal}: {trigger.message}"
        previous = _warm_previous(status, now) if action.fallback == "previous" else None
        if previous is not None:
            return _back_to(spec, status, previous, now=now, why=why, emit=emit)
        if spec.fallback is None:
            said = (f"{why}; {action.fallback} is not warm and there is no spec.fallback: "
                    "traffic stays on the stable revision")  # fmt: skip
            emit("Warning", "FallbackUnavailable", said, True)
            return status
        emit("Warning", "FellBack", f"traffic to the fallback {spec.fallback.version} instead of "
             f"{stable.version}: {why}", True)  # fmt: skip
        state = FallbackState(since=timestamp(now), reason=why, stable=stable.revision)
        return status.edit(fallback=state, message=f"fallen back to {spec.fallback.version}: "
                           f"{why}")  # fmt: skip
    return status


def with_fallback(spec: ModelRolloutSpec, status: ModelRolloutStatus, world: World) -> World:
    """The fallback revision kept at its size beside the others, and, while fallen back, in the
    stable's place: the stable Service selects its pods (and a new canary is judged against it)."""
    if spec.fallback is None:
        return world
    replicas = {**world.replicas, FALLBACK_REVISION: spec.fallback.replicas}
    stable = FALLBACK_REVISION if status.fallback is not None else world.stable
    return replace(world, replicas=replicas, stable=stable)


def _warm_previous(status: ModelRolloutStatus, now: datetime) -> RevisionRef | None:
    """The revision the stable replaced, while it is still at full size (scaleDownDelay)."""
    for kept in reversed(status.scale_down):
        if kept.replicas is not None or kept.version is None or _parse(kept.after) <= now:
            continue
        return RevisionRef(revision=kept.revision, version=kept.version)
    return None


def _back_to(spec: ModelRolloutSpec, status: ModelRolloutStatus, previous: RevisionRef, *,
             now: datetime, why: str, emit: Say) -> ModelRolloutStatus:  # fmt: skip
    """The previous revision is stable again; the failed one is rejected, as after a rollback."""
    failed = status.stable
    if failed is None:
        return status
    at = timestamp(now)
    emit("Warning", "RolledBack", f"fallback to the previous {previous.version}: {why}", True)
    kept = ScaleDown(revision=failed.revision, after=_later(now, spec.scale_down_delay),
                     replicas=spec.replicas)  # fmt: skip
    entry = HistoryEntry(version=failed.version, revision=failed.revision,
                         outcome="RolledBack", started_at=at, finished_at=at,
                         reason=f"after promotion: {why}")  # fmt: skip
    scale = [d for d in status.scale_down if d.revision not in (previous.revision, failed.revision)]
    message = f"fallback to the previous {previous.version}: {why}"
    status = status.edit(stable=previous, canary=failed, phase="RolledBack", canary_weight=0,
                         message=message, scale_down=[*scale, kept],
                         history=[*status.history, entry][-10:])  # fmt: skip
    return with_condition(status, "Degraded", "True", reason="FellBack", message=message, now=at)


def fallback_ends(status: ModelRolloutStatus, command: Command | None,
                  emit: Say) -> ModelRolloutStatus:  # fmt: skip
    """The fallback ends when a new stable revision is promoted, or when a human says `resume`
    (the stable is sound again)."""
    state = status.fallback
    if state is None:
        return status
    if status.stable is not None and status.stable.revision != state.stable:
        emit("Normal", "FallbackEnded", f"{status.stable.version} is stable: the fallback ends",
             True)  # fmt: skip
        return status.edit(fallback=None, message=None)
    if command is not None and command.kind == "resume" and status.phase != "Paused":
        who = command.user or "a user"
        emit("Normal", "FallbackEnded", f"{who} sent the traffic back to the stable revision",
             True)  # fmt: skip
        return status.edit(fallback=None, message=None)
    return status


def waiting(status: ModelRolloutStatus) -> Retraining | None:
    r = status.retraining
    if r is None or r.current is None or r.current.state != "WaitingForApproval":
        return None
    return r.current


def decide(status: ModelRolloutStatus, command: Command, now: datetime,
           emit: Say) -> ModelRolloutStatus:  # fmt: skip
    """`approve` lets a waiting retraining run; `reject` ends it. Both name the user."""
    open_one = waiting(status)
    if command.kind not in ("approve", "reject"):
        return status
    who = command.user or "a user"
    if open_one is None or status.retraining is None:
        emit("Normal", "NothingToDecide", f"{who} said {command.kind}, but nothing waits", True)
        return status
    if command.kind == "approve":
        emit("Normal", "Approved", f"{who} approved retraining {open_one.id} ({open_one.job})",
             True)  # fmt: skip
        decided = open_one.model_copy(update={"state": "Pending", "decided_by": who,
                                              "message": f"approved by {who}"})  # fmt: skip
        return status.edit(retraining=status.retraining.model_copy(update={"current": decided}))
    emit("Normal", "Rejected", f"{who} rejected retraining {open_one.id} ({open_one.job})", True)
    ended = open_one.model_copy(update={"state": "Rejected", "decided_by": who,
                                        "message": f"rejected by {who}",
                                        "finished_at": timestamp(now)})  # fmt: skip
    return _close(status, ended)


def _close(status: ModelRolloutStatus, ended: Retraining) -> ModelRolloutStatus:
    r = status.retraining or RetrainingStatus()
    history = [*r.history, ended][-ALARMS_KEPT:]
    return status.edit(retraining=r.model_copy(update={"current": None, "history": history}))


@dataclass(frozen=True)
class JobSeen:
    """What the ticker saw of the current retraining's Job: created now, running, done, gone,
    or the API server's words when it could not be created."""

    state: str  # "Created", "Running", "Succeeded", "Failed", "Absent", "Error"
    message: str = ""


def job_seen(spec: ModelRolloutSpec, status: ModelRolloutStatus, seen: JobSeen | None,
             now: datetime, emit: Say) -> ModelRolloutStatus:  # fmt: skip
    """The current retraining after what its Job showed."""
    r = status.retraining
    if seen is None or r is None or r.current is None:
        return status
    c = r.current
    if seen.state == "Sent":
        said = f"sent as a CloudEvent to {seen.message}"
        details = tuple((k, str(v)) for k, v in [("retraining", c.id), *c.trigger.model_dump(
            by_alias=True, exclude_none=True).items()])  # fmt: skip
        # the CloudEvent is this Event's notice: its data carries the trigger
        emit("Normal", "RetrainingRequested", f"retraining {c.id} on the alarm of "
             f"{c.trigger.signal}: {c.trigger.message}", True, details)  # fmt: skip
        sent = c.model_copy(update={"state": "Requested", "message": said,
                                    "finished_at": timestamp(now)})  # fmt: skip
        return _close(status, sent)
    if seen.state == "Error":
        action = retrain_action(spec, c)
        retry = _later(now, action.cooldown if action is not None else "24h")
        emit("Warning", "RetrainingFailed", f"retraining {c.id}: could not create Job {c.job}: "
             f"{seen.message}; trying again at {retry}", True)  # fmt: skip
        errored = c.model_copy(update={"state": "Error", "message": seen.message,
                                       "retry_at": retry})  # fmt: skip
        return status.edit(retraining=r.model_copy(update={"current": errored}))
    if seen.state in ("Created", "Running"):
        if c.state != "Running":
            emit("Normal", "RetrainingStarted", f"retraining {c.id}: Job {c.job} runs", True)
        running = c.model_copy(update={"state": "Running", "message": seen.message,
                                       "retry_at": None})  # fmt: skip
        return status.edit(retraining=r.model_copy(update={"current": running}))
    if seen.state in ("Succeeded", "Failed", "Absent"):
        state: RetrainingState = "Succeeded" if seen.state == "Succeeded" else "Failed"
        message = seen.message or ("the Job was deleted" if seen.state == "Absent" else "")
        kind: EventType = "Normal" if state == "Succeeded" else "Warning"
        emit(kind, f"Retraining{state}", f"retraining {c.id}: Job {c.job} {state.lower()}"
             + (f": {message}" if message else ""), True)  # fmt: skip
        ended = c.model_copy(update={"state": state, "message": message,
                                     "finished_at": timestamp(now)})  # fmt: skip
        return _close(status, ended)
    return status


def retrain_action(spec: ModelRolloutSpec, retraining: Retraining) -> Retrain | None:
    """The retrain action that asked for this retraining (its signal's first)."""
    monitor = spec.monitor
    actions = monitor.actions(retraining.trigger.signal) if monitor is not None else []
    return next((a.retrain for a in actions if a.retrain is not None), None)


def receivers(spec: ModelRolloutSpec) -> Notifications | None:
    """Who hears the rollout: its notifications' webhooks, and each retraining webhook (which
    hears the Retraining events only, as CloudEvents)."""
    hooks = list(spec.notifications.webhooks) if spec.notifications is not None else []
    for i, action in enumerate(spec.monitor.on_alarm if spec.monitor is not None else []):
        target = action.retrain.webhook if action.retrain is not None else None
        if target is not None:
            hooks.append(Webhook(url=target.url, name=f"retrain-{i}", format="cloudEvents",
                                 events=["Retraining"], secret_ref=target.secret_ref))  # fmt: skip
    return Notifications(webhooks=hooks) if hooks else None


def job_due(status: ModelRolloutStatus, now: datetime) -> str | None:
    """What the ticker does about the current retraining's Job this tick: "create" it (asked,
    approved, or an error's retry time has come), "read" it (running), or nothing."""
    r = status.retraining
    c = r.current if r is not None else None
    if c is None:
        return None
    if c.state == "Pending":
        return "create"
    if c.state == "Error" and c.retry_at is not None and now >= _parse(c.retry_at):
        return "create"
    if c.state == "Running":
        return "read"
    return None


__all__ = [
    "Counted",
    "JobSeen",
    "Look",
    "current",
    "decide",
    "fall_back",
    "fallback_ends",
    "job_due",
    "job_seen",
    "monitor_due",
    "next_look",
    "receivers",
    "retrain",
    "retrain_action",
    "retraining_job",
    "waiting",
    "watch",
    "watched",
    "with_fallback",
]
