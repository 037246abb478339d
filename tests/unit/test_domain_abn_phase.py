"""The A/B/n phase through the step machine (`machine.advance`), with the evidence given per
arm: it starts every candidate beside the champion at equal shares, eliminates a candidate that
fails a guardrail and gives its share back at the next period, names a winner only with
confidence, and the winner then goes through the steps and is promoted; no winner by the stated
duration pauses for a human, whose `promote` takes the leader; every candidate eliminated keeps
the champion."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from modelrollout.api.v1alpha1 import (
    ModelRolloutSpec,
    ModelRolloutStatus,
    RevisionRef,
    SignalResult,
)
from modelrollout.domain import stats
from modelrollout.domain.experiment import ArmSeen, candidates_revision
from modelrollout.domain.machine import Command, Event, Observations, advance
from modelrollout.testing.manifests import abn_rollout

V1 = RevisionRef(revision="aaaaaaaaaa", version="v1")
V2 = RevisionRef(revision="bbbbbbbbbb", version="v2")
V3 = RevisionRef(revision="cccccccccc", version="v3")
V4 = RevisionRef(revision="dddddddddd", version="v4")
CANDIDATES = (V2, V3, V4)


def spec(**abn: Any) -> ModelRolloutSpec:
    raw = abn_rollout()["spec"]
    raw["strategy"]["steps"] = [{"setWeight": 50}]
    raw["strategy"]["abn"] = {"duration": "1h", "startShare": 50, **abn}
    raw["analysis"]["interval"] = "1m"
    return ModelRolloutSpec.model_validate(raw)


def result(verdict: str = "Pass", name: str = "accuracy") -> SignalResult:
    return SignalResult.model_validate({"name": name, "kind": "compare", "verdict": verdict,
                                        "at": "x", "message": f"{name} {verdict}"})  # fmt: skip


@dataclass
class Story:
    spec: ModelRolloutSpec
    now: datetime = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    wire: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def status(self) -> ModelRolloutStatus:
        return ModelRolloutStatus.model_validate(self.wire)

    def tick(self, *, after: float = 60, candidates: tuple[RevisionRef, ...] = CANDIDATES,
             evidence: dict[str, tuple[float, str]] | None = None,
             command: Command | None = None, results: list[SignalResult] | None = None,
             fault: str | None = None) -> list[str]:  # fmt: skip
        """One tick; `evidence` by version: (advantage with se 0.004, the objective's verdict)."""
        self.now += timedelta(seconds=after)
        read = self.status
        arms: dict[str, ArmSeen] = {}
        for ref in candidates:
            if evidence is not None and ref.version not in evidence:
                arms[ref.revision] = ArmSeen()  # not measured at this look (eliminated, say)
                continue
            value, verdict = (evidence or {}).get(ref.version, (0.0, "Inconclusive"))
            arms[ref.revision] = ArmSeen(True, [result(verdict)] if evidence else None,
                                         stats.Estimate(value, 0.004, 30000))  # fmt: skip
        seen = Observations(self.now, candidates[0], True, read.canary_weight, results, command,
                            fault=fault, candidates=candidates, arms=arms)  # fmt: skip
        step = advance(self.spec, read, seen)
        self.wire = step.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.events += step.events
        return [e.reason for e in step.events]

    def shares(self) -> dict[str, int]:
        return {a.version: a.share for a in self.status.arms}

    def states(self) -> dict[str, str]:
        return {a.version: a.state for a in self.status.arms}


def begun(s: ModelRolloutSpec | None = None) -> Story:
    story = Story(s or spec())
    story.tick(candidates=(V1,))  # v1 is the first revision: stable at once
    assert story.tick() == ["AbnStarted"]
    assert story.shares() == {"v1": 25, "v2": 25, "v3": 25, "v4": 25}
    assert story.status.abn is not None
    assert story.status.abn.candidates == candidates_revision(CANDIDATES)
    return story


def test_a_failing_candidate_goes_its_share_returns_at_the_period_and_the_best_wins() -> None:
    story = begun()
    said = story.tick(after=30, evidence={"v2": (0.0, "Inconclusive"), "v3": (0.004, "Pass"),
                                          "v4": (-0.03, "Fail")})  # fmt: skip
    assert said == ["ArmEliminated"]
    assert story.states()["v4"] == "Eliminated"
    assert story.shares()["v4"] == 25  # not before the period ends
    story.tick(after=30, evidence={"v2": (0.0, "Inconclusive"), "v3": (0.004, "Pass")})
    assert story.shares() == {"v1": 34, "v2": 33, "v3": 33, "v4": 0}
    said = story.tick(evidence={"v2": (0.0, "Inconclusive"), "v3": (0.03, "Pass")})
    assert said == ["WinnerNamed"]
    assert story.status.abn is not None
    assert (story.status.abn.outcome, story.status.abn.winner) == ("Winner", "v3")
    assert story.states() == {"v1": "Running", "v2": "Lost", "v3": "Won", "v4": "Eliminated"}
    # the winner goes on as the canary, through the steps, and is promoted
    assert story.tick() == ["CanaryStarted"]
    assert story.status.canary == V3
    for _ in range(5):
        story.tick(results=[result("Pass")])
    assert (story.status.phase, story.status.stable) == ("Promoted", V3)
    # the same set listed again does not start again
    assert story.tick() == []
    table = story.status.arms
    assert [a.version for a in table] == ["v1", "v2", "v3", "v4"]
    assert table[2].lower is not None
    assert table[2].lower > 0
    assert table[3].upper is not None  # eliminated, no longer measured: its last standing kept
    assert table[3].upper < 0


def test_no_winner_by_the_duration_pauses_and_a_humans_promote_takes_the_leader() -> None:
    story = begun(spec(duration="10m"))
    evidence = {"v2": (0.001, "Inconclusive"), "v3": (0.002, "Inconclusive"),
                "v4": (-0.001, "Inconclusive")}  # fmt: skip
    for _ in range(9):
        assert story.tick(evidence=evidence) == []
    assert story.tick(evidence=evidence) == ["Paused"]
    assert story.status.pause is not None
    assert story.status.pause.reason == "NoWinner"
    assert story.tick(evidence=evidence) == []  # paused: nothing judged
    said = story.tick(command=Command("c1", "promote", "alice"))
    assert said == ["WinnerNamed"]
    assert story.status.abn is not None
    assert story.status.abn.winner == "v3"
    assert "alice" in story.status.abn.message


def test_every_candidate_eliminated_keeps_the_champion_until_the_set_changes() -> None:
    story = begun()
    said = story.tick(evidence={v.version: (-0.05, "Fail") for v in CANDIDATES})
    assert said == ["ArmEliminated", "ArmEliminated", "ArmEliminated", "RolledBack"]
    assert (story.status.phase, story.status.stable) == ("RolledBack", V1)
    assert story.shares() == {"v1": 100, "v2": 0, "v3": 0, "v4": 0}
    assert [h.outcome for h in story.status.history[-3:]] == ["RolledBack"] * 3
    assert story.tick() == []
    assert story.tick(candidates=(V2, V3)) == ["AbnStarted"]  # a new set starts again


def test_abort_ends_the_phase_with_the_champion() -> None:
    story = begun()
    said = story.tick(command=Command("c2", "abort", "bob"))
    assert said == ["RolledBack"]
    assert story.status.abn is not None
    assert story.status.abn.outcome == "ChampionStays"
    assert "bob" in story.status.abn.message


def test_a_ramp_starts_candidates_small_and_doubles_their_share_each_period() -> None:
    story = Story(spec(startShare=5))
    story.tick(candidates=(V1,))
    story.tick()
    assert story.shares() == {"v1": 85, "v2": 5, "v3": 5, "v4": 5}
    assert story.status.abn is not None
    started = story.status.abn.since
    assert story.status.abn.shares_since == started
    quiet = {v.version: (0.0, "Inconclusive") for v in CANDIDATES}
    story.tick(after=30, evidence=quiet)
    assert story.shares()["v2"] == 5  # not before the period ends
    story.tick(after=30, evidence=quiet)
    assert story.shares() == {"v1": 70, "v2": 10, "v3": 10, "v4": 10}
    # the phase says when its shares changed in its own field, not in the steps' stepStartedAt
    assert story.status.abn.shares_since is not None
    assert story.status.abn.shares_since > started
    assert story.status.step_started_at == started
    story.tick(evidence=quiet)
    assert story.shares()["v2"] == 20
    story.tick(evidence=quiet)
    assert story.shares() == {"v1": 25, "v2": 25, "v3": 25, "v4": 25}  # equal: no further


def test_a_candidate_behind_the_champion_goes_back_to_the_start_share() -> None:
    # v2, v3 and v4 level with the champion at first: the ramp doubles them all
    story = Story(spec(startShare=5))
    story.tick(candidates=(V1,))
    story.tick()
    level = {v.version: (0.0, "Inconclusive") for v in CANDIDATES}
    story.tick(after=30, evidence=level)
    story.tick(after=30, evidence=level)
    assert story.shares() == {"v1": 70, "v2": 10, "v3": 10, "v4": 10}
    # When v4 falls behind (not yet eliminated), at the next boundary it goes back to 5% while
    # the others double, and the champion serves the rest
    behind = {**level, "v4": (-0.005, "Inconclusive")}
    story.tick(evidence=behind)
    assert story.shares() == {"v1": 55, "v2": 20, "v3": 20, "v4": 5}
    # And once it is level again, it rejoins the ramp
    story.tick(evidence=level)
    assert story.shares() == {"v1": 25, "v2": 25, "v3": 25, "v4": 25}


def test_candidates_the_operator_cannot_watch_lose_their_traffic_and_the_champion_stays() -> None:
    story = begun()
    said = story.tick(fault="the operator could not complete a tick 3 times in a row")
    assert said == ["RolledBack"]
    assert story.shares() == {"v1": 100, "v2": 0, "v3": 0, "v4": 0}
    assert story.status.abn is not None
    assert story.status.abn.outcome == "ChampionStays"


def test_looks_that_measure_nothing_and_past_the_error_limit_keep_the_champion() -> None:
    story = begun()
    broken = {v.version: (0.0, "Error") for v in CANDIDATES}
    for _ in range(4):  # consecutiveErrorLimit's default: 4 such looks are tolerated
        assert story.tick(evidence=broken) == []
    assert story.status.abn is not None
    assert story.status.abn.errors == 4
    assert story.status.abn.message.startswith("not measured: accuracy")
    assert story.tick(evidence=broken) == ["RolledBack"]
    assert story.status.abn.outcome == "ChampionStays"
    assert "5 looks in a row measured no candidate" in (story.status.message or "")
