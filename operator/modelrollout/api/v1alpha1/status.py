"""The ModelRollout's status, written by the operator only; each vocabulary (phases, verdicts)
defined once here, and used by the metrics, the CLI and the docs."""

from __future__ import annotations

import math
from typing import Literal, TypedDict, Unpack, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic.alias_generators import to_camel

Phase = Literal["Pending", "Progressing", "Paused", "Baking", "Promoted", "RolledBack"]
Verdict = Literal["Pass", "Fail", "Inconclusive", "NoData", "Error"]
# Each vocabulary once; the metrics, the CLI and the docs use these.
PHASES: tuple[Phase, ...] = get_args(Phase)
VERDICTS: tuple[Verdict, ...] = get_args(Verdict)
INITIAL_PHASE: Phase = PHASES[0]
# A canary takes traffic, or may; while Baking, the new revision takes it all (or all but the
# holdback) and is still watched, with the previous one warm.
IN_FLIGHT: tuple[Phase, ...] = ("Progressing", "Paused", "Baking")
AT_REST: tuple[Phase, ...] = ("Promoted", "RolledBack")  # no canary moving: a pipeline may go on
UNHEALTHY_PHASES: tuple[Phase, ...] = ("RolledBack",)


def finite_or_none(number: float | None) -> float | None:
    """JSON has no Infinity or NaN, and the API server refuses a status that holds one: a number
    that is not finite is absent (a message says what it was)."""
    return number if number is None or math.isfinite(number) else None


