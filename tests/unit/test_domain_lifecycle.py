"""The order after promotion, told through the one pure entry point (domain/lifecycle.decide)
with no ticker: the canary's steps, its bake, then the monitor on the promoted model; an alarm
first falls back (to the previous model while it is warm, else the simpler one) and then asks
for a retraining, in one tick."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from test_domain_machine import V1, V2, passing

from modelrollout.api.v1alpha1 import ModelRolloutSpec, ModelRolloutStatus, SignalResult
from modelrollout.domain import lifecycle
from modelrollout.domain import monitor as watch
from modelrollout.domain.machine import Event, Observations
from modelrollout.testing.manifests import rollout

JOB = {"template": {"spec": {"template": {"spec": {"containers": [
    {"name": "train", "image": "example/job:1"}]}}}}}  # fmt: skip


def spec(*, fallback: str = "previous", heuristic: bool = False) -> ModelRolloutSpec:
    raw = rollout()["spec"]
    raw.update(replicas=4, scaleDownDelay="1h", bake={"duration": "10m"})
    raw["strategy"]["steps"] = [{"setWeight": 50}]
    raw["monitor"] = {
        "interval": "1m", "window": "10m", "baseline": "10m", "confirm": 2, "cooldown": "1h",
        "signals": [{"name": "errors", "threshold": {"query": "errors", "max": 0.01}}],
        "onAlarm": [{"fallback": fallback, "retrain": {"cooldown": "6h", "job": JOB}}],
    }  # fmt: skip
    if heuristic:
        raw["fallback"] = {"version": "rules", "template": raw["template"]}
    return ModelRolloutSpec.model_validate(raw)


@dataclass
class Story:
    spec: ModelRolloutSpec
    now: datetime = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
    wire: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def status(self) -> ModelRolloutStatus:
        return ModelRolloutStatus.model_validate(self.wire)

    def tick(self, *, after: float = 60, desired: Any = V2, errors: float | None = None,
             results: list[SignalResult] | None = None) -> list[str]:  # fmt: skip
        """One tick: what the ticker would have read, decided with no I/O; this tick's reasons."""
        self.now += timedelta(seconds=after)
        read = self.status
        seen = Observations(self.now, desired, True, read.canary_weight, results)
        look = None
        if errors is not None and watch.monitor_due(self.spec, read, self.now):
            judged = SignalResult(name="errors", verdict="Fail" if errors > 0.01 else "Pass",
                                  value=errors, max=0.01, at="x")  # fmt: skip
            look = watch.Look(now=self.now, results={"errors": judged}, counts={})
        decision = lifecycle.decide(self.spec, read, seen, name="fraud-detector", look=look)
        self.wire = decision.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.events += decision.events
        return [e.reason for e in decision.events]


def promoted(s: ModelRolloutSpec) -> Story:
    story = Story(s)
    assert story.tick(desired=V1) == ["Initialized"]
    story.tick()  # v2 starts at its first step
    story.tick(results=passing())  # its step is done: to the bake
    for _ in range(30):  # the bake is 10 minutes of 1-minute ticks
        if story.status.phase == "Promoted":
            break
        assert story.status.phase in ("Progressing", "Baking"), story.status.message
        story.tick(results=passing())
    assert story.status.stable == V2
    return story


def test_bake_then_monitor_then_alarm_then_fallback_to_the_previous_then_retraining() -> None:
    story = promoted(spec())
    flow = [e.reason for e in story.events]
    assert flow.index("Baking") < flow.index("Promoted", 1)  # the bake came before promotion
    assert story.tick(errors=0.001) == []  # the monitor looks at v2: healthy
    assert story.status.monitor is not None
    assert story.status.monitor.revision == V2.revision
    assert story.tick(errors=0.2) == []  # one failing look: confirm asks for two
    # the second: the alarm, then the fallback, then the retraining, in that order, in one tick
    assert story.tick(errors=0.2) == ["MonitorAlarm", "RolledBack", "RetrainingRequested"]
    status = story.status
    assert (status.stable, status.canary, status.phase) == (V1, V2, "RolledBack")
    assert status.retraining is not None
    assert status.retraining.current is not None
    assert status.retraining.current.job == "fraud-detector-retrain-1"


def test_with_the_previous_cold_an_alarm_falls_back_to_the_simpler_model_then_retrains() -> None:
    story = promoted(spec(fallback="previous", heuristic=True))
    story.tick(after=3600, errors=0.001)  # past scaleDownDelay: v1 is no longer warm
    story.tick(errors=0.2)
    assert story.tick(errors=0.2) == ["MonitorAlarm", "FellBack", "RetrainingRequested"]
    assert story.status.fallback is not None
    assert story.status.stable == V2  # the simpler model serves in its place


def test_the_monitor_does_not_look_while_a_canary_is_in_flight() -> None:
    story = Story(spec())
    story.tick(desired=V1)
    story.tick()  # v2 in flight
    assert not watch.monitor_due(story.spec, story.status, story.now)
    assert story.tick(errors=0.2, results=passing()) == []
    assert story.status.monitor is None or story.status.monitor.revision != V2.revision
