"""The bake, told as rollouts: after its steps the canary takes the traffic (all of it, or all but
the holdback) while the previous revision stays warm; a failure sends everything back at once
and the revision is remembered as rejected; a clean bake makes it stable."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from test_domain_machine import V1, V2, V3, Rollout, make_spec, passing, verdict

from modelrollout.domain.machine import Command, Observations, advance, desired_world, next_due

STEPS: list[dict[str, Any]] = [{"setWeight": 50}]


def baking(holdback: int | None = 10, duration: str = "10m", **changes: Any) -> Rollout:
    """Given v1 stable and v2 past its last step, into its bake."""
    bake: dict[str, Any] = {"duration": duration}
    if holdback is not None:
        bake["holdback"] = {"percent": holdback}
    r = Rollout(make_spec(STEPS, bake=bake, scaleDownDelay="30s", **changes))
    r.tick(V1)
    r.tick(V2)
    r.tick(V2, weight=50, results=passing())  # the last step is done: sized up for promotion
    status = r.tick(V2, after=1, results=passing())
    assert (status.phase, status.canary, status.stable) == ("Baking", V2, V1)
    return r


def test_after_the_last_step_the_canary_bakes_with_the_holdback_on_a_warm_previous() -> None:
    r = baking(holdback=10)
    status = r.status
    assert status.canary_weight == 90
    world = desired_world(r.spec, status)
    assert world is not None
    # both at full size: the previous one takes everything back with nothing to scale up
    assert world.replicas == {V1.revision: 4, V2.revision: 4}
    assert (world.stable, world.canary, world.weight) == (V1.revision, V2.revision, 90)
    assert r.reasons()[-1] == "Baking"
    assert "90%" in r.events[-1].message
    assert "v1 stays warm with 10%" in r.events[-1].message
    progressing = next(c for c in status.conditions if c.type == "Progressing")
    assert (progressing.status, progressing.reason) == ("True", "Baking")


def test_the_bake_waits_for_the_route_to_show_the_promoted_weight() -> None:
    r = Rollout(make_spec(STEPS, bake={"duration": "10m", "holdback": {"percent": 5}}))
    r.tick(V1)
    r.tick(V2)
    r.tick(V2, weight=50, results=passing())
    status = r.tick(V2, after=1, weight=50, results=passing())  # the router still shows 50
    assert (status.phase, status.canary_weight) == ("Progressing", 95)
    status = r.tick(V2, after=1, weight=95, results=passing())
    assert status.phase == "Baking"


def test_a_clean_bake_makes_the_canary_stable_and_then_the_previous_goes() -> None:
    r = baking()
    status = r.tick(V2, after=300, results=passing())
    assert status.phase == "Baking"  # half way
    status = r.tick(V2, after=301, results=passing())
    assert (status.phase, status.stable, status.canary) == ("Promoted", V2, None)
    assert status.history[-1].outcome == "Promoted"
    assert "bake of 10m" in status.history[-1].reason
    world = desired_world(r.spec, status)
    assert world is not None
    assert (world.replicas, world.weight) == ({V2.revision: 4, V1.revision: 4}, 0)
    status = r.tick(V2, after=31)
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.replicas == {V2.revision: 4}


def test_a_failure_in_the_bake_sends_everything_back_at_once_and_says_bake_failed() -> None:
    r = baking()
    status = r.tick(V2, after=60, results=verdict("Fail"))
    assert (status.phase, status.canary_weight, status.stable) == ("RolledBack", 0, V1)
    world = desired_world(r.spec, status)
    assert world is not None
    assert world.weight == 0
    # v1 was at full size all along; v2 keeps its pods for scaleDownDelay, then goes
    assert world.replicas == {V1.revision: 4, V2.revision: 4}
    later = desired_world(r.spec, r.tick(V2, after=31))
    assert later is not None
    assert later.replicas == {V1.revision: 4, V2.revision: 0}
    degraded = next(c for c in status.conditions if c.type == "Degraded")
    assert (degraded.status, degraded.reason) == ("True", "BakeFailed")
    assert status.message is not None
    assert status.message.startswith("bake failed: signal")
    assert status.history[-1].outcome == "RolledBack"
    assert r.reasons()[-1] == "RolledBack"


def test_a_resync_of_the_rejected_spec_never_promotes_it_and_retry_does_start_it_again() -> None:
    r = baking()
    r.tick(V2, after=60, results=verdict("Fail"))
    # When the same spec is applied again and again (a GitOps resync), for longer than the bake
    for _ in range(30):
        status = r.tick(V2, after=60)
        assert (status.phase, status.stable, status.canary_weight) == ("RolledBack", V1, 0)
    assert "Promoted" not in r.reasons()
    # When a human says retry, Then the revision starts again as a canary from step 0
    status = r.tick(V2, command=Command("c1", "retry", "alice"))
    assert (status.phase, status.canary, status.current_step) == ("Progressing", V2, 0)


def test_the_bake_ends_only_on_a_clean_measurement() -> None:
    r = baking()
    status = r.tick(V2, after=601, results=verdict("Error"))
    assert status.phase == "Baking"
    status = r.tick(V2, after=1)  # no measurement since: still not clean
    assert status.phase == "Baking"
    status = r.tick(V2, after=1, results=passing())
    assert status.phase == "Promoted"


def test_no_data_in_the_bake_does_not_pause_it_for_a_human() -> None:
    r = baking()
    for _ in range(10):
        status = r.tick(V2, after=10, results=verdict("NoData"))
        assert status.phase == "Baking"


def test_without_a_holdback_the_canary_takes_everything_and_the_previous_stays_warm() -> None:
    r = baking(holdback=None)
    world = desired_world(r.spec, r.status)
    assert world is not None
    assert (world.weight, world.replicas[V1.revision]) == (100, 4)


def test_a_fault_in_the_bake_rolls_back() -> None:
    r = baking()
    seen = Observations(r.now + timedelta(seconds=5), V2, True, 90, fault="Prometheus gone")
    status = advance(r.spec, r.status, seen).status
    assert (status.phase, status.canary_weight) == ("RolledBack", 0)
    assert status.message == "bake failed: Prometheus gone"


def test_promote_during_the_bake_ends_it_naming_the_user_and_abort_rolls_back() -> None:
    r = baking()
    status = r.tick(V2, after=5, command=Command("c1", "promote", "alice"))
    assert (status.phase, status.stable) == ("Promoted", V2)
    assert "alice" in status.history[-1].reason
    r = baking()
    status = r.tick(V2, after=5, command=Command("c2", "abort", "bob"))
    assert (status.phase, status.stable) == ("RolledBack", V1)
    assert status.message == "bake failed: aborted by bob"


def test_a_new_revision_during_the_bake_replaces_it_against_the_old_stable() -> None:
    r = baking()
    status = r.tick(V3, after=5)
    assert (status.phase, status.canary, status.stable) == ("Progressing", V3, V1)
    assert status.history[-1].outcome == "Superseded"


def test_the_end_of_the_bake_asks_for_a_tick() -> None:
    r = baking(duration="10m", analysis=None, progressDeadline="1h")
    assert next_due(r.spec, r.status, r.now) == r.now + timedelta(minutes=10)
    status = r.tick(V2, after=600)
    assert status.phase == "Promoted"
