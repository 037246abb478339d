"""The step machine, told as rollouts: Given a status, When a tick observes something, Then..."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrollout.api.v1alpha1 import (
    Look,
    ModelRolloutSpec,
    ModelRolloutStatus,
    RevisionRef,
    SignalResult,
)
from modelrollout.domain.machine import (
    Command,
    Event,
    Incident,
    Observations,
    advance,
    canary_replicas,
    desired_world,
    evaluation_due,
    machine_message,
    past_progress_deadline,
    planned_seconds,
    plans,
)
from modelrollout.testing.manifests import rollout

V1 = RevisionRef(revision="aaaaaaaaaa", version="v1")
V2 = RevisionRef(revision="bbbbbbbbbb", version="v2")
V3 = RevisionRef(revision="cccccccccc", version="v3")


def make_spec(steps: list[dict[str, Any]] | None = None, **changes: Any) -> ModelRolloutSpec:
    raw = rollout()["spec"]
    raw["replicas"] = 4
    if steps is not None:
        raw["strategy"]["steps"] = steps
    raw.update(changes)
    return ModelRolloutSpec.model_validate(raw)


STEPS: list[dict[str, Any]] = [
    {"setWeight": 25},
    {"analyze": {"duration": "1m"}},
    {"pause": {}},
    {"setWeight": 50},
]


def passing(name: str = "error-rate") -> list[SignalResult]:
    return [SignalResult(name=name, verdict="Pass", value=0.001, max=0.01, at="x")]


def verdict(kind: str) -> list[SignalResult]:
    return [SignalResult.model_validate({"name": "error-rate", "verdict": kind, "at": "x"})]


@dataclass
class Rollout:
    """Drives `advance` like the operator does, and keeps the status only in its wire form."""

    spec: ModelRolloutSpec
    now: datetime = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    wire: dict[str, Any] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)

    @property
    def status(self) -> ModelRolloutStatus:
        return ModelRolloutStatus.model_validate(self.wire)

    def tick(self, desired: RevisionRef, *, after: float = 0, available: bool = True,
             weight: int | None = None, results: list[SignalResult] | None = None,
             command: Command | None = None, trouble: str | None = None,
             unrouted: str | None = None, accepted: bool = True,
             incidents: tuple[Incident, ...] = (), served: float | None = None,
             cohorts: frozenset[Any] | None = None) -> ModelRolloutStatus:  # fmt: skip
        self.now += timedelta(seconds=after)
        if weight is None:  # a router that does what it is told, unless a test says otherwise
            weight = self.status.canary_weight
        seen = Observations(self.now, desired, available, weight, results, command,
                            canary_trouble=trouble, route_refused=unrouted,
                            route_accepted=accepted, canary_incidents=incidents,
                            canary_requests=served, cohorts_routed=cohorts)  # fmt: skip
        step = advance(self.spec, self.status, seen)
        # restart-safety: the next tick sees only what would be stored in the object's status
        self.wire = step.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.events += step.events
        return self.status

    def reasons(self) -> list[str]:
        return [e.reason for e in self.events]


def started(steps: list[dict[str, Any]] | None = None, **changes: Any) -> Rollout:
    """Given v1 stable and v2 just started as canary."""
    r = Rollout(make_spec(STEPS if steps is None else steps, **changes))
    r.tick(V1)
    r.tick(V2)
    return r


def test_the_first_revision_becomes_stable_at_once() -> None:
    r = Rollout(make_spec(STEPS))
    status = r.tick(V1)
    assert (status.phase, status.stable, status.canary) == ("Promoted", V1, None)
    world = desired_world(r.spec, status)
    assert world is not None
    assert (world.replicas, world.stable, world.canary, world.weight) == (
        {V1.revision: 4},
        V1.revision,
        None,
        0,
    )


def test_a_new_revision_starts_a_canary_with_one_pod_and_no_traffic() -> None:
    r = started()
    status = r.status
    assert (status.phase, status.canary, status.current_step) == ("Progressing", V2, 0)
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.replicas == {V1.revision: 4, V2.revision: 1}
    assert (world.canary, world.weight) == (V2.revision, 0)
    assert "CanaryStarted" in r.reasons()


def test_set_weight_counts_only_once_the_router_shows_it() -> None:
    r = started()
    status = r.tick(V2, weight=0)  # the route still says 0
    assert (status.current_step, status.canary_weight) == (0, 25)
    status = r.tick(V2, weight=25)
    assert status.current_step == 1
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.replicas[V2.revision] == canary_replicas(4, 25) == 1


def test_analyze_waits_its_duration_and_a_clean_measurement() -> None:
    r = started()
    r.tick(V2, weight=25)
    assert r.tick(V2, after=30, results=passing()).current_step == 1
    assert r.tick(V2, after=31).current_step == 2  # 61 s since the step began, measured clean
    assert r.status.phase == "Paused"  # step 2 is a pause without duration


def test_prometheus_down_holds_the_rollout_and_never_promotes() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1m"}}], **{})
    r.tick(V2)
    for _ in range(4):  # consecutiveErrorLimit is 4: four errors in a row are tolerated
        status = r.tick(V2, after=60, results=verdict("Error"))
    assert (status.phase, status.current_step, status.stable) == ("Progressing", 1, V1)
    # When Prometheus returns, Then the rollout goes on and promotes
    r.tick(V2, after=60, results=passing())
    status = r.tick(V2)
    assert (status.phase, status.stable) == ("Promoted", V2)


def test_a_sustained_outage_counts_as_one_failure_and_rolls_back() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1h"}}])
    r.tick(V2)
    for _ in range(5):
        status = r.tick(V2, after=60, results=verdict("Error"))
    assert status.phase == "RolledBack"
    assert "in a row failed to measure" in (status.message or "")


def test_a_failed_signal_rolls_back_at_once_with_its_reason() -> None:
    r = started()
    r.tick(V2, weight=25)
    failed = [SignalResult(name="error-rate", verdict="Fail", value=0.2, max=0.01,
                           message="0.2 above max 0.01", at="x")]  # fmt: skip
    status = r.tick(V2, after=10, results=failed)
    assert (status.phase, status.canary_weight, status.stable) == ("RolledBack", 0, V1)
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert degraded.status == "True"
    assert "error-rate: 0.2 above max 0.01" in degraded.message
    world = desired_world(r.spec, status)
    assert world is not None
    # no traffic at once; its one pod stays for scaleDownDelay (30s), for requests a gateway
    # still sends while it applies the route, then it goes
    assert (world.weight, world.replicas[V2.revision]) == (0, 1)
    assert status.history[-1].outcome == "RolledBack"
    world = desired_world(r.spec, r.tick(V2, after=31))
    assert world is not None
    assert (world.weight, world.replicas[V2.revision]) == (0, 0)


def test_the_next_canary_does_not_inherit_the_last_rollback_message() -> None:
    r = started()
    r.tick(V2, weight=25)
    failed = [SignalResult(name="error-rate", verdict="Fail", value=0.2, max=0.01, at="x")]
    assert r.tick(V2, after=10, results=failed).message
    status = r.tick(V3)
    assert (status.phase, status.canary, status.message) == ("Progressing", V3, None)


def test_the_machine_message_is_the_rollback_reason_while_rolled_back_only() -> None:
    r = started()
    assert machine_message(r.status) is None  # progressing: nothing to say
    r.tick(V2, weight=25)
    failed = [SignalResult(name="error-rate", verdict="Fail", value=0.2, max=0.01,
                           message="0.2 above max 0.01", at="x")]  # fmt: skip
    status = r.tick(V2, after=10, results=failed)
    # whatever else was written over status.message, the reason is still known
    overwritten = status.model_copy(update={"message": "permission denied"})
    assert machine_message(overwritten) == status.message
    assert "error-rate: 0.2 above max 0.01" in (status.message or "")
    assert machine_message(r.tick(V3)) is None


def test_a_rolled_back_revision_is_not_retried_until_a_human_says_retry() -> None:
    r = started()
    r.tick(V2, command=Command("c1", "abort", "alice"))
    assert r.tick(V2, after=3600).phase == "RolledBack"
    status = r.tick(V2, command=Command("c2", "retry", "bob"))
    assert (status.phase, status.current_step, status.canary) == ("Progressing", 0, V2)
    assert "Retry" in r.reasons()


def test_a_pause_without_duration_waits_for_promote() -> None:
    r = started()
    r.tick(V2, weight=25)
    r.tick(V2, after=30, results=passing())
    status = r.tick(V2, after=31)
    assert (status.phase, status.pause and status.pause.reason) == ("Paused", "Step")
    assert r.tick(V2, after=3600).phase == "Paused"
    status = r.tick(V2, command=Command("c1", "promote", "alice"))
    assert (status.phase, status.current_step, status.canary_weight) == ("Progressing", 3, 50)
    status = r.tick(V2, results=passing())  # the route now shows 50: the last step is done
    assert (status.current_step, status.canary_weight) == (4, 100)


def test_the_last_step_promotes_then_the_old_revision_goes_after_the_delay() -> None:
    r = started(steps=[{"setWeight": 50}], scaleDownDelay="30s")
    assert r.tick(V2).canary_weight == 50
    # When the route shows 50 and the signals pass, Then the canary is sized up to take 100%
    status = r.tick(V2, results=passing())
    assert (status.phase, status.canary_weight) == ("Progressing", 100)
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.replicas[V2.revision] == 4  # full size before it takes all traffic
    status = r.tick(V2, after=1)
    assert (status.phase, status.stable, status.canary) == ("Promoted", V2, None)
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.replicas == {V2.revision: 4, V1.revision: 4}  # old kept for scaleDownDelay
    status = r.tick(V2, after=31)
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.replicas == {V2.revision: 4}
    assert status.history[-1].outcome == "Promoted"


def test_a_new_revision_mid_rollout_replaces_the_canary() -> None:
    r = started()
    r.tick(V2, weight=25)
    status = r.tick(V3)
    assert (status.canary, status.current_step, status.canary_weight) == (V3, 0, 0)
    assert status.history[-1].outcome == "Superseded"
    assert status.history[-1].revision == V2.revision


def test_returning_the_spec_to_stable_removes_the_canary() -> None:
    r = started()
    status = r.tick(V1)
    assert (status.phase, status.canary, status.canary_weight) == ("Promoted", None, 0)


def test_a_canary_never_available_is_rolled_back_after_progress_deadline() -> None:
    r = started(progressDeadline="2m")
    assert r.tick(V2, after=60, available=False).phase == "Progressing"
    status = r.tick(V2, after=61, available=False)
    assert status.phase == "RolledBack"
    assert "progressDeadline 2m" in (status.message or "")


def test_the_deadline_rollback_names_what_keeps_the_pods_from_being_ready() -> None:
    r = started(progressDeadline="2m")
    assert not past_progress_deadline(r.spec, r.status, r.now + timedelta(seconds=120))
    assert past_progress_deadline(r.spec, r.status, r.now + timedelta(seconds=121))
    crash = "pod p container server: CrashLoopBackOff exit code 3 (weights not found)"
    status = r.tick(V2, after=121, available=False, trouble=crash)
    assert status.phase == "RolledBack"
    assert status.message == f"canary not Available within progressDeadline 2m: {crash}"


CRASHED = "pod p-1 container server exited with code 1 (Error): out of memory, 1 restart"


def test_a_canary_whose_pods_crashed_between_ticks_is_rolled_back_naming_the_crash() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "10m"}}])
    r.tick(V2, after=10, results=passing())
    assert r.status.canary_weight == 50
    # Given the canary is Available again at the tick: only the watch saw it crash and restart
    crashed = (Incident(r.now + timedelta(seconds=5), "p-1", CRASHED),)
    status = r.tick(V2, after=10, results=passing(), incidents=crashed)
    assert status.phase == "RolledBack"
    assert status.message == ("the canary's pods restarted or stopped being ready 1 time "
                              f"(restartLimit 0): {CRASHED}")  # fmt: skip


def test_incidents_of_an_earlier_canary_do_not_count_and_restart_limit_tolerates_some() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "10m"}}], restartLimit=1)
    before = Incident(r.now - timedelta(seconds=1), "p-0", "pod p-0 stopped being ready")
    once = (before, Incident(r.now + timedelta(seconds=5), "p-1", CRASHED))
    assert r.tick(V2, after=10, results=passing(), incidents=once).phase == "Progressing"
    twice = (*once, Incident(r.now + timedelta(seconds=5), "p-1", CRASHED))
    status = r.tick(V2, after=10, results=passing(), incidents=twice)
    assert status.phase == "RolledBack"
    assert "2 times (restartLimit 1)" in (status.message or "")


def test_a_step_passes_only_once_the_canary_served_requests_in_it() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1m"}}], progressDeadline="5m")
    r.tick(V2, results=passing(), served=0)  # asks for 50%
    r.tick(V2, results=passing(), served=0)  # the route shows it
    assert r.status.current_step == 1
    # The analyze step's minute is up, the signals pass, but the canary served nobody: it holds
    status = r.tick(V2, after=61, results=passing(), served=0)
    assert (status.phase, status.current_step) == ("Progressing", 1)
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert progressing.reason == "WaitingForTraffic"
    assert "served 0 requests in this step" in progressing.message
    assert r.reasons().count("WaitingForTraffic") == 1
    # and past progressDeadline it is rolled back, saying why
    status = r.tick(V2, after=240, results=passing(), served=0)
    assert status.phase == "RolledBack"
    assert "served 0 requests" in (status.message or "")
    assert "progressDeadline 5m passed" in (status.message or "")


def test_requests_not_counted_or_at_weight_0_do_not_hold_a_step() -> None:
    for steps, served in (([{"setWeight": 50}, {"analyze": {"duration": "1m"}}], None),
                          ([{"setWeight": 0}, {"analyze": {"duration": "1m"}}], 0.0),
                          ([{"setWeight": 50}, {"analyze": {"duration": "1m"}}], 1.0)):  # fmt: skip
        r = started(steps=steps)
        r.tick(V2, results=passing(), served=served)
        r.tick(V2, results=passing(), served=served)
        status = r.tick(V2, after=61, results=passing(), served=served)
        assert status.current_step == 2, (steps, served)


def test_a_route_no_controller_accepted_holds_the_steps_then_rolls_back_naming_it() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1m"}}], progressDeadline="2m")
    nobody = "no controller accepted HTTPRoute fraud-detector for Gateway ml/public within 30 s"
    # While no controller has put the route in effect, no step counts and nothing is promoted,
    # however long the steps' own durations are; a Warning says why, once
    for _ in range(3):
        status = r.tick(V2, after=30, results=passing(), unrouted=nobody)
        assert status.phase == "Progressing"
        assert status.current_step in (None, 0)
    assert r.reasons().count("RouteNotAccepted") == 1
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert (progressing.reason, progressing.message) == ("RouteNotAccepted", nobody)
    # Past progressDeadline the canary is rolled back, and the reason names the route
    status = r.tick(V2, after=31, results=passing(), unrouted=nobody)
    assert status.phase == "RolledBack"
    assert status.message == f"the route was not in effect within progressDeadline 2m: {nobody}"


def test_a_weight_counts_only_once_its_controller_accepted_the_route() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1m"}}])
    # The route carries 50% but no controller has accepted its new generation yet
    for _ in range(4):
        status = r.tick(V2, after=30, weight=50, results=passing(), accepted=False)
    assert (status.phase, status.current_step, status.weight_since) == ("Progressing", 0, None)
    # Once it is accepted, the weight is in effect from that tick, and the steps go on
    status = r.tick(V2, after=1, weight=50, results=passing())
    assert (status.current_step, status.weight_since) == (1, r.status.step_started_at)


def test_a_route_accepted_late_lets_the_steps_go_on() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1m"}}], progressDeadline="2m")
    r.tick(V2, after=30, results=passing(), unrouted="Gateway public does not accept it: x")
    r.tick(V2, after=10, results=passing())
    phases = [r.tick(V2, after=30, results=passing()).phase for _ in range(4)]
    assert phases[-1] == "Promoted", phases


def test_no_data_past_the_limit_pauses_and_resume_clears_it() -> None:
    r = started(steps=[{"setWeight": 50}, {"analyze": {"duration": "1h"}}])
    r.tick(V2)
    for _ in range(4):
        status = r.tick(V2, after=60, results=verdict("NoData"))
    assert (status.phase, status.pause and status.pause.reason) == ("Paused", "Inconclusive")
    status = r.tick(V2, command=Command("c1", "resume", "alice"))
    assert status.phase == "Progressing"
    assert status.analysis is not None
    assert status.analysis.counters.inconclusive == 0


def test_a_command_is_applied_once_though_seen_on_many_ticks() -> None:
    r = started(steps=[{"setWeight": 10}, {"pause": {}}, {"pause": {}}, {"setWeight": 20}])
    r.tick(V2, weight=10)
    assert r.status.current_step == 1
    # The object keeps carrying the latest command; the machine applies it once
    promote = Command("c1", "promote", "alice")
    for _ in range(3):
        status = r.tick(V2, command=promote)
    assert (status.phase, status.current_step) == ("Paused", 2)
    assert r.reasons().count("PromotedStep") == 1


def test_evaluation_is_due_every_interval_while_the_canary_has_traffic() -> None:
    r = started()
    now = r.now
    assert not evaluation_due(r.spec, r.status, now)  # weight 0: nothing to measure
    r.tick(V2, weight=25)
    assert evaluation_due(r.spec, r.status, r.now)
    r.tick(V2, results=passing())
    assert not evaluation_due(r.spec, r.status, r.now + timedelta(seconds=29))
    assert evaluation_due(r.spec, r.status, r.now + timedelta(seconds=30))


@pytest.mark.parametrize(("weight", "pods"), [(0, 1), (1, 1), (25, 1), (26, 2), (50, 2), (100, 4)])
def test_canary_pods_follow_the_weight_with_at_least_one(weight: int, pods: int) -> None:
    assert canary_replicas(4, weight) == pods


# --- the promotion gate: statistical signals must reach Pass -----------------------------------

COMPARE = {
    "name": "accuracy",
    "compare": {"successes": "ok_total", "total": "all_total", "margin": 0.01},
}


def gated(steps: list[dict[str, Any]] | None = None) -> Rollout:
    spec = make_spec(steps or [{"setWeight": 50}, {"analyze": {"duration": "1m"}}])
    raw = spec.model_dump(mode="json", by_alias=True, exclude_none=True)
    raw["analysis"]["signals"].append(COMPARE)
    raw["analysis"]["gateBudget"] = "2m"
    r = Rollout(ModelRolloutSpec.model_validate(raw))
    r.tick(V1)
    r.tick(V2)
    r.tick(V2, weight=50)  # the router shows 50%: the analyze step begins
    return r


def compared(kind: str) -> list[SignalResult]:
    raw = {"name": "accuracy", "kind": "compare", "verdict": kind, "message": "thin", "at": "x"}
    return [*passing(), SignalResult.model_validate(raw)]


def test_evidence_still_gathering_does_not_count_as_inconclusive() -> None:
    r = gated([{"setWeight": 50}, {"analyze": {"duration": "1h"}}])
    for _ in range(10):
        status = r.tick(V2, after=60, results=compared("Inconclusive"))
    assert status.phase == "Progressing"
    assert status.analysis is not None
    assert status.analysis.counters.inconclusive == 0


def at_the_gate(r: Rollout) -> ModelRolloutStatus:
    """The steps are done while compare is still Inconclusive: the rollout holds for its
    gateBudget (2m here), however many Inconclusive evaluations come, then pauses."""
    status = r.tick(V2, after=61, results=compared("Inconclusive"))
    for _ in range(10):
        status = r.tick(V2, after=11, results=compared("Inconclusive"))
        assert status.phase == "Progressing"
        assert status.canary_weight == 50
        assert "waiting for evidence" in next(c.message for c in status.conditions
                                              if c.type == "Progressing")  # fmt: skip
    return r.tick(V2, after=11, results=compared("Inconclusive"))


def test_the_last_step_pauses_instead_of_promoting_on_thin_evidence() -> None:
    r = gated()
    status = at_the_gate(r)
    assert (status.phase, status.pause and status.pause.reason) == ("Paused", "Inconclusive")
    assert status.pause is not None
    assert "accuracy (Inconclusive: thin)" in (status.pause.message or "")
    assert "waited its budget of 2m (analysis.gateBudget)" in (status.pause.message or "")
    assert status.canary_weight == 50  # still where it was, not at 100
    assert "Promoted" not in r.reasons()


def test_the_gate_opens_once_compare_passes() -> None:
    r = gated()
    r.tick(V2, after=61, results=compared("Inconclusive"))
    status = r.tick(V2, after=1, results=compared("Pass"))
    assert status.canary_weight == 100  # promoting now
    assert r.tick(V2, after=1, weight=100).phase == "Promoted"


def test_resume_after_a_gate_pause_waits_for_evidence_again() -> None:
    r = gated()
    at_the_gate(r)
    status = r.tick(V2, after=1, results=compared("Pass"), command=Command("c1", "resume"))
    assert status.canary_weight == 100


def test_a_human_promote_at_the_gate_overrides_it() -> None:
    r = gated()
    assert at_the_gate(r).phase == "Paused"
    status = r.tick(V2, after=60, results=compared("Inconclusive"),
                    command=Command("c1", "promote", "alice"))  # fmt: skip
    assert status.canary_weight == 100
    assert r.tick(V2, after=1, weight=100).phase == "Promoted"


def test_weight_since_records_when_the_router_showed_the_weight() -> None:
    r = gated()
    status = r.status
    assert status.weight_since is not None
    assert status.canary_weight == 50


def test_a_canary_the_operator_cannot_watch_is_rolled_back_with_the_fault() -> None:
    r = started()
    r.tick(V2, weight=25)
    # When the ticker reports that its ticks keep failing
    seen = Observations(r.now, V2, True, 25, None, None, fault="ticks keep failing: 500")
    step = advance(r.spec, r.status, seen)
    # Then the canary is rolled back, with the fault as the reason, and takes no traffic
    assert (step.status.phase, step.status.canary_weight) == ("RolledBack", 0)
    assert step.status.message == "ticks keep failing: 500"
    world = desired_world(r.spec, step.status)
    assert world is not None
    assert world.weight == 0


def test_a_humans_abort_goes_before_a_fault() -> None:
    r = started()
    seen = Observations(r.now, V2, False, None, None, Command("c1", "abort", "ana"), fault="x")
    step = advance(r.spec, r.status, seen)
    assert step.status.phase == "RolledBack"
    assert step.status.message == "aborted by ana"


def test_the_plan_is_the_steps_timed_length_the_machines_waits_and_the_gates_budget() -> None:
    # analyze 1m, a pause for a human: 60 s; a wait of one 30-s interval for each setWeight (2),
    # the analyze step and the gate; the gate's default budget of 30 minutes
    spec = make_spec(STEPS)
    assert planned_seconds(spec) == 60 + 4 * 30 + 1800


def test_each_compare_signals_looks_are_kept_in_status_until_the_next_canary() -> None:
    raw = rollout()["spec"]
    raw["analysis"]["signals"] = [COMPARE]
    spec = ModelRolloutSpec.model_validate(raw)
    r = Rollout(spec)
    r.tick(V1)
    r.tick(V2)
    look = Look(fraction=0.25, information=1e5, boundary=2.9)
    result = SignalResult(name="accuracy", kind="compare", verdict="Inconclusive", at="x",
                          look=look)  # fmt: skip
    r.tick(V2, after=60, weight=20, results=[result])
    plan = plans(spec, r.status, r.now + timedelta(seconds=60))["accuracy"]
    assert plan.looks == (look,)
    assert 0 < plan.fraction <= 1
    r.tick(V3)  # a new canary starts afresh
    assert plans(spec, r.status, r.now)["accuracy"].looks == ()


def test_no_weight_is_in_effect_between_asking_for_a_new_one_and_the_route_showing_it() -> None:
    """Issue 20: the evaluation runs with the status from before `advance`, and weightSince kept
    the old weight's start after a new weight was asked for, so the sample-ratio check compared
    the new weight with the old weight's window (an Error at every weight change, 60-s ticks)."""
    r = started([{"setWeight": 20}, {"pause": {"duration": "1m"}}, {"setWeight": 50},
                 {"pause": {}}])  # fmt: skip
    status = r.tick(V2)
    assert (status.canary_weight, status.weight_since) == (20, None)  # asked, not yet shown
    status = r.tick(V2, after=1)
    shown_at = status.weight_since
    assert status.canary_weight == 20
    assert shown_at is not None
    status = r.tick(V2, after=61, weight=20)  # the pause is over: 50% asked for
    assert (status.canary_weight, status.weight_since) == (50, None)
    status = r.tick(V2, after=60, weight=20)  # a slow router: still the old weight
    assert status.weight_since is None
    status = r.tick(V2, after=1, weight=50)
    assert status.weight_since is not None
    assert status.weight_since != shown_at
