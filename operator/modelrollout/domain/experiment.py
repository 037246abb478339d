"""The A/B/n phase of the step machine (docs/arms.md): before the steps, the champion (the
stable revision) and every candidate take shares of the traffic, and the phase ends with a
winner, which the machine then takes through the steps and the bake as its canary; with a pause
for a human when nobody won with confidence in `strategy.abn.duration`; or with the champion
staying when every candidate was eliminated.

Pure, like the machine: `step` folds one tick's observations into status.abn and status.arms.
The verdict at each look is domain/abn.py's; this module keeps its state (the running minimum of
each candidate's p-value, eliminations, the shares) and speaks (Events, conditions, pauses).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal

from modelrollout.api.v1alpha1 import (
    Abn,
    AbnStatus,
    ArmStatus,
    HistoryEntry,
    ModelRolloutSpec,
    ModelRolloutStatus,
    PauseState,
    RevisionRef,
    ScaleDown,
    SignalResult,
)
from modelrollout.domain import abn, stats
from modelrollout.domain.conditions import timestamp, with_condition
from modelrollout.domain.durations import PERIOD_SECONDS, parse_duration, period_of

Emit = Callable[[Literal["Normal", "Warning"], str, str], None]
HISTORY_LENGTH = 10


@dataclass(frozen=True)
class ArmSeen:
    """What was seen of one candidate at this tick: whether its pods are Available; when an
    evaluation was due, every signal's result for it against the champion, and its objective's
    advantage (the first compare signal's estimate; None: not enough to estimate)."""

    available: bool = True
    results: list[SignalResult] | None = None
    objective: stats.Estimate | None = None


@dataclass(frozen=True)
class Seen:
    """One tick, for the phase: the candidates the spec lists (spec.model first), what was seen
    of each by revision, and the split the route has in effect by revision (None: as asked)."""

    now: datetime
    now_text: str
    candidates: tuple[RevisionRef, ...]
    arms: dict[str, ArmSeen] = field(default_factory=dict)
    shares: dict[str, int] | None = None
    command: Literal["promote", "abort"] | None = None
    by: str = ""
    accepted: bool = True  # the routing controller accepted the route at its generation
    fault: str | None = None  # the operator cannot watch the candidates (machine.Observations)


def candidates_revision(candidates: Sequence[RevisionRef]) -> str:
    """The set's own revision: it changes when a candidate is added, removed or changed."""
    joined = ",".join(sorted(c.revision for c in candidates))
    return hashlib.sha256(joined.encode()).hexdigest()[:10]


def shares(running: int, start_share: int = 100, periods: int = 0) -> tuple[int, int]:
    """(each candidate's share, the champion's): `start_share` doubled once per period since the
    phase began, at most the equal share; the champion takes the remainder."""
    each = min(100 // (running + 1), start_share * 2 ** min(periods, 8))
    return each, 100 - each * running


def winner(s: ModelRolloutStatus) -> RevisionRef | None:
    """The winning candidate, once the phase has named one."""
    if s.abn is None or s.abn.outcome != "Winner" or s.abn.winner is None:
        return None
    arm = next((a for a in s.arms if a.version == s.abn.winner), None)
    return RevisionRef(revision=arm.revision, version=arm.version) if arm is not None else None


def under_way(s: ModelRolloutStatus) -> bool:
    """A phase runs (its candidates are routed, measured and judged every interval)."""
    return s.abn is not None and s.abn.outcome == "Running"


def _of(s: ModelRolloutStatus, candidates: Sequence[RevisionRef]) -> bool:
    return s.abn is not None and s.abn.candidates == candidates_revision(candidates)


def concluded(s: ModelRolloutStatus, candidates: Sequence[RevisionRef]) -> bool:
    return _of(s, candidates) and not under_way(s)


def running(s: ModelRolloutStatus, candidates: Sequence[RevisionRef]) -> bool:
    """This set's phase is under way."""
    return _of(s, candidates) and under_way(s)


def start(s: ModelRolloutStatus, champion: RevisionRef, candidates: Sequence[RevisionRef], *,
          start_share: int, now: str, emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    """A new set: every candidate that is not the champion beside it, at equal shares."""
    identity = candidates_revision(candidates)
    candidates = [c for c in candidates if c.revision != champion.revision]
    each, rest = shares(len(candidates), start_share)
    arms = [ArmStatus(version=champion.version, revision=champion.revision, role="champion",
                      share=rest)]  # fmt: skip
    arms += [ArmStatus(version=c.version, revision=c.revision, role="challenger", share=each)
             for c in candidates]  # fmt: skip
    names = ", ".join(c.version for c in candidates)
    emit("Normal", "AbnStarted", f"A/B/n: {names} against {champion.version}, {each}% each")
    s = s.edit(
        abn=AbnStatus(candidates=identity, since=now, shares_since=now),
        arms=arms, phase="Progressing", canary=None, canary_since=now, canary_weight=0,
        current_step=None, step_started_at=now, pause=None, message=None,
    )  # fmt: skip
    s = with_condition(s, "Progressing", "True", reason="AbnStarted", message=names, now=now)
    return with_condition(s, "Degraded", "False", reason="AbnStarted", now=now)


def next_due(spec: ModelRolloutSpec, s: ModelRolloutStatus, now: datetime) -> list[datetime]:
    """When a running phase next wants a tick: its next evaluation, the next period boundary
    (a share may change there) and the end of its duration."""
    if spec.analysis is None or spec.strategy.abn is None or s.abn is None or not under_way(s):
        return []
    since = datetime.fromisoformat(s.abn.since)
    interval = timedelta(seconds=parse_duration(spec.analysis.interval))
    last = s.abn.last_evaluated_at
    period = _period(spec)
    periods = (now - since).total_seconds() // period + 1
    return [
        datetime.fromisoformat(last) + interval if last else now,
        since + timedelta(seconds=period * periods),
        since + timedelta(seconds=parse_duration(spec.strategy.abn.duration)),
    ]


def due(spec: ModelRolloutSpec, s: ModelRolloutStatus, now: datetime) -> bool:
    """The candidates are judged every analysis interval while the phase runs (not paused)."""
    if spec.analysis is None or s.abn is None or not under_way(s):
        return False
    if s.phase != "Progressing":
        return False
    last = s.abn.last_evaluated_at
    if last is None:
        return True
    elapsed = (now - datetime.fromisoformat(last)).total_seconds()
    return elapsed >= parse_duration(spec.analysis.interval)


def step(spec: ModelRolloutSpec, s: ModelRolloutStatus, seen: Seen,
         emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    """One tick of a running phase; when it ends, the candidates that did not win keep their
    pods for scaleDownDelay (the route still sends them what is in flight), then go."""
    after = _step(spec, s, seen, emit)
    if after.abn is None or under_way(after):
        return after
    delay = timedelta(seconds=parse_duration(spec.scale_down_delay))
    until = timestamp(seen.now + delay)
    losers = {a.revision: ScaleDown(revision=a.revision, after=until,
                                    replicas=max(1, math.ceil(spec.replicas * a.share / 100)))
              for a in after.arms if a.role == "challenger" and a.state != "Won"}  # fmt: skip
    kept = [d for d in after.scale_down if d.revision not in losers]
    return after.edit(scale_down=[*kept, *losers.values()])


def _step(spec: ModelRolloutSpec, s: ModelRolloutStatus, seen: Seen,
          emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    phase, state = spec.strategy.abn, s.abn
    if phase is None or state is None:
        return s
    # candidates nobody can watch take no traffic; a human's abort ends the phase too
    ended = (
        seen.fault
        if seen.fault is not None
        else (
            f"{seen.by or 'a human'} aborted the A/B/n phase" if seen.command == "abort" else None
        )
    )
    if ended is not None:
        return _champion_stays(s, state, seen, ended, emit)
    if s.phase == "Paused":
        return _human_pick(s, state, seen, emit) if seen.command == "promote" else s
    s = _eliminate_unavailable(spec, s, state, seen)
    asked = {a.revision: a.share for a in s.arms}
    if not seen.accepted or (seen.shares is not None and seen.shares != asked) or any(
            seen.arms.get(a.revision) is None for a in _challengers(s, "Running")):  # fmt: skip
        return s  # the judging waits for the split asked for, and for every arm to be seen
    if not any(seen.arms[a.revision].results is not None for a in _challengers(s, "Running")):
        return _maybe_reshare(spec, s, state, seen)
    return _judge(spec, phase, s, state, seen=seen, emit=emit)


def _challengers(s: ModelRolloutStatus, state: str | None = None) -> list[ArmStatus]:
    return [a for a in s.arms if a.role == "challenger" and (state is None or a.state == state)]


def _eliminate_unavailable(spec: ModelRolloutSpec, s: ModelRolloutStatus, state: AbnStatus,
                           seen: Seen) -> ModelRolloutStatus:  # fmt: skip
    """A candidate whose pods are not Available within progressDeadline of the phase's start
    is eliminated with that reason (its share goes back at the next period)."""
    started = datetime.fromisoformat(state.since)
    late = (seen.now - started).total_seconds() > parse_duration(spec.progress_deadline)
    why = f"not Available within progressDeadline {spec.progress_deadline}"

    def gone(a: ArmStatus) -> bool:
        look = seen.arms.get(a.revision)
        return (late and a.role == "challenger" and a.state == "Running" and look is not None
                and not look.available)  # fmt: skip

    return s.edit(arms=[a.model_copy(update={"state": "Eliminated", "reason": why})
                        if gone(a) else a for a in s.arms])  # fmt: skip


def _evidence(spec: ModelRolloutSpec, arm: ArmStatus, look: ArmSeen) -> abn.Evidence:
    """What a look says of one candidate: the first Fail of any signal (a guardrail, or a
    compare worse than tolerated) eliminates it; another compare signal not yet Pass keeps it
    from winning."""
    signals = spec.analysis.signals if spec.analysis is not None else []
    objective = next((x.name for x in signals if x.compare is not None), None)
    compares = {x.name for x in signals if x.compare is not None}
    results = look.results or []
    failed = next((r for r in results if r.verdict == "Fail"), None)
    worse = f"{failed.name}: {failed.message or 'Fail'}" if failed is not None else None
    open_ones = [f"{r.name} ({r.verdict})" for r in results
                 if r.name in compares and r.name != objective and r.verdict != "Pass"]  # fmt: skip
    return abn.Evidence(arm.version, look.objective, worse=worse,
                        unproven="; ".join(open_ones) or None, p_before=arm.p_value,
                        eliminated=arm.reason if arm.state == "Eliminated" else None)  # fmt: skip


def _judge(spec: ModelRolloutSpec, phase: Abn, s: ModelRolloutStatus, state: AbnStatus, *,
           seen: Seen, emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    unmeasured = _unmeasured(s, seen)
    if unmeasured is not None:
        return _unmeasured_look(spec, s, state, seen=seen, why=unmeasured, emit=emit)
    state = state.model_copy(update={"errors": 0})
    challengers = _challengers(s)
    evidence = [_evidence(spec, a, seen.arms.get(a.revision, ArmSeen())) for a in challengers]
    elapsed = (seen.now - datetime.fromisoformat(state.since)).total_seconds()
    verdict = abn.judge(evidence, alpha=phase.alpha, margin=phase.margin,
                        ending=elapsed >= parse_duration(phase.duration))  # fmt: skip
    standing = {row.arm: row for row in verdict.standings}

    def standing_of(a: ArmStatus) -> ArmStatus:
        row = standing.get(a.version)
        if row is None:
            return a
        kept = row.state if row.state in ("Won", "Eliminated") else a.state
        update: dict[str, object] = {"state": kept, "reason": row.reason, "p_value": row.p_value}
        if row.estimate is not None:  # an arm no longer measured keeps its last standing
            update |= {"estimate": row.estimate, "lower": row.lower, "upper": row.upper}
        return a.model_copy(update=update)

    state = state.model_copy(update={"last_evaluated_at": seen.now_text,
                                     "message": verdict.message})  # fmt: skip
    s = s.edit(arms=[standing_of(a) for a in s.arms], abn=state)
    for name in verdict.eliminated:
        emit("Warning", "ArmEliminated", f"{name}: {standing[name].reason}")
    if verdict.outcome == "Winner" and verdict.winner is not None:
        emit("Normal", "WinnerNamed", verdict.message)
        return _won(s, state, verdict.winner, seen)
    if verdict.outcome == "ChampionStays":
        return _champion_stays(s, state, seen, verdict.message, emit)
    if verdict.outcome == "NoWinner":
        emit("Warning", "Paused", verdict.message)
        return s.edit(phase="Paused", pause=PauseState(reason="NoWinner", since=seen.now_text,
                                                        message=verdict.message))  # fmt: skip
    return _maybe_reshare(spec, s, state, seen)


def _unmeasured(s: ModelRolloutStatus, seen: Seen) -> str | None:
    """When every result of every running candidate at this look is an Error (Prometheus does
    not answer, credentials are missing), the first one's message; None otherwise."""
    results = [r for a in _challengers(s, "Running")
               for r in (seen.arms[a.revision].results or [])]  # fmt: skip
    if results and all(r.verdict == "Error" for r in results):
        return f"{results[0].name}: {results[0].message or 'Error'}"
    return None


def _unmeasured_look(spec: ModelRolloutSpec, s: ModelRolloutStatus, state: AbnStatus, *,
                     seen: Seen, why: str, emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    """A look that measured nothing judges nothing; past analysis.consecutiveErrorLimit of them
    in a row the phase ends with the champion, as a canary is rolled back (no candidate keeps
    traffic that cannot be watched)."""
    limit = spec.analysis.consecutive_error_limit if spec.analysis is not None else 0
    state = state.model_copy(update={"errors": state.errors + 1, "last_evaluated_at":
                                     seen.now_text, "message": f"not measured: {why}"})  # fmt: skip
    s = s.edit(abn=state)
    if state.errors > limit:
        said = (
            f"{state.errors} looks in a row measured no candidate "
            f"(consecutiveErrorLimit {limit}): {why}"
        )
        return _champion_stays(s, state, seen, said, emit)
    return s


def _maybe_reshare(spec: ModelRolloutSpec, s: ModelRolloutStatus, state: AbnStatus,
                   seen: Seen) -> ModelRolloutStatus:  # fmt: skip
    """Shares change only at a period boundary (counted from the phase's start), so that no
    period mixes two splits: the ramp's doubling, and an eliminated candidate's share given back
    to the others."""
    period = _period(spec)
    since = datetime.fromisoformat(state.since)
    elapsed = (seen.now - since).total_seconds()
    live = _challengers(s, "Running")
    start_share = spec.strategy.abn.start_share if spec.strategy.abn is not None else 100
    each, _ = shares(len(live), start_share, int(elapsed // period))
    wanted = {a.revision: _ramped(a, each, start_share) for a in s.arms if a.role != "champion"}
    champion = 100 - sum(wanted.values())
    wanted |= {a.revision: champion for a in s.arms if a.role == "champion"}
    if all(a.share == wanted[a.revision] for a in s.arms):
        return s
    boundary = since + timedelta(seconds=period * (elapsed // period))
    asked_since = datetime.fromisoformat(state.shares_since) if state.shares_since else since
    if boundary <= asked_since:
        return s  # the split was set in this period: the next boundary changes it
    arms = [a.model_copy(update={"share": wanted[a.revision]}) for a in s.arms]
    return s.edit(arms=arms, abn=state.model_copy(update={"shares_since": seen.now_text}))


def _ramped(arm: ArmStatus, each: int, start: int) -> int:
    """A challenger's share at this boundary: the ramp's, except that one whose estimate is
    behind the champion's goes back to the start share until it is level again. Its elimination
    then needs fewer of its own requests, as the champion serves more (the advantage's variance
    is the sum of both arms'), so a worse arm serves less before it goes (bench/abn.py). The
    share is decided from the periods before it, so each period's comparison stays valid."""
    if arm.state != "Running":
        return 0
    if arm.estimate is not None and arm.estimate < 0:
        return min(start, each)
    return each


def _period(spec: ModelRolloutSpec) -> float:
    return period_of(spec.analysis) if spec.analysis is not None else PERIOD_SECONDS


def _won(s: ModelRolloutStatus, state: AbnStatus, name: str, seen: Seen) -> ModelRolloutStatus:
    arms = [a.model_copy(update={"state": "Won" if a.version == name else "Lost"
                                 if a.role == "challenger" and a.state == "Running"
                                 else a.state}) for a in s.arms]  # fmt: skip
    s = _history(s, arms, name, seen.now_text)
    return s.edit(arms=arms, abn=state.model_copy(update={"outcome": "Winner", "winner": name}))


def _human_pick(s: ModelRolloutStatus, state: AbnStatus, seen: Seen,
                emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    """`promote` while paused without a winner: the leader (the best running estimate) wins."""
    leader = next((a for a in sorted(_challengers(s, "Running"),
                                     key=lambda a: -(a.estimate or 0.0))), None)  # fmt: skip
    if leader is None:
        return s
    said = f"{seen.by or 'a human'} promoted the leader {leader.version} without confidence"
    emit("Normal", "WinnerNamed", said)
    state = state.model_copy(update={"message": said})
    return _won(s.edit(phase="Progressing", pause=None, abn=state), state, leader.version, seen)


def _champion_stays(s: ModelRolloutStatus, state: AbnStatus, seen: Seen, why: str,
                    emit: Emit) -> ModelRolloutStatus:  # fmt: skip
    emit("Warning", "RolledBack", why)
    arms = [a.model_copy(update={"state": "Lost"}) if a.role == "challenger"
            and a.state == "Running" else a for a in s.arms]  # fmt: skip
    s = _history(s, arms, None, seen.now_text)
    s = s.edit(arms=[a.model_copy(update={"share": 0 if a.role == "challenger" else 100})
                     for a in arms],
               abn=state.model_copy(update={"outcome": "ChampionStays", "message": why}),
               phase="RolledBack", pause=None, message=why)  # fmt: skip
    s = with_condition(s, "Progressing", "False", reason="ChampionStays", message=why,
                       now=seen.now_text)  # fmt: skip
    return with_condition(s, "Degraded", "True", reason="ChampionStays", message=why,
                          now=seen.now_text)  # fmt: skip


def _history(s: ModelRolloutStatus, arms: list[ArmStatus], winner_name: str | None,
             now: str) -> ModelRolloutStatus:  # fmt: skip
    """Every candidate that did not win is history, with its reason."""
    entries = [HistoryEntry(version=a.version, revision=a.revision,
                            outcome="RolledBack" if a.state == "Eliminated" else "Superseded",
                            started_at=s.abn.since if s.abn is not None else now,
                            finished_at=now,
                            reason=f"A/B/n: {a.reason or a.state}")
               for a in arms if a.role == "challenger" and a.version != winner_name]  # fmt: skip
    return s.edit(history=[*s.history, *entries][-HISTORY_LENGTH:])


__all__ = [
    "ArmSeen",
    "Seen",
    "candidates_revision",
    "concluded",
    "due",
    "next_due",
    "running",
    "shares",
    "start",
    "step",
    "under_way",
    "winner",
]
