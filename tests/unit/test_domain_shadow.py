"""The shadow step, told as rollouts (domain/machine.py), and its plan (domain/routes.py) as the
Gateway API router writes it for each way a data plane mirrors (routers/gateway_api.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelrollout.api.v1alpha1 import (
    ModelRolloutSpec,
    ModelRolloutStatus,
    RevisionRef,
    SignalResult,
)
from modelrollout.domain.machine import (
    USER_ERRORS,
    Observations,
    advance,
    desired_world,
    evaluation_due,
)
from modelrollout.domain.routes import Mirror, mirror_of, routes_of
from modelrollout.k8s.owner import Owner
from modelrollout.routers.gateway_api import build_mirror, build_route, routes_of_route
from modelrollout.testing.manifests import rollout

V1 = RevisionRef(revision="aaaaaaaaaa", version="v1")
V2 = RevisionRef(revision="bbbbbbbbbb", version="v2")
PAIRED = [{"name": "accuracy", "paired": {"test": "correctness", "margin": 0.01}},
          {"name": "agreement", "paired": {"test": "disagreement", "max": 0.02}}]  # fmt: skip


def _spec(**shadow: Any) -> ModelRolloutSpec:
    raw = rollout()["spec"]
    raw["replicas"] = 10
    raw["strategy"]["steps"] = [{"shadow": {"share": 20, "duration": "10m", **shadow}},
                                {"setWeight": 50}]  # fmt: skip
    raw["analysis"]["signals"] += PAIRED
    return ModelRolloutSpec.model_validate(raw)


class Shadowed:
    """v1 stable, v2 at its shadow step; each tick says what the route and the signals show."""

    def __init__(self, spec: ModelRolloutSpec | None = None) -> None:
        self.spec = spec or _spec()
        self.now = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
        self.status = ModelRolloutStatus()
        self.events: list[str] = []
        self.tick(V1)
        self.tick(V2)

    def tick(self, desired: RevisionRef, *, after: float = 0, mirrored: bool | None = True,
             results: list[SignalResult] | None = None, refused: str | None = None,
             weight: int | None = None) -> ModelRolloutStatus:  # fmt: skip
        self.now += timedelta(seconds=after)
        seen = Observations(self.now, desired, True,
                            self.status.canary_weight if weight is None else weight, results,
                            mirrored=mirrored, mirror_refused=refused)  # fmt: skip
        step = advance(self.spec, self.status, seen)
        wire = step.status.model_dump(mode="json", by_alias=True, exclude_none=True)
        self.status = ModelRolloutStatus.model_validate(wire)  # only what status would keep
        self.events += [f"{e.reason}: {e.message}" for e in step.events]
        return self.status


def _results(*verdicts: tuple[str, str]) -> list[SignalResult]:
    return [SignalResult(name=n, kind="paired", verdict=v, at="x", message=f"{n} {v}")  # type: ignore[arg-type]
            for n, v in verdicts]  # fmt: skip


def test_a_shadow_step_mirrors_with_no_weight_and_sizes_the_candidate_for_its_share() -> None:
    r = Shadowed()
    assert (r.status.phase, r.status.current_step, r.status.canary_weight) == ("Progressing", 0, 0)
    world = desired_world(r.spec, r.status)
    assert world is not None
    assert world.shadow is not None
    assert world.replicas[V2.revision] == 2, "20% of 10 replicas"
    plan = routes_of("fraud-detector", world)
    assert mirror_of(plan) == Mirror("fraud-detector-shadow", 20)
    assert plan.split() == {"fraud-detector-stable": 100, "fraud-detector-canary": 0}
    assert evaluation_due(r.spec, r.status, r.now), "judged while mirrored, though weight 0"


def test_it_passes_once_every_paired_signal_passed_then_users_come() -> None:
    r = Shadowed()
    r.tick(V2, after=30, results=_results(("accuracy", "Inconclusive"), ("agreement", "Pass")))
    assert r.status.current_step == 0
    assert r.status.mirror_since is not None
    r.tick(V2, after=30, results=_results(("accuracy", "Pass"), ("agreement", "Pass")))
    assert r.status.current_step == 1
    assert r.status.mirror_since is None
    assert any(e.startswith("ShadowPassed") for e in r.events)
    world = desired_world(r.spec, r.status)
    assert world is not None
    assert world.shadow is None, "the next step's plan has no mirror"
    assert r.status.canary_weight == 50


def test_a_failing_paired_signal_rolls_back_before_any_user_reached_it() -> None:
    r = Shadowed()
    r.tick(V2, after=30, results=_results(("accuracy", "Fail"), ("agreement", "Pass")))
    assert r.status.phase == "RolledBack"
    assert "accuracy Fail" in (r.status.message or "")
    world = desired_world(r.spec, r.status)
    assert world is not None
    assert world.shadow is None
    assert mirror_of(routes_of("fraud-detector", world)) is None


def test_users_errors_rising_take_the_mirror_off_at_once() -> None:
    harm = SignalResult(name=USER_ERRORS, kind="sampleRatio", verdict="Fail", at="x",
                        message="users' error rate 9% since the mirror went on")  # fmt: skip
    r = Shadowed()
    r.tick(V2, after=30, results=[*_results(("accuracy", "Pass")), harm])
    assert r.status.phase == "RolledBack"
    assert "user-errors: users' error rate 9%" in (r.status.message or "")
    # whatever failureLimit allows the other signals
    spec = _spec()
    assert spec.analysis is not None
    tolerant = spec.model_copy(update={"analysis": spec.analysis.model_copy(
        update={"failure_limit": 3})})  # fmt: skip
    r = Shadowed(tolerant)
    r.tick(V2, after=30, results=[*_results(("accuracy", "Pass")), harm])
    assert r.status.phase == "RolledBack"
    assert "the mirror was removed: users' error rate 9%" in (r.status.message or "")


def test_past_its_duration_undecided_it_asks_a_human() -> None:
    r = Shadowed()
    r.tick(V2, after=30, results=_results(("accuracy", "Inconclusive"), ("agreement", "Pass")))
    r.tick(V2, after=600, results=_results(("accuracy", "Inconclusive"), ("agreement", "Pass")))
    assert r.status.phase == "Paused"
    assert "accuracy (Inconclusive" in (r.status.pause.message if r.status.pause else "")


def test_a_data_plane_that_cannot_mirror_fails_the_step_with_its_reason() -> None:
    r = Shadowed()
    said = "the shadow step needs HTTPRouteRequestMirror, which GatewayClass x does not list"
    r.tick(V2, after=5, mirrored=False, refused=said)
    assert r.status.phase == "RolledBack"
    assert said in (r.status.message or "")


def test_a_mirror_not_in_effect_holds_then_rolls_back_past_the_deadline() -> None:
    r = Shadowed()
    r.tick(V2, after=5, mirrored=False, results=_results(("accuracy", "Pass"),
                                                         ("agreement", "Pass")))  # fmt: skip
    assert (r.status.phase, r.status.current_step) == ("Progressing", 0), "not counted unmirrored"
    r.tick(V2, after=601, mirrored=False)
    assert r.status.phase == "RolledBack"
    assert "mirror was not in effect" in (r.status.message or "")


# --- the plan, written for each way of mirroring ------------------------------------------------

OWNER = Owner(namespace="ns", name="fraud-detector", uid="u-1")


def test_the_router_writes_the_standard_filter_or_a_traefik_service_and_reads_either_back(
) -> None:  # fmt: skip
    r = Shadowed(_spec(match=[{"headers": [{"name": "x-path", "exact": "predict"}]}]))
    world = desired_world(r.spec, r.status)
    assert world is not None
    plan = routes_of("fraud-detector", world)
    assert [rule.mirror is not None for rule in plan.rules] == [True, False], "only the match"
    traffic = r.spec.traffic.gateway_api
    assert traffic is not None
    standard = build_route(OWNER, traffic, 80, plan, "filter")
    (mirrored, rest) = standard["spec"]["rules"]
    assert mirrored["filters"] == [{"type": "RequestMirror", "requestMirror": {
        "backendRef": {"name": "fraud-detector-shadow", "port": 80}, "percent": 20}}]  # fmt: skip
    assert "filters" not in rest
    assert routes_of_route(standard) == plan
    traefik = build_route(OWNER, traffic, 80, plan, "traefik")
    rule = traefik["spec"]["rules"][0]
    assert "filters" not in rule, "Traefik answers 500 for a rule with the standard filter"
    assert rule["backendRefs"][0] == {"group": "traefik.io", "kind": "TraefikService",
                                      "name": "fraud-detector-mirror", "weight": 100}  # fmt: skip
    service = build_mirror(OWNER, 80, Mirror("fraud-detector-shadow", 20))
    assert service["spec"]["mirroring"]["maxBodySize"] == 1 << 20
    assert routes_of_route(traefik, {"fraud-detector-mirror": service}) == plan
    unmirrored = build_route(OWNER, traffic, 80, plan, None)
    assert all("filters" not in x for x in unmirrored["spec"]["rules"])
