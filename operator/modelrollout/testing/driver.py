"""Simulated rollouts through the real policy: `machine.advance` and the real judges, on counts
that a simulation makes instead of Prometheus.

bench/decisions.py and the statistical tests drive rollouts with this, so what they measure is
the shipped policy (steps, promotion gate, limits, defaults from the API), never a copy of it.
The simulation says, per tick, how many requests each arm served and how many of each outcome it
counted; the driver keeps them per period, as the operator's adapter does, and asks the judges
at every evaluation the machine says is due.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modelrollout.api.v1alpha1 import (
    AT_REST,
    ModelRolloutSpec,
    ModelRolloutStatus,
    RevisionRef,
    SignalResult,
)
from modelrollout.domain import experiment
from modelrollout.domain.durations import PERIOD_SECONDS, period_of
from modelrollout.domain.experiment import ArmSeen
from modelrollout.domain.machine import Observations, advance, evaluation_due, timestamp

STABLE = RevisionRef(revision="stable0001", version="v1")
CANARY = RevisionRef(revision="canary0002", version="v2")
START = datetime(2026, 1, 5, 0, 0, tzinfo=UTC)

# Per signal name: the judge that turns the counts so far (per period) into a result.
Judge = Callable[[str, int], SignalResult]


@dataclass
class Decision:
    """How a simulated rollout ended: Promoted, RolledBack, Paused (a human is asked), or
    Undecided when the horizon ran out; at which tick; and the canary's requests until then."""

    outcome: str
    tick: int
    exposure: float
    reason: str = ""
    gate_tick: int | None = None  # when the steps were done and the promotion gate began


@dataclass
class Simulated:
    """One rollout: v1 stable, v2 the canary from tick 0; the router does what it is told."""

    spec: ModelRolloutSpec
    tick_seconds: float = 30.0
    status: ModelRolloutStatus = field(default_factory=ModelRolloutStatus)
    exposure: float = 0.0

    def __post_init__(self) -> None:
        for desired in (STABLE, CANARY):
            seen = Observations(now=START, desired=desired)
            self.status = advance(self.spec, self.status, seen).status

    def now(self, tick: int) -> datetime:
        return START + timedelta(seconds=self.tick_seconds * tick)

    def period(self, tick: int) -> int:
        """The period (of the operator's length) that a tick's counts belong to."""
        every = period_of(self.spec.analysis) if self.spec.analysis else PERIOD_SECONDS
        return int(self.tick_seconds * (tick - 1) // every)

    @property
    def weight(self) -> int:
        """The canary's share now, as the route has it."""
        return self.status.canary_weight

    def run(self, ticks: int, served: Callable[[int, int], float],
            judge: Callable[[int], list[SignalResult]]) -> Decision:  # fmt: skip
        """Tick until a decision. Before each tick, `served(tick, weight)` records that tick's
        traffic (it returns the canary's requests); `judge(tick)` is asked when an evaluation is
        due and gives every signal's result from the counts recorded so far."""
        gate: int | None = None
        for tick in range(1, ticks + 1):
            self.exposure += served(tick, self.weight)
            now = self.now(tick)
            due = evaluation_due(self.spec, self.status, now)
            results = judge(tick) if due else None
            seen = Observations(now=now, desired=CANARY, canary_available=True,
                                weight=self.weight, results=results)  # fmt: skip
            step = advance(self.spec, self.status, seen)
            self.status = step.status
            if gate is None and (self.status.current_step or 0) >= len(self.spec.strategy.steps):
                gate = tick
            phase = self.status.phase
            if phase in AT_REST or phase == "Paused":
                reason = self.status.message or (
                    self.status.pause.message if self.status.pause else ""
                )
                return Decision(phase, tick, self.exposure, reason or "", gate)
        return Decision("Undecided", ticks, self.exposure, gate_tick=gate)


def candidates(k: int) -> tuple[RevisionRef, ...]:
    """K candidates for an A/B/n rollout: v2 (spec.model) and the challengers v3, v4, ..."""
    return tuple(RevisionRef(revision=f"cand{n:06d}", version=f"v{n}") for n in range(2, k + 2))


@dataclass
class AbnDecision:
    """How a simulated A/B/n phase ended: Winner, NoWinner (a human is asked), ChampionStays,
    or Undecided when the horizon ran out; at which tick; the winner's version."""

    outcome: str
    tick: int
    winner: str | None = None
    eliminated: tuple[str, ...] = ()


@dataclass
class SimulatedAbn:
    """One A/B/n rollout: v1 stable, the candidates started at tick 0; the router does what it
    is told. The machine decides everything (experiment.py through machine.advance)."""

    spec: ModelRolloutSpec
    candidates: tuple[RevisionRef, ...]
    tick_seconds: float = 30.0
    status: ModelRolloutStatus = field(default_factory=ModelRolloutStatus)

    def __post_init__(self) -> None:
        first = Observations(now=START, desired=STABLE)
        self.status = advance(self.spec, self.status, first).status
        seen = Observations(now=START, desired=self.candidates[0], candidates=self.candidates)
        self.status = advance(self.spec, self.status, seen).status

    def now(self, tick: int) -> datetime:
        return START + timedelta(seconds=self.tick_seconds * tick)

    def shares(self) -> dict[str, int]:
        """Each arm's share now (by version), as the route has it."""
        return {a.version: a.share for a in self.status.arms}

    def run(self, ticks: int, served: Callable[[int, dict[str, int]], None],
            judge: Callable[[int], dict[str, ArmSeen]]) -> AbnDecision:  # fmt: skip
        """Tick until the phase ends. Before each tick `served(tick, shares)` records that
        tick's traffic by version; `judge(tick)` is asked when an evaluation is due and gives
        what was seen of each candidate, by version, from the counts so far."""
        by_version = {c.version: c.revision for c in self.candidates}
        for tick in range(1, ticks + 1):
            served(tick, self.shares())
            now = self.now(tick)
            due = experiment.due(self.spec, self.status, now)
            judged = judge(tick) if due else {}
            arms = {by_version[v]: seen for v, seen in judged.items()}
            arms = {c.revision: arms.get(c.revision, ArmSeen()) for c in self.candidates}
            seen = Observations(now=now, desired=self.candidates[0], canary_available=True,
                                candidates=self.candidates, arms=arms)  # fmt: skip
            self.status = advance(self.spec, self.status, seen).status
            phase = self.status.abn
            gone = tuple(a.version for a in self.status.arms if a.state == "Eliminated")
            if phase is not None and not experiment.under_way(self.status):
                return AbnDecision(phase.outcome, tick, phase.winner, gone)
            if self.status.phase == "Paused":
                return AbnDecision("NoWinner", tick, None, gone)
        return AbnDecision("Undecided", ticks)


def stamp(tick: int, tick_seconds: float) -> str:
    return timestamp(START + timedelta(seconds=tick_seconds * tick))
