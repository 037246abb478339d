"""An A/B/n rollout through the ticker over fakes: the candidates' Deployments and Services are
created, the route carries every arm by its share, each candidate is measured against the
champion by its own version, a worse one is eliminated, the better one wins and goes on as the
canary, and is promoted; the arms' Services go once nothing routes to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from modelrollout.analysis.series import Increases
from modelrollout.testing.fakes import FakeWorld
from modelrollout.testing.manifests import abn_rollout

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)
NS, NAME = "ml", "fraud-detector"
CHAMPION = "2026-11-20"  # spec.model's version: the first revision, made stable at once
ACCURACY = {"2026-11-20": 0.90, "v3": 0.96, "v4": 0.85, "v5": 0.90}


def manifest() -> dict[str, Any]:
    m = abn_rollout(NAME)
    m["spec"]["analysis"]["signals"] = [{"name": "accuracy", "compare": {
        "successes": 'ok_total{version="{{ version }}"}',
        "total": 'all_total{version="{{ version }}"}', "margin": 0.01}}]  # fmt: skip
    m["spec"]["analysis"]["interval"] = "1m"
    m["spec"]["strategy"] = {"abn": {"duration": "1h", "startShare": 50},
                             "steps": [{"setWeight": 50}]}  # fmt: skip
    return m


def counted(selector: str) -> Increases:
    version = selector.split('version="')[1].split('"', maxsplit=1)[0]
    total = 10000.0
    n = total * ACCURACY[version] if selector.startswith("ok_total") else total
    return Increases(by={"": n}, periods={"": [n]})


def test_the_better_candidate_is_named_built_routed_and_promoted() -> None:
    world = FakeWorld()
    world.source.counted = counted
    world.cluster.add(manifest())
    ticker = world.ticker()
    now = T0
    ticker.run(NS, NAME, now)  # the first revision is stable at once
    now += timedelta(seconds=5)
    ticker.run(NS, NAME, now)  # a set of candidates beside it: the phase starts
    status = world.cluster.status()
    assert {a["version"]: a["share"] for a in status["arms"]} == {CHAMPION: 34, "v3": 33,
                                                                   "v4": 33}  # fmt: skip
    plan = world.routes.plans[(NS, NAME)]
    assert plan.split() == {f"{NAME}-stable": 34, f"{NAME}-arm1": 33, f"{NAME}-arm2": 33}
    deployments = {name for (_, name) in world.cluster.deployments}
    revisions = {a["revision"] for a in status["arms"]}
    assert {f"{NAME}-{r}" for r in revisions} <= deployments
    assert {f"{NAME}-arm1", f"{NAME}-arm2"} <= {name for (_, name) in world.cluster.services}
    for _ in range(3):
        now += timedelta(seconds=61)
        ticker.run(NS, NAME, now)
    status = world.cluster.status()
    states = {a["version"]: a["state"] for a in status["arms"]}
    assert states == {CHAMPION: "Running", "v3": "Won", "v4": "Eliminated"}
    v4 = next(a for a in status["arms"] if a["version"] == "v4")
    assert v4["estimate"] < 0  # eliminated, no longer measured: its last standing is kept
    assert v4["upper"] < 0
    reasons = world.notifier.reasons()
    assert reasons.index("ArmEliminated") <= reasons.index("WinnerNamed")
    assert status["canary"]["version"] == "v3"
    for _ in range(6):
        now += timedelta(seconds=61)
        ticker.run(NS, NAME, now)
    status = world.cluster.status()
    assert (status["phase"], status["stable"]["version"]) == ("Promoted", "v3")
    assert world.routes.plans[(NS, NAME)].split() == {f"{NAME}-stable": 100, f"{NAME}-canary": 0}
    # and once the losers' Deployments went with scaleDownDelay, so did the arms' Services
    for _ in range(2):
        now += timedelta(seconds=61)
        ticker.run(NS, NAME, now)
    assert {name for (_, name) in world.cluster.services} == {f"{NAME}-stable", f"{NAME}-canary"}
