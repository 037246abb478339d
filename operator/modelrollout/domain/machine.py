"""The step machine: one pure function moves a rollout forward from its status and observations.

Everything the machine knows is in status, so an operator restart resumes exactly where it was.
`advance` returns the next status and the Events to emit; `desired_world` says what the cluster
should look like for a status, and adapters converge the cluster to it idempotently.

Lifecycle (api.md): the first revision becomes stable at once. A new revision starts a canary
(replacing a running one); the canary must become Available within progressDeadline; then the
steps run: setWeight counts once the weight is observed on the route, analyze waits its duration,
pause waits its duration or for a human. Signals are judged whenever the canary has traffic. After
the last step the canary is promoted: it is scaled to full size, takes 100%, becomes stable, and
the old revision is removed after scaleDownDelay. With a `bake`, promotion goes through the
phase Baking first: the canary takes all the traffic but the holdback while the old revision
stays at full size and the signals go on; a failure there is a rollback like any other (reason
BakeFailed), with nothing to scale up first, and only a clean bake makes the canary stable. A
rollback puts the weight to 0 at once and scales the canary to 0; the same revision is not
retried unless a human says `retry` (re-applying its spec, as a GitOps resync does, is not).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from modelrollout.api.v1alpha1 import (
    IN_FLIGHT,
    AnalysisStatus,
    Cohort,
    Counters,
    HistoryEntry,
    ModelRolloutSpec,
    ModelRolloutStatus,
    PauseState,
    PlannedLooks,
    RevisionRef,
    ScaleDown,
    Shadow,
    SignalResult,
)
from modelrollout.domain import experiment
from modelrollout.domain.cohorts import Matches, compile_cohort
from modelrollout.domain.conditions import timestamp, with_condition
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.evidence import said, with_evidence
from modelrollout.domain.judging import Outcome, tally
from modelrollout.domain.kinds import GATED_KINDS
from modelrollout.domain.signals import Plan

HISTORY_LENGTH = 10
EventType = Literal["Normal", "Warning"]
Emit = Callable[[EventType, str, str], None]
CommandKind = Literal[
    "promote", "promote-full", "abort", "pause", "resume", "retry", "approve", "reject"
]


@dataclass(frozen=True)
class Command:
    """A human's request, identified so that it is applied once."""

    id: str
    kind: CommandKind
    user: str = ""


@dataclass(frozen=True)
class Incident:
    """An interruption of one of a revision's pods, seen by the pod watch between ticks: it was
    Ready and stopped being Ready, or its containers restarted while it was (k8s/pods.py)."""

    at: datetime
    pod: str
    what: str  # what its containers said: exit codes, reasons, messages, restarts


@dataclass(frozen=True)
class Observations:
    now: datetime
    desired: RevisionRef
    canary_available: bool = False
    weight: int | None = None
    results: list[SignalResult] | None = None
    command: Command | None = None
    # Set by the ticker when it could not complete its ticks past its limit: a canary it cannot
    # watch is rolled back (after a human's command, which is applied first) rather than left.
    fault: str | None = None
    # Why the canary's pods are not ready, in the cluster's words; looked up only once the
    # canary is past its progressDeadline (past_progress_deadline), for the rollback's reason.
    canary_trouble: str | None = None
    # Why the route is not in effect while a canary is in flight, in the controller's words or
    # their absence (no controller accepted it within the router's deadline); None: in effect.
    route_refused: str | None = None
    # A controller accepted the route at its current generation: the weight it carries is in
    # effect (a step's weight counts, and promotion completes, only then).
    route_accepted: bool = True
    # Interruptions of the canary's pods (all that the watch kept; _interrupted counts those
    # since the canary started).
    canary_incidents: tuple[Incident, ...] = ()
    # Requests the canary served in the current step (analysis.sampleRatio.requests), measured
    # with `results`; None: not counted.
    canary_requests: float | None = None
    # A/B/n (domain/experiment.py): spec.model's revision and every challenger's, in the spec's
    # order (empty: one candidate, today's canary); what was seen of each by revision; and the
    # split the route has in effect by revision (None: as asked).
    candidates: tuple[RevisionRef, ...] = ()
    arms: dict[str, experiment.ArmSeen] = field(default_factory=dict)
    shares: dict[str, int] | None = None
    # The cohorts the route in effect sends somewhere (routes.cohorts); a cohort step counts once
    # its own is among them. None: the router does what it is told.
    cohorts_routed: frozenset[Matches] | None = None
    # The shadow step's mirror is on the route in effect, accepted by its controller (None: the
    # router does what it is told); a shadow step's time counts from then.
    mirrored: bool | None = None
    # Why the router's data plane cannot mirror (its words, naming the Gateway and the feature)
    mirror_refused: str | None = None


@dataclass(frozen=True)
class Event:
    type: EventType
    reason: str
    message: str
    notify: bool = True  # the notifications hear it too (an alarm's action may say not)
    details: tuple[tuple[str, str], ...] = ()  # structured data for the notifications


@dataclass(frozen=True)
class Step:
    status: ModelRolloutStatus
    events: list[Event] = field(default_factory=list)


