"""The whole decision of one tick, pure: from the status read, what was seen, and (after a
promotion) the retraining Job's state and the monitor's look, the next status and the Events.

The order is the product's, written here once (issue 21), not in the ticker:

1. the step machine (`machine.advance`): the canary's steps, gates, rollback and promotion, the
   bake with its fast rollback;
2. the retraining Job, as last seen (a Job that ended closes its retraining);
3. a human's command to the promoted model (end a fallback, approve or reject a retraining);
4. the monitor's look at the promoted model: its detectors, and from an alarm a fallback to the
   previous model or a simpler one, then a retraining (a fallback first: users are served by
   something healthy while a new model is trained);
5. the operator's own conditions: a fault said by an earlier tick ends, a refusal is taken back,
   the route's acceptance is told.

controller/tick.py reads, calls `decide`, writes, converges and emits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from modelrollout.api.v1alpha1 import ModelRolloutSpec, ModelRolloutStatus, SignalResult
from modelrollout.domain import monitor as watch
from modelrollout.domain.machine import (
    Event,
    EventType,
    Observations,
    advance,
    machine_message,
    timestamp,
    with_condition,
)

FAULT_CONDITION = "OperatorFault"
# The operator would not act on this rollout at all (forbidden, invalid spec, no such router):
# said by this condition and the message, in one status write, and taken back by the first tick
# that goes through.
REFUSED_CONDITION = "Refused"
# The routing controller (a Gateway) refuses the route: the canary's weight reaches no request.
ROUTE_CONDITION = "RouteAccepted"


@dataclass(frozen=True)
class Decision:
    """The next status and what to say; `monitored`: the monitor's verdicts of this look, which
    the ticker exports like a canary's."""

    status: ModelRolloutStatus
    events: list[Event] = field(default_factory=list)
    monitored: list[SignalResult] | None = None


def decide(spec: ModelRolloutSpec, read: ModelRolloutStatus, seen: Observations, *, name: str,
           job: watch.JobSeen | None = None,
           look: watch.Look | None = None) -> Decision:  # fmt: skip
    """One tick's decision (the module's docstring gives the order); `name`: the rollout's,
    which its retraining Jobs are named after."""
    step = advance(spec, read, seen)
    events = list(step.events)

    def say(kind: EventType, reason: str, message: str, notify: bool,
            details: tuple[tuple[str, str], ...] = ()) -> None:  # fmt: skip
        events.append(Event(kind, reason, message, notify, details))

    moment = seen.now
    lived = watch.job_seen(spec, step.status, job, moment, say)
    command = seen.command if seen.command and seen.command.id != read.last_command else None
    lived = watch.fallback_ends(lived, command, say)
    if command is not None:
        lived = watch.decide(lived, command, moment, say)
    monitored = None
    if look is not None:
        lived, triggers = watch.watch(spec, lived, look, say)
        monitored = lived.monitor.signals if lived.monitor is not None else None
        lived = watch.fall_back(spec, lived, triggers, moment, say)
        lived = watch.retrain(spec, lived, triggers, moment, job_name=name, emit=say)
    at = timestamp(moment)
    lived = _route(_accepted(_without_fault(lived, at), at), seen.route_refused, at)
    return Decision(lived, events, monitored)


def fail_safe(spec: ModelRolloutSpec, read: ModelRolloutStatus, seen: Observations,
              message: str) -> Decision:  # fmt: skip
    """A tick that could not complete, past the fault limit or under a human's abort: the step
    machine alone (a rollback, or the abort) on what is known without measuring, with the fault
    said."""
    step = advance(spec, read, seen)
    return Decision(faulty(step.status, message, seen.now), list(step.events))


def faulty(s: ModelRolloutStatus, message: str, now: datetime) -> ModelRolloutStatus:
    return with_condition(s, FAULT_CONDITION, "True", reason="TickFailed", message=message,
                          now=timestamp(now))  # fmt: skip


def _holds(s: ModelRolloutStatus, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in s.conditions)


def _without_fault(s: ModelRolloutStatus, now: str) -> ModelRolloutStatus:
    """A tick that goes through ends a fault that was said, and takes its message back."""
    if not _holds(s, FAULT_CONDITION):
        return s
    s = s.edit(message=machine_message(s))
    return with_condition(s, FAULT_CONDITION, "False", reason="TickCompleted", now=now)


def _accepted(s: ModelRolloutStatus, now: str) -> ModelRolloutStatus:
    """A tick that goes through ends a refusal: a granted permission or a fixed spec shows at
    once, not only when the next canary starts."""
    if not _holds(s, REFUSED_CONDITION):
        return s
    s = s.edit(message=machine_message(s))
    return with_condition(s, REFUSED_CONDITION, "False", reason="Accepted", now=now)


def _route(s: ModelRolloutStatus, refused: str | None, now: str) -> ModelRolloutStatus:
    """Condition RouteAccepted: False with the controller's words while it refuses the route,
    True again once it no longer does (set only after a refusal was seen)."""
    if refused is not None:
        return with_condition(s, ROUTE_CONDITION, "False", reason="RouteRefused",
                              message=refused, now=now)  # fmt: skip
    if any(c.type == ROUTE_CONDITION and c.status == "False" for c in s.conditions):
        return with_condition(s, ROUTE_CONDITION, "True", reason="Accepted", now=now)
    return s


__all__ = [
    "FAULT_CONDITION",
    "REFUSED_CONDITION",
    "ROUTE_CONDITION",
    "Decision",
    "decide",
    "fail_safe",
    "faulty",
]