class Reported(BaseModel):
    """Status is written by the operator only; unknown fields are ignored, not refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, frozen=True)


class RevisionRef(Reported):
    revision: str
    version: str


class PauseState(Reported):
    reason: str
    since: str
    message: str | None = None


class Counters(Reported):
    failed: int = 0
    inconclusive: int = 0
    consecutive_errors: int = 0


class Samples(Reported):
    canary: int = 0
    stable: int = 0


class Look(Reported):
    """One look of a compare signal's planned schedule: how far into the plan (0 to 1), the
    information (1/SE^2) seen, the z boundary it was judged with (absent: none spent) and the
    advantage estimated then (evaluations between looks carry the look's planned decision)."""

    fraction: float
    information: float
    boundary: float | None = None
    estimate: float | None = None


class PlannedLooks(Reported):
    name: str
    looks: list[Look] = Field(default_factory=list)


class SignalResult(Reported):
    """The latest verdict of one signal and the numbers behind it. `value` is what was judged:
    the query's number (threshold), the canary's advantage (compare: positive is better), the
    distance (drift), the canary's gap (fairness), the canary's share of requests (sample ratio).
    `lower`/`upper` are its always-valid confidence bounds; `bound` is the limit it was judged
    against; `canary`/`stable` the per-arm values."""

    name: str
    kind: str = "threshold"
    verdict: Verdict
    value: float | None = None
    min: float | None = None
    max: float | None = None
    canary: float | None = None
    stable: float | None = None
    lower: float | None = None
    upper: float | None = None
    bound: float | None = None
    p_value: float | None = None
    samples: Samples | None = None
    excluded: list[str] | None = None
    message: str | None = None
    at: str
    look: Look | None = None
    # compare, while undecided: labelled requests (both arms) still needed for the interval to
    # leave the margin at the current estimate, and when that is expected at the rate so far
    needed: int | None = None
    expected_at: str | None = None

    _finite = field_validator("value", "min", "max", "canary", "stable", "lower", "upper",
                              "bound", "p_value")(finite_or_none)  # fmt: skip


class AnalysisStatus(Reported):
    counters: Counters = Field(default_factory=Counters)
    signals: list[SignalResult] = Field(default_factory=list)
    last_evaluated_at: str | None = None
    # Each compare signal's looks so far within the plan (alpha spending, docs/analysis.md).
    looks: list[PlannedLooks] = Field(default_factory=list)
    # Requests the canary served in the current step by analysis.sampleRatio.requests, at the
    # last evaluation; absent: not counted (the check disabled, or no series for either arm).
    canary_requests: float | None = None


class Condition(Reported):
    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str
    message: str = ""
    last_transition_time: str


class ScaleDown(Reported):
    """A revision that lost its traffic, kept until `after` (scaleDownDelay): a replaced stable
    at full size (`replicas` absent), then removed; a rolled-back canary at its `replicas`, then
    scaled to 0."""

    revision: str
    after: str
    replicas: int | None = None
    version: str | None = None  # a replaced stable's model version (a fallback may go back to it)


class HistoryEntry(Reported):
    version: str
    revision: str
    outcome: str
    started_at: str
    finished_at: str
    reason: str = ""


class Detector(Reported):
    """One monitor signal's memory between looks: hysteresis and quiet time for every kind; for a
    kpi, its baseline, floor, CUSUM and how far its labels have been counted."""

    name: str
    above: int = 0  # alarming looks in a row
    quiet_until: str | None = None  # after an alarm, no other until then
    statistic: float | None = None  # kpi: the CUSUM
    threshold: float | None = None  # kpi: h = ln(looks in the budget)
    baseline_successes: float = 0.0
    baseline_total: float = 0.0
    floor: float | None = None  # kpi: the worst rate still healthy (the baseline's bound)
    counted_to: str | None = None  # kpi: labels are counted up to here

    _finite = field_validator("statistic", "threshold", "floor")(finite_or_none)


class Alarm(Reported):
    signal: str
    at: str
    message: str


class MonitorStatus(Reported):
    """The watch over the stable revision `revision`, since `since` (docs/lifecycle.md)."""

    revision: str
    since: str
    last_evaluated_at: str | None = None
    signals: list[SignalResult] = Field(default_factory=list)
    detectors: list[Detector] = Field(default_factory=list)
    alarms: list[Alarm] = Field(default_factory=list, max_length=10)
    # What the budget gives each signal: its mean time between false alarms, at least.
    budget_per_signal: str | None = None


RetrainingState = Literal[
    "WaitingForApproval",
    "Pending",
    "Running",
    "Succeeded",
    "Failed",
    "Rejected",
    "Error",
    "Requested",  # sent to a workflow engine as a CloudEvent: its outcome is the engine's
]
RETRAINING_STATES: tuple[RetrainingState, ...] = get_args(RetrainingState)
RETRAINING_OPEN: tuple[RetrainingState, ...] = ("WaitingForApproval", "Pending", "Running", "Error")


class Trigger(Reported):
    """What asked for a retraining: the alarm's signal and numbers, and what was watched."""

    signal: str
    value: float | None = None
    bound: float | None = None
    message: str = ""
    window: str = ""
    model: str = ""
    version: str = ""
    reference: str = ""

    _finite = field_validator("value", "bound")(finite_or_none)


class Retraining(Reported):
    """One retraining: its Job `NAME-retrain-N`, why, and how it went."""

    id: int
    job: str
    trigger: Trigger
    state: RetrainingState
    requested_at: str
    message: str = ""
    decided_by: str | None = None
    retry_at: str | None = None  # Error: the Job is created again then
    finished_at: str | None = None


class RetrainingStatus(Reported):
    current: Retraining | None = None
    history: list[Retraining] = Field(default_factory=list, max_length=10)
    next_allowed_at: str | None = None  # the cooldown: no new retraining before
    count: int = 0


class Notice(Reported):
    """One notification in the outbox: numbered per rollout (`seq`), with the id a receiver
    drops duplicates by (`<uid>-<seq>`)."""

    seq: int
    id: str
    reason: str
    message: str
    at: str
    version: str = ""
    severity: Literal["Normal", "Warning"] = "Normal"
    details: dict[str, str] = Field(default_factory=dict)


class Sink(Reported):
    """A receiver's delivery: every notice up to `delivered` is delivered, in order."""

    name: str
    delivered: int = 0
    failures: int = 0  # attempts in a row that failed
    last_error: str | None = None
    next_attempt_at: str | None = None


class NotificationsStatus(Reported):
    """The durable outbox: notices not yet delivered to every receiver, and each receiver's
    place; `dropped` counts notices given up because the outbox was full."""

    sequence: int = 0
    pending: list[Notice] = Field(default_factory=list, max_length=100)
    sinks: list[Sink] = Field(default_factory=list)
    dropped: int = 0


class FallbackState(Reported):
    """Traffic is on the fallback (heuristic) revision instead of `stable`, since `since`."""

    since: str
    reason: str
    stable: str  # the stable revision that was replaced; a new one ends the fallback


class StatusEdit(TypedDict, total=False):
    """The fields of ModelRolloutStatus as keyword arguments, so that every edit of a status is
    type-checked (a test keeps the two in step)."""

    observed_generation: int | None
    phase: Phase
    stable: RevisionRef | None
    canary: RevisionRef | None
    canary_since: str | None
    current_step: int | None
    step_started_at: str | None
    canary_weight: int
    weight_since: str | None
    mirror_since: str | None
    pause: PauseState | None
    analysis: AnalysisStatus | None
    conditions: list[Condition]
    history: list[HistoryEntry]
    scale_down: list[ScaleDown]
    last_command: str | None
    message: str | None
    monitor: MonitorStatus | None
    retraining: RetrainingStatus | None
    notifications: NotificationsStatus | None
    fallback: FallbackState | None
    arms: list[ArmStatus]
    abn: AbnStatus | None


ArmRole = Literal["champion", "challenger"]
ArmState = Literal["Running", "Eliminated", "Won", "Lost"]


class ArmStatus(Reported):
    """One arm of an A/B/n phase: a revision, its role, its share of the requests, its state
    and, for a challenger, its standing against the champion on the objective: the advantage
    with bounds that hold for all challengers at once, and the running minimum of its
    always-valid p-value (docs/analysis.md, "A/B/n")."""

    version: str
    revision: str
    role: ArmRole
    share: int = 0
    state: ArmState = "Running"
    reason: str = ""
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    p_value: float = 1.0


AbnOutcome = Literal["Running", "Winner", "NoWinner", "ChampionStays"]


class AbnStatus(Reported):
    """The A/B/n phase of a set of candidates (`candidates`: the set's revision, so that the
    same set is not judged again once it has an outcome)."""

    candidates: str
    since: str
    # when the shares in effect were asked for: the phase's start, then each change at a period
    # boundary; each candidate's sample-ratio check counts from then
    shares_since: str | None = None
    outcome: AbnOutcome = "Running"
    winner: str | None = None
    message: str = ""
    last_evaluated_at: str | None = None
    errors: int = 0  # looks in a row at which nothing of any candidate could be measured


class ModelRolloutStatus(Reported):
    observed_generation: int | None = None
    phase: Phase = "Pending"
    stable: RevisionRef | None = None
    canary: RevisionRef | None = None
    canary_since: str | None = None
    current_step: int | None = None
    step_started_at: str | None = None
    canary_weight: int = 0
    weight_since: str | None = None
    # A shadow step's mirror was first seen in effect on the route (the mirror check counts
    # from then); cleared when the step ends.
    mirror_since: str | None = None
    pause: PauseState | None = None
    analysis: AnalysisStatus | None = None
    conditions: list[Condition] = Field(default_factory=list)
    history: list[HistoryEntry] = Field(default_factory=list, max_length=10)
    scale_down: list[ScaleDown] = Field(default_factory=list)
    last_command: str | None = None
    message: str | None = None
    monitor: MonitorStatus | None = None
    retraining: RetrainingStatus | None = None
    notifications: NotificationsStatus | None = None
    fallback: FallbackState | None = None
    arms: list[ArmStatus] = Field(default_factory=list, max_length=6)
    abn: AbnStatus | None = None

    def edit(self, **changes: Unpack[StatusEdit]) -> ModelRolloutStatus:
        """A copy with `changes`, each checked against the field's type."""
        return self.model_copy(update=changes)