def _parse(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _in_step(t: _Tick, s: ModelRolloutStatus) -> float:
    """Seconds since the current step began."""
    return (t.seen.now - _parse(s.step_started_at or t.now)).total_seconds()


def past_progress_deadline(spec: ModelRolloutSpec, status: ModelRolloutStatus,
                           now: datetime) -> bool:  # fmt: skip
    """Whether a canary that is not Available now is rolled back for it (see _stalled)."""
    if status.canary is None or status.step_started_at is None:
        return False
    in_step = (now - _parse(status.step_started_at)).total_seconds()
    return in_step > parse_duration(spec.progress_deadline)


# --- the machine ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Tick:
    """What every transition of one tick needs besides the status."""

    spec: ModelRolloutSpec
    seen: Observations
    now: str
    emit: Emit


def advance(spec: ModelRolloutSpec, status: ModelRolloutStatus, seen: Observations) -> Step:
    events: list[Event] = []

    def emit(kind: EventType, reason: str, message: str) -> None:
        events.append(Event(kind, reason, message))

    t = _Tick(spec, seen, timestamp(seen.now), emit)
    s = _expire_scale_downs(status, seen.now)
    command = seen.command if seen.command and seen.command.id != s.last_command else None
    if command is not None:
        s = s.edit(last_command=command.id)
    if seen.candidates and s.stable is not None:
        phase = _abn(t, s, command)
        if isinstance(phase, ModelRolloutStatus):
            return Step(phase, events)
        t = replace(t, seen=replace(seen, desired=phase))  # the winner goes on as the canary
    changed = _on_new_revision(t, s)
    if changed is not None:
        return Step(changed, events)
    if s.canary is None or s.phase == "Promoted":
        return Step(s, events)
    return Step(_progress(t, s, s.canary, command), events)


def _abn(t: _Tick, s: ModelRolloutStatus,
         command: Command | None) -> ModelRolloutStatus | RevisionRef:  # fmt: skip
    """A/B/n: the status after this tick of the phase, or the revision the steps go on with
    (the winner; spec.model when the set holds nothing but the champion)."""
    candidates, champion = t.seen.candidates, s.stable
    if champion is None or all(c.revision == champion.revision for c in candidates):
        return candidates[0]
    if experiment.running(s, candidates):
        kind = command.kind if command is not None else None
        seen = experiment.Seen(t.seen.now, t.now, candidates, t.seen.arms, t.seen.shares,
                               command=kind if kind in ("promote", "abort") else None,
                               by=_by(command) if command is not None else "",
                               accepted=t.seen.route_accepted, fault=t.seen.fault)  # fmt: skip
        return experiment.step(t.spec, s, seen, t.emit)
    if experiment.concluded(s, candidates):
        won = experiment.winner(s)
        return won if won is not None else s  # the champion stays until the set changes
    if s.canary is not None and s.phase in IN_FLIGHT:
        t.emit("Normal", "Superseded", f"canary {s.canary.revision} replaced by an A/B/n phase")
        s = _end_canary(s, t.now, "Superseded", "replaced by an A/B/n phase")
    start_share = t.spec.strategy.abn.start_share if t.spec.strategy.abn is not None else 100
    return experiment.start(
        s, champion, candidates, start_share=start_share, now=t.now, emit=t.emit
    )


def _on_new_revision(t: _Tick, s: ModelRolloutStatus) -> ModelRolloutStatus | None:
    """The status after a change of the desired revision, or None when it has not changed."""
    desired, now = t.seen.desired, t.now
    if s.stable is None:
        t.emit(
            "Normal", "Initialized", f"revision {desired.revision} ({desired.version}) is stable"
        )
        s = s.edit(stable=desired, phase="Promoted", canary_weight=0)
        return with_condition(s, "Ready", "True", reason="Initialized", now=now)
    in_flight = s.canary is not None and s.phase in IN_FLIGHT
    if desired.revision == s.stable.revision:
        if in_flight:
            t.emit("Normal", "Superseded", "the spec returned to the stable revision")
            return _end_canary(s, now, "Superseded", "the spec returned to the stable revision")
        if s.canary is not None:  # a rolled-back canary is forgotten once the spec reverts
            return s.edit(canary=None, phase="Promoted")
        return None
    if s.canary is not None and desired.revision == s.canary.revision:
        return None
    if in_flight and s.canary is not None:
        t.emit("Normal", "Superseded", f"canary {s.canary.revision} replaced by {desired.revision}")
        s = _end_canary(s, now, "Superseded", f"replaced by revision {desired.revision}")
    t.emit(
        "Normal", "CanaryStarted", f"revision {desired.revision} ({desired.version}) is the canary"
    )
    return _start_canary(s, desired, now)


def _progress(t: _Tick, s: ModelRolloutStatus, canary: RevisionRef,
              command: Command | None) -> ModelRolloutStatus:  # fmt: skip
    """One tick of a canary in flight, or rolled back and waiting for a retry."""
    if s.phase == "RolledBack":
        if command is not None and command.kind == "retry":
            t.emit("Normal", "Retry", f"{_by(command)} retries revision {canary.revision}")
            return _start_canary(s, canary, t.now)
        return s
    if command is not None:
        s, done = _apply_command(t, s, command)
        if done:
            return s
    for check in (_faulted, _interrupted, _stalled, _unrouted, _judged):
        ended = check(t, s)
        if ended[1]:
            return ended[0]
        s = ended[0]
    if s.phase == "Paused":
        return s
    return _bake(t, s) if s.phase == "Baking" else _run_steps(t, s)


def _faulted(t: _Tick, s: ModelRolloutStatus) -> tuple[ModelRolloutStatus, bool]:
    """The operator cannot watch this canary (its ticks keep failing): roll it back."""
    if t.seen.fault is None:
        return s, False
    return _rollback(t, s, t.seen.fault), True


def _interrupted(t: _Tick, s: ModelRolloutStatus) -> tuple[ModelRolloutStatus, bool]:
    """The canary's pods crashed, restarted or stopped being ready more often since it started
    than spec.restartLimit allows: roll it back, naming the last one. A tick samples only the
    Deployment, which a container back within a second never shows (issue 20: a canary that
    served 30 s, exited 1 and restarted was promoted and went on restarting)."""
    if s.canary_since is None or not t.seen.canary_incidents:
        return s, False
    since = _parse(s.canary_since)
    seen = [i for i in t.seen.canary_incidents if i.at >= since]
    if len(seen) <= t.spec.restart_limit:
        return s, False
    times = f"{len(seen)} time{'s' if len(seen) != 1 else ''}"
    reason = (f"the canary's pods restarted or stopped being ready {times} (restartLimit "
              f"{t.spec.restart_limit}): {seen[-1].what}")  # fmt: skip
    return _rollback(t, s, reason), True


def _stalled(t: _Tick, s: ModelRolloutStatus) -> tuple[ModelRolloutStatus, bool]:
    """A canary that is not Available holds the steps; past progressDeadline it is rolled back.

    The deadline runs from the start of the current step, so a canary that cannot make progress
    for that long is rolled back, and a momentary blip late in a long rollout is not."""
    if t.seen.canary_available:
        return s, False
    if past_progress_deadline(t.spec, s, t.seen.now):
        reason = f"canary not Available within progressDeadline {t.spec.progress_deadline}"
        if t.seen.canary_trouble:
            reason += f": {t.seen.canary_trouble}"
        return _rollback(t, s, reason), True
    if _promoting(t.spec, s):
        return s, False  # promotion waits for the full-size canary itself
    return with_condition(s, "Progressing", "True", reason="WaitingForCanary", now=t.now), True


def _unrouted(t: _Tick, s: ModelRolloutStatus) -> tuple[ModelRolloutStatus, bool]:
    """A route no controller has put in effect (refused, or never accepted: its Gateway does
    not exist or nothing serves it) sends the canary none of its share: no step counts and
    nothing is promoted; past progressDeadline the canary is rolled back with the reason. Issue
    20: a route whose Gateway did not exist was promoted, "all 4 steps passed", on 0 requests."""
    refused = t.seen.route_refused
    if refused is None:
        return s, False
    if past_progress_deadline(t.spec, s, t.seen.now):
        reason = f"the route was not in effect within progressDeadline {t.spec.progress_deadline}"
        return _rollback(t, s, f"{reason}: {refused}"), True
    return _held(t, s, "RouteNotAccepted", refused), True


def _judged(t: _Tick, s: ModelRolloutStatus) -> tuple[ModelRolloutStatus, bool]:
    """Fold this tick's signal results, if any, into the counters; roll back or pause on them."""
    if t.seen.results is None or t.spec.analysis is None:
        return s, False
    judgement = tally(_counters(s), t.seen.results, t.spec.analysis)
    since = _parse(s.canary_since or t.now)
    results = [with_evidence(r, since, t.seen.now) for r in t.seen.results]
    s = _with_results(s, judgement.counters, results, t.now, t.seen.canary_requests)
    if judgement.outcome is Outcome.ROLLBACK:
        return _rollback(t, s, judgement.reason), True
    # A bake does not ask a human about thin evidence: the canary passed its gate, and the bake
    # only looks for a failure; it ends on its duration with a clean measurement.
    if judgement.outcome is Outcome.PAUSE and s.phase == "Progressing":
        t.emit("Warning", "Paused", judgement.reason)
        return _pause(s, "Inconclusive", judgement.reason, t.now), True
    return s, False


def _run_steps(t: _Tick, s: ModelRolloutStatus) -> ModelRolloutStatus:
    steps = t.spec.strategy.steps
    index = s.current_step or 0
    while index < len(steps):
        s, done = _step(t, s, index)
        if not done:
            return s
        index += 1
        s = s.edit(current_step=index, step_started_at=t.now, mirror_since=None)
        t.emit("Normal", "StepAdvanced", f"step {index} of {len(steps)} done")
    return _promote(t, s)


def _step(t: _Tick, s: ModelRolloutStatus, index: int) -> tuple[ModelRolloutStatus, bool]:
    """Step `index` at this tick: the status, and whether the step is done."""
    step = t.spec.strategy.steps[index]
    if step.set_weight is not None:
        s = _ask_weight(s, step.set_weight)
        if t.seen.weight != step.set_weight or not t.seen.route_accepted:
            return s, False  # counts once the router shows it, accepted by its controller
        return _weight_seen(s, t.now), True
    if step.analyze is not None:
        return _analyze_step(t, s, parse_duration(step.analyze.duration))
    if step.cohort is not None:
        # counts once the route carries this step's rule, accepted by its controller
        routed = t.seen.cohorts_routed
        here = routed is None or compile_cohort(step.cohort) in routed
        return s, here and t.seen.route_accepted
    if step.shadow is not None:
        return _shadow_step(t, s, step.shadow)
    return _pause_step(t, s, index, step.pause.duration if step.pause else None)


# The checks a shadow step makes beside its paired signals (analysis/evaluate.py): the mirror's
# share, and the users' error rate since the mirror was installed.
MIRROR_RATIO, USER_ERRORS = "mirror-ratio", "user-errors"


def _unmirrored(t: _Tick, s: ModelRolloutStatus) -> ModelRolloutStatus | None:
    """While the mirror is not in effect: a rollback when it cannot be (the data plane does not
    implement it) or was not past progressDeadline, else a hold; None once it is."""
    if t.seen.mirror_refused is not None:
        return _rollback(t, s, f"the shadow step cannot run: {t.seen.mirror_refused}")
    if t.seen.mirrored is not False and t.seen.route_accepted:
        return None
    if past_progress_deadline(t.spec, s, t.seen.now):
        return _rollback(t, s, "the shadow step's mirror was not in effect within "
                               f"progressDeadline {t.spec.progress_deadline}")  # fmt: skip
    return _held(t, s, "WaitingForMirror", "waiting for the route to carry the mirror")


def _shadow_step(t: _Tick, s: ModelRolloutStatus,
                 shadow: Shadow) -> tuple[ModelRolloutStatus, bool]:  # fmt: skip
    """The candidate answers no user: the weight stays 0 while the route mirrors `share`% to the
    comparator. Done once every paired signal passed; a Fail rolls back (tally, in _judged), and
    so does at once a rise of the users' errors since the mirror went on; past the step's
    duration without every Pass, a human is asked."""
    s = _ask_weight(s, 0)
    unmirrored = _unmirrored(t, s)
    if unmirrored is not None:
        return unmirrored, False
    if s.mirror_since is None:
        s = s.edit(mirror_since=t.now)
    latest = s.analysis.signals if s.analysis is not None else []
    harm = next((r for r in latest if r.name == USER_ERRORS and r.verdict == "Fail"), None)
    if harm is not None:
        return _rollback(t, s, f"the mirror was removed: {harm.message}"), False
    paired = [r for r in latest if r.kind == "paired"]
    if paired and all(r.verdict == "Pass" for r in paired):
        said = "; ".join(f"{r.name}: {r.message}" for r in paired)
        t.emit("Normal", "ShadowPassed", f"the shadow step passed, no user reached the "
                                         f"candidate: {said}")  # fmt: skip
        return s, True
    if _in_step(t, s) >= parse_duration(shadow.duration):
        undecided = "; ".join(f"{r.name} ({r.verdict}: {r.message})" for r in paired
                              if r.verdict != "Pass") or "no paired signal was judged"  # fmt: skip
        message = (f"the shadow step ran its duration of {shadow.duration} without every paired "
                   f"signal passing: {undecided}; `promote` goes on to the next step")  # fmt: skip
        t.emit("Warning", "Paused", message)
        return _pause(s, "Inconclusive", message, t.now), False
    return s, False


def _analyze_step(t: _Tick, s: ModelRolloutStatus,
                  seconds: float) -> tuple[ModelRolloutStatus, bool]:  # fmt: skip
    if _in_step(t, s) < seconds or not _measured(t.spec, s):
        return s, False
    starved = _starved(t.spec, s)
    return (_wait_for_traffic(t, s, starved), False) if starved is not None else (s, True)


def _pause_step(t: _Tick, s: ModelRolloutStatus, index: int,
                duration: str | None) -> tuple[ModelRolloutStatus, bool]:  # fmt: skip
    """A pause step (the step's one-of rule leaves no other kind): its duration, or a human."""
    if duration is None:
        t.emit("Normal", "Paused", f"step {index} waits for `promote`")
        return _pause(s, "Step", f"step {index} waits for a human", t.now), False
    return s, _in_step(t, s) >= parse_duration(duration)


def _starved(spec: ModelRolloutSpec, s: ModelRolloutStatus) -> str | None:
    """Why the canary has not served enough in this step to pass it (issue 20: a canary that
    served nobody was promoted, "all 4 steps passed"), or None: enough, not counted, or a weight
    of 0 (a canary that only a header rule reaches, say)."""
    counted = s.analysis.canary_requests if s.analysis is not None else None
    if spec.analysis is None or counted is None or s.canary_weight <= 0:
        return None
    need = spec.analysis.sample_ratio.min_canary_requests
    if counted >= need:
        return None
    return (f"the canary served {int(counted)} requests in this step, fewer than the {need} "
            "it needs to pass it (analysis.sampleRatio.minCanaryRequests)")  # fmt: skip


def _wait_for_traffic(t: _Tick, s: ModelRolloutStatus, why: str) -> ModelRolloutStatus:
    """Hold the step, saying why; past progressDeadline (from the step's start), roll back."""
    if past_progress_deadline(t.spec, s, t.seen.now):
        return _rollback(t, s, f"{why}, and progressDeadline {t.spec.progress_deadline} passed")
    return _held(t, s, "WaitingForTraffic", why)


def _held(t: _Tick, s: ModelRolloutStatus, reason: str, why: str) -> ModelRolloutStatus:
    """Hold the canary where it is with condition Progressing `reason`; a Warning says why once,
    when the hold begins, not at every tick of it."""
    progressing = next((c for c in s.conditions if c.type == "Progressing"), None)
    if progressing is None or progressing.reason != reason:
        t.emit("Warning", reason, why)
    return with_condition(s, "Progressing", "True", reason=reason, message=why, now=t.now)


def _gate(t: _Tick, s: ModelRolloutStatus, unproven: str, budget: str) -> ModelRolloutStatus:
    """The gate: hold the canary at its weight while its compare signals gather evidence, saying
    how much each still needs and when it is expected; once analysis.gateBudget is spent, ask a
    human, with that estimate. (It used to ask after inconclusiveLimit + 1 looks, whatever the
    evidence needed: 29% of identical canaries at 1,200 labelled requests a minute, issue 20.)"""
    waited, allowed = _in_step(t, s), parse_duration(budget)
    latest = s.analysis.signals if s.analysis else []
    estimates = "; ".join(filter(None, (said(r, t.seen.now) for r in latest)))
    told = f"{unproven}" + (f"; {estimates}" if estimates else "")
    if waited >= allowed:
        message = f"the evidence gate waited its budget of {budget} (analysis.gateBudget): {told}"
        t.emit("Warning", "Paused", message)
        return _pause(s, "Inconclusive", message, t.now)
    left = math.ceil((allowed - waited) / 60)
    message = (f"waiting for evidence before promoting ({left} min of gateBudget {budget} "
               f"left): {told}")  # fmt: skip
    return with_condition(s, "Progressing", "True", reason="WaitingForEvidence", message=message,
                          now=t.now)  # fmt: skip


def _ask_weight(s: ModelRolloutStatus, weight: int) -> ModelRolloutStatus:
    """Ask the router for a new weight. Until the route shows it, no weight is known to be in
    effect (weightSince is cleared), so the sample-ratio check never judges the requests of that
    moment against either weight: it used to compare the new weight with the old weight's window
    on the tick the new one first showed (issue 20)."""
    return s if s.canary_weight == weight else s.edit(canary_weight=weight, weight_since=None)


def _weight_seen(s: ModelRolloutStatus, now: str) -> ModelRolloutStatus:
    """The route shows the weight asked for: it is in effect from now."""
    return s if s.weight_since is not None else s.edit(weight_since=now)


def promoted_weight(spec: ModelRolloutSpec) -> int:
    """The canary's share once promoted: 100, or 100 minus the bake's holdback while baking."""
    holdback = spec.bake.holdback if spec.bake is not None else None
    return 100 - (holdback.percent if holdback is not None else 0)


def _promote(t: _Tick, s: ModelRolloutStatus) -> ModelRolloutStatus:
    """Past the last step: full-size canary, then 100% to it (or all but the bake's holdback),
    then the bake when there is one; then it becomes stable."""
    canary, old = s.canary, s.stable
    if canary is None or old is None or not _measured(t.spec, s):
        return s  # never promote on a failed or missing measurement
    starved = _starved(t.spec, s)
    if starved is not None and s.canary_weight < 100:
        return _wait_for_traffic(t, s, starved)
    unproven = _unproven(t.spec, s)
    if unproven and s.canary_weight < 100 and not _approved(t.spec, s) and t.spec.analysis:
        return _gate(t, s, unproven, t.spec.analysis.gate_budget)
    weight = promoted_weight(t.spec)
    s = _ask_weight(s, weight)
    if not t.seen.canary_available or t.seen.weight != weight or not t.seen.route_accepted:
        return with_condition(s, "Progressing", "True", reason="Promoting", now=t.now)
    s = _weight_seen(s, t.now)
    steps = len(t.spec.strategy.steps)
    if t.spec.bake is None:
        return _stable_now(t, s, f"all {steps} steps passed")
    held = f"with {100 - weight}% " if weight < 100 else ""
    t.emit("Normal", "Baking", f"revision {canary.revision} ({canary.version}) takes {weight}% "
           f"for its bake of {t.spec.bake.duration}; {old.version} stays warm {held}to take "
           "the traffic back at once")  # fmt: skip
    s = s.edit(phase="Baking", step_started_at=t.now)
    return with_condition(s, "Progressing", "True", reason="Baking",
                          message=f"bake of {t.spec.bake.duration}", now=t.now)  # fmt: skip


def _bake(t: _Tick, s: ModelRolloutStatus) -> ModelRolloutStatus:
    """The bake ends after its duration, on a clean measurement of a canary still Available."""
    bake = t.spec.bake
    if bake is not None:
        if _in_step(t, s) < parse_duration(bake.duration) or not _measured(t.spec, s):
            return s
        starved = _starved(t.spec, s)
        if starved is not None:
            return _wait_for_traffic(t, s, starved)
        if not t.seen.canary_available:
            return s  # past progressDeadline, _stalled rolls it back
    steps = len(t.spec.strategy.steps)
    baked = f" and a bake of {bake.duration}" if bake is not None else ""
    return _stable_now(t, s, f"all {steps} steps passed{baked}")


def _stable_now(t: _Tick, s: ModelRolloutStatus, why: str) -> ModelRolloutStatus:
    """The canary becomes stable; the old revision is scaled down after scaleDownDelay."""
    canary, old = s.canary, s.stable
    if canary is None or old is None:
        return s
    delay = timedelta(seconds=parse_duration(t.spec.scale_down_delay))
    old_goes = ScaleDown(revision=old.revision, after=timestamp(t.seen.now + delay),
                         version=old.version)  # fmt: skip
    s = _end_canary(s, t.now, "Promoted", why)
    s = s.edit(stable=canary, scale_down=[*s.scale_down, old_goes])
    t.emit("Normal", "Promoted", f"revision {canary.revision} ({canary.version}) is stable")
    s = with_condition(s, "Progressing", "False", reason="Promoted", now=t.now)
    return with_condition(s, "Degraded", "False", reason="Promoted", now=t.now)


# --- transitions ------------------------------------------------------------------------------


def _by(command: Command) -> str:
    return command.user or "a user"


def _apply_command(t: _Tick, s: ModelRolloutStatus,
                   command: Command) -> tuple[ModelRolloutStatus, bool]:  # fmt: skip
    """Apply a human's command; the bool says whether this tick ends with it."""
    who, now = _by(command), t.now
    if command.kind == "abort":
        return _rollback(t, s, f"aborted by {who}"), True
    if command.kind == "pause":
        t.emit("Normal", "Paused", f"paused by {who}")
        return _pause(s, "Manual", f"paused by {who}", now), True
    if command.kind == "resume" and s.phase == "Paused":
        t.emit("Normal", "Resumed", f"resumed by {who}")
        return _resume(s, now), False
    if command.kind in ("promote", "promote-full"):
        return _promoted_by(t, s, command)
    return s, False


def _promoted_by(t: _Tick, s: ModelRolloutStatus,
                 command: Command) -> tuple[ModelRolloutStatus, bool]:  # fmt: skip
    """`promote` ends the current step, or the bake; `promote --full` skips the remaining steps
    and the evidence gate, not the bake."""
    who, now = _by(command), t.now
    if s.phase == "Baking":
        t.emit("Normal", "BakeEnded", f"{who} ended the bake")
        return _stable_now(t, s, f"the bake ended by {who}"), True
    if command.kind == "promote":
        step = s.current_step or 0
        t.emit("Normal", "PromotedStep", f"{who} ended step {step}")
        return _resume(s).edit(current_step=step + 1, step_started_at=now,
                               mirror_since=None), False  # fmt: skip
    t.emit("Normal", "PromotedFull", f"{who} skipped the remaining steps and the evidence gate")
    past = len(t.spec.strategy.steps) + 1  # past the last step: approved by a human
    return _resume(s).edit(current_step=past, step_started_at=now, mirror_since=None), False


def _start_canary(s: ModelRolloutStatus, desired: RevisionRef, now: str) -> ModelRolloutStatus:
    s = s.edit(
        canary=desired,
        canary_since=now,
        canary_weight=0,
        weight_since=None,
        mirror_since=None,
        current_step=0,
        step_started_at=now,
        phase="Progressing",
        pause=None,
        message=None,  # the previous canary's rollback reason is history now
        analysis=AnalysisStatus(),
    )
    s = with_condition(
        s,
        "Progressing",
        "True",
        reason="CanaryStarted",
        message=f"revision {desired.revision}",
        now=now,
    )
    return with_condition(s, "Degraded", "False", reason="CanaryStarted", now=now)


def _rollback(t: _Tick, s: ModelRolloutStatus, reason: str) -> ModelRolloutStatus:
    """Traffic back to stable at once; the canary is remembered as rejected (status.canary in
    phase RolledBack) until the spec changes or a human says `retry`. Its pods stay at their size
    for scaleDownDelay: a gateway applies the route a moment after it is written, and requests
    still sent to the canary then would find no pod (Argo Rollouts' abortScaleDownDelaySeconds).
    In a bake the conditions say BakeFailed: the revision had passed its steps and failed after."""
    now, why = t.now, "RolledBack"
    if s.phase == "Baking":
        why, reason = "BakeFailed", f"bake failed: {reason}"
    t.emit("Warning", "RolledBack", reason)
    canary = s.canary
    if canary is not None:
        s = _record(s, canary, "RolledBack", now, reason)
        world = desired_world(t.spec, s)
        size = world.replicas.get(canary.revision, 0) if world is not None else 0
        delay = timedelta(seconds=parse_duration(t.spec.scale_down_delay))
        kept = ScaleDown(revision=canary.revision, after=timestamp(t.seen.now + delay),
                         replicas=size)  # fmt: skip
        others = [d for d in s.scale_down if d.revision != canary.revision]
        s = s.edit(scale_down=[*others, kept] if size else others)
    s = s.edit(phase="RolledBack", canary_weight=0, pause=None, message=reason)
    s = with_condition(s, "Progressing", "False", reason=why, message=reason, now=now)
    return with_condition(s, "Degraded", "True", reason=why, message=reason, now=now)


def machine_message(s: ModelRolloutStatus) -> str | None:
    """The message the machine itself shows: while rolled back, the reason; otherwise none."""
    if s.phase != "RolledBack":
        return None
    degraded = next((c for c in s.conditions if c.type == "Degraded"), None)
    return degraded.message if degraded is not None and degraded.status == "True" else None


def _end_canary(s: ModelRolloutStatus, now: str, outcome: str, reason: str) -> ModelRolloutStatus:
    """The canary leaves (promoted or superseded), recorded in history; the rollout is at rest."""
    if s.canary is not None:
        s = _record(s, s.canary, outcome, now, reason)
    return s.edit(
        canary=None,
        canary_since=None,
        canary_weight=0,
        current_step=None,
        step_started_at=None,
        phase="Promoted",
        pause=None,
        weight_since=None,
    )


def _pause(s: ModelRolloutStatus, reason: str, message: str, now: str) -> ModelRolloutStatus:
    pause = PauseState(reason=reason, since=now, message=message)
    return s.edit(phase="Paused", pause=pause)


def _resume(s: ModelRolloutStatus, now: str | None = None) -> ModelRolloutStatus:
    """A human moves the rollout on: the inconclusive count starts again, and so does the
    gate's budget when the gate had spent it."""
    at_gate = s.pause is not None and s.pause.reason == "Inconclusive" and now is not None
    s = _with_counters(s, _counters(s).model_copy(update={"inconclusive": 0}))
    s = s.edit(phase="Progressing", pause=None)
    return s.edit(step_started_at=now) if at_gate else s


def _record(s: ModelRolloutStatus, canary: RevisionRef, outcome: str, now: str,
            reason: str) -> ModelRolloutStatus:  # fmt: skip
    entry = HistoryEntry(
        version=canary.version,
        revision=canary.revision,
        outcome=outcome,
        started_at=s.canary_since or now,
        finished_at=now,
        reason=reason,
    )
    return s.edit(history=[*s.history, entry][-HISTORY_LENGTH:])


def _counters(s: ModelRolloutStatus) -> Counters:
    return s.analysis.counters if s.analysis else Counters()


def _with_counters(s: ModelRolloutStatus, counters: Counters) -> ModelRolloutStatus:
    analysis = (s.analysis or AnalysisStatus()).model_copy(update={"counters": counters})
    return s.edit(analysis=analysis)


def _with_results(s: ModelRolloutStatus, counters: Counters, results: list[SignalResult],
                  now: str, served: float | None = None) -> ModelRolloutStatus:  # fmt: skip
    """The latest results, and each compare signal's planned looks with this one's appended."""
    looks = {p.name: list(p.looks) for p in (s.analysis.looks if s.analysis else [])}
    for result in results:
        if result.look is not None:
            looks.setdefault(result.name, []).append(result.look)
    analysis = AnalysisStatus(
        counters=counters, signals=list(results), last_evaluated_at=now,
        looks=[PlannedLooks(name=n, looks=seen) for n, seen in sorted(looks.items())],
        canary_requests=served,
    )  # fmt: skip
    return s.edit(analysis=analysis)


def planned_seconds(spec: ModelRolloutSpec) -> float:
    """The horizon a compare signal spends its planned alpha over: how long the steps plan the
    canary to run, the machine's own delays, and the promotion gate's budget. Steps that wait
    for a human have no planned length.

    The delays (issue 20: with 60-s ticks all four gate looks fell outside a plan that had none):
    each setWeight waits for the route to show the weight, and each analyze step and the gate for
    an evaluation after it; an interval each."""
    timed, waits = 0.0, 0
    for step in spec.strategy.steps:
        if step.analyze is not None:
            timed += parse_duration(step.analyze.duration)
            waits += 1
        elif step.pause is not None and step.pause.duration is not None:
            timed += parse_duration(step.pause.duration)
        elif step.set_weight is not None:
            waits += 1
    if spec.analysis is None:
        return timed
    interval = parse_duration(spec.analysis.interval)
    return timed + (waits + 1) * interval + parse_duration(spec.analysis.gate_budget)


def plans(spec: ModelRolloutSpec, s: ModelRolloutStatus, now: datetime) -> dict[str, Plan]:
    """Each compare signal's place in the plan at `now` (docs/analysis.md, planned looks)."""
    if spec.analysis is None or s.canary_since is None:
        return {}
    horizon = planned_seconds(spec)
    elapsed = (now - _parse(s.canary_since)).total_seconds()
    fraction = min(1.0, elapsed / horizon) if horizon > 0 else 1.0
    seen = {p.name: tuple(p.looks) for p in (s.analysis.looks if s.analysis else [])}
    return {
        signal.name: Plan(fraction, seen.get(signal.name, ()))
        for signal in spec.analysis.signals
        if signal.compare is not None
    }


def _expire_scale_downs(s: ModelRolloutStatus, now: datetime) -> ModelRolloutStatus:
    pending = [d for d in s.scale_down if _parse(d.after) > now]
    return s if len(pending) == len(s.scale_down) else s.edit(scale_down=pending)


def _measured(spec: ModelRolloutSpec, s: ModelRolloutStatus) -> bool:
    """True when signals need no measurement, or the latest one is clean and no older than the
    current step. An unreachable Prometheus thus holds the rollout where it is."""
    if spec.analysis is None or not spec.analysis.signals:
        return True
    analysis = s.analysis
    if analysis is None or analysis.last_evaluated_at is None:
        return False
    fresh = _parse(analysis.last_evaluated_at) >= _parse(
        s.step_started_at or analysis.last_evaluated_at
    )
    return fresh and analysis.counters.consecutive_errors == 0


def _unproven(spec: ModelRolloutSpec, s: ModelRolloutStatus) -> str:
    """The compare signals whose latest verdict is not Pass, with their latest message.

    Promotion needs every compare signal to have reached Pass (non-inferior with confidence):
    the last step must not end in promotion on "nothing bad seen yet". Until they do, the rollout
    holds; each Inconclusive evaluation then counts, and past inconclusiveLimit it pauses with
    reason Inconclusive. A human `promote` there approves it anyway."""
    if spec.analysis is None:
        return ""
    latest = {r.name: r for r in (s.analysis.signals if s.analysis else [])}
    unproven = []
    for signal in spec.analysis.signals:
        if signal.kind not in GATED_KINDS:
            continue
        result = latest.get(signal.name)
        if result is None or result.verdict != "Pass":
            why = f"{result.verdict}: {result.message}" if result else "not measured"
            unproven.append(f"{signal.name} ({why})")
    return "; ".join(unproven)


def _approved(spec: ModelRolloutSpec, s: ModelRolloutStatus) -> bool:
    """A human went past the last step (`promote` at the gate, or `promote --full`)."""
    return (s.current_step or 0) > len(spec.strategy.steps)


def _promoting(spec: ModelRolloutSpec, s: ModelRolloutStatus) -> bool:
    return (s.current_step or 0) >= len(spec.strategy.steps)


# --- when to measure, and what the cluster should look like -----------------------------------


def evaluation_due(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> bool:
    """Signals are judged every interval while the canary has traffic: a weight, or a cohort
    whose requests it serves at weight 0."""
    if spec.analysis is None or not spec.analysis.signals or status.canary is None:
        return False
    if status.phase not in IN_FLIGHT or not _served(spec, status):
        return False
    last = status.analysis.last_evaluated_at if status.analysis else None
    if last is None:
        return True
    return (now - _parse(last)).total_seconds() >= parse_duration(spec.analysis.interval)


def _served(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> bool:
    """The canary has something to be judged on: users' requests, or a shadow's mirror."""
    return (status.canary_weight > 0 or cohort_in_effect(spec, status) is not None
            or shadow_in_effect(spec, status) is not None)  # fmt: skip


def next_due(spec: ModelRolloutSpec, status: ModelRolloutStatus, now: datetime) -> datetime | None:
    """When the rollout's own timers next ask for a tick: a scaled-down revision's expiry, and
    while a canary is in flight the next evaluation, the end of a timed step and the progress
    deadline. None when only the world can move it (a watch event, a command)."""
    times = [_parse(d.after) for d in status.scale_down]
    times += experiment.next_due(spec, status, now)
    if status.canary is not None and status.phase in IN_FLIGHT:
        if spec.analysis is not None and spec.analysis.signals and _served(spec, status):
            last = status.analysis.last_evaluated_at if status.analysis else None
            interval = timedelta(seconds=parse_duration(spec.analysis.interval))
            times.append(_parse(last) + interval if last else now)
        started = _parse(status.step_started_at) if status.step_started_at else now
        times.append(started + timedelta(seconds=parse_duration(spec.progress_deadline)))
        steps, index = spec.strategy.steps, status.current_step or 0
        if status.phase == "Baking" and spec.bake is not None:
            times.append(started + timedelta(seconds=parse_duration(spec.bake.duration)))
        if status.phase == "Progressing" and index < len(steps):
            step = steps[index]
            length = (step.analyze.duration if step.analyze is not None
                      else step.pause.duration if step.pause is not None
                      else step.shadow.duration if step.shadow is not None else None)  # fmt: skip
            if length is not None:
                times.append(started + timedelta(seconds=parse_duration(length)))
    # A time already past was this tick's to act on; it does not ask for another one at once.
    ahead = [t for t in times if t > now]
    return min(ahead) if ahead else None


@dataclass(frozen=True)
class World:
    """What the cluster should look like: Deployments (revision -> replicas), the revisions
    the stable and canary Services select, and the canary's share of traffic; in an A/B/n
    phase, every arm's share instead (revision, percent; the champion first)."""

    replicas: dict[str, int]
    stable: str
    canary: str | None
    weight: int
    arms: tuple[tuple[str, int], ...] = ()
    # requests matching the cohort in effect go to the canary, whatever its weight
    cohort: Cohort | None = None
    # the stable's and the canary's model versions, which bucket rules stamp on requests
    versions: tuple[str, str] | None = None
    # the shadow step in effect: the route mirrors its share to the comparator
    shadow: Shadow | None = None


def canary_replicas(total: int, weight: int) -> int:
    """Canary pods follow the weight, at least one."""
    return max(1, math.ceil(total * weight / 100))


def desired_world(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> World | None:
    if status.stable is None:
        return None
    replicas = {
        d.revision: spec.replicas if d.replicas is None else d.replicas for d in status.scale_down
    }
    replicas[status.stable.revision] = spec.replicas
    canary = status.canary
    if experiment.under_way(status) and canary is None:
        return _abn_world(spec, status, replicas)
    if canary is None or status.phase == "Promoted":
        return World(replicas, status.stable.revision, None, 0)
    if status.phase == "RolledBack":
        replicas.setdefault(canary.revision, 0)  # kept for scaleDownDelay, then 0
        return World(replicas, status.stable.revision, canary.revision, 0)
    full = _promoting(spec, status)
    shadow = shadow_in_effect(spec, status)
    # a shadow is sized for the share mirrored to it, as a canary for its weight, and keeps that
    # size after its step: a pod scaled down under a weight loses the requests in flight to it
    weight = max(status.canary_weight, _shadowed_share(spec, status))
    replicas[canary.revision] = spec.replicas if full else canary_replicas(spec.replicas, weight)
    return World(replicas, status.stable.revision, canary.revision, status.canary_weight,
                 cohort=cohort_in_effect(spec, status),
                 versions=(status.stable.version, canary.version), shadow=shadow)  # fmt: skip


def _shadowed_share(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> int:
    """The largest share a shadow step mirrored to this canary so far (0: none)."""
    reached = spec.strategy.steps[: (status.current_step or 0) + 1]
    return max((step.shadow.share for step in reached if step.shadow is not None), default=0)


def shadow_in_effect(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> Shadow | None:
    """The shadow step the rollout is at (running, or paused for a human on it), while a canary
    is in flight; None otherwise: abort, rollback, deletion and the next step all end it."""
    if status.canary is None or status.phase not in IN_FLIGHT or status.phase == "Baking":
        return None
    steps, index = spec.strategy.steps, status.current_step or 0
    return steps[index].shadow if index < len(steps) else None


def cohort_in_effect(spec: ModelRolloutSpec, status: ModelRolloutStatus) -> Cohort | None:
    """The last cohort step reached, while a canary is in flight and not baking (a bake sends
    the canary everything but the holdback); None otherwise."""
    if status.canary is None or status.phase not in IN_FLIGHT or status.phase == "Baking":
        return None
    steps = spec.strategy.steps[: (status.current_step or 0) + 1]
    return next((step.cohort for step in reversed(steps) if step.cohort is not None), None)


def _abn_world(spec: ModelRolloutSpec, status: ModelRolloutStatus,
               replicas: dict[str, int]) -> World | None:  # fmt: skip
    """An A/B/n phase: every arm by its share; a candidate sized for its share, at least one pod
    while the phase runs (an eliminated one too: the route may still send it what is in flight;
    it goes with scaleDownDelay once the phase ends)."""
    if status.stable is None:
        return None
    arms = tuple((a.revision, a.share) for a in status.arms)
    for a in status.arms:
        if a.role == "challenger":
            replicas[a.revision] = canary_replicas(spec.replicas, a.share)
    return World(replicas, status.stable.revision, None, 0, arms)


__all__ = [
    "Command",
    "Event",
    "EventType",
    "Observations",
    "Step",
    "World",
    "advance",
    "canary_replicas",
    "cohort_in_effect",
    "desired_world",
    "evaluation_due",
    "next_due",
    "planned_seconds",
    "plans",
    "promoted_weight",
    "shadow_in_effect",
    "timestamp",
    "with_condition",
]
