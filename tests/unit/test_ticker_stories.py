"""The ticker's stories against fakes it does not know are fakes: refusal, forbidden, a stale
read (409), a Prometheus outage, a notification failure, the fault limit, a correction."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from modelrollout.controller.tick import (
    FORBIDDEN,
    TICK_FAILED,
    UNSUPPORTED_ROUTER,
    Rollout,
)
from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.domain.judging import Measurement
from modelrollout.domain.lifecycle import REFUSED_CONDITION, ROUTE_CONDITION
from modelrollout.k8s.owner import ClusterError
from modelrollout.testing.fakes import FakeWorld
from modelrollout.testing.manifests import rollout

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NS, NAME = "ml", "fraud-detector"


def without_analysis(version: str = "v1") -> dict[str, Any]:
    manifest = rollout(version=version)
    del manifest["spec"]["analysis"]
    return manifest


def condition(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions", []) if c["type"] == kind), None)


def started(world: FakeWorld, manifest: dict[str, Any]) -> None:
    """Given a stable v1, and `manifest` (a new version) applied: the canary has started."""
    world.cluster.add(without_analysis("v1"))
    ticker = world.ticker()
    ticker.run(NS, NAME, T0)
    world.cluster.add(manifest)
    ticker.run(NS, NAME, T0 + timedelta(seconds=1))


def test_a_refusal_is_one_status_write_and_is_taken_back_by_the_next_tick() -> None:
    world = FakeWorld()
    world.routes.served = False
    world.cluster.add(without_analysis())
    ticker = world.ticker()
    # When no registered router serves the rollout's spec
    ticker.run(NS, NAME, T0)
    ticker.run(NS, NAME, T0 + timedelta(seconds=5))
    # Then the refusal is said once, in one write, and nothing is created
    status = world.cluster.status()
    assert status["message"] == UNSUPPORTED_ROUTER
    assert (condition(status, REFUSED_CONDITION) or {}).get("reason") == "UnsupportedRouter"
    assert world.cluster.status_writes == 1
    assert world.cluster.deployments == {}
    # When a router serves it, Then one write both acts and takes the refusal back
    world.routes.served = True
    ticker.run(NS, NAME, T0 + timedelta(seconds=10))
    status = world.cluster.status()
    assert world.cluster.status_writes == 2
    assert status["phase"] == "Promoted"
    assert "message" not in status
    assert (condition(status, REFUSED_CONDITION) or {}).get("status") == "False"


def test_a_forbidden_write_is_said_once_in_the_servers_words() -> None:
    world = FakeWorld()
    world.cluster.add(without_analysis())
    denied = ClusterError('deployments.apps is forbidden: User "system:sa" cannot patch', 403)
    world.cluster.faults.add("converge", denied, times=2)
    ticker = world.ticker()
    # When the role lacks a rule, on two ticks in a row
    ticker.run(NS, NAME, T0)
    ticker.run(NS, NAME, T0 + timedelta(seconds=5))
    # Then status and one Warning Event say so, naming what was denied
    status = world.cluster.status()
    assert status["message"].startswith(FORBIDDEN)
    assert "cannot patch" in status["message"]
    assert world.notifier.reasons().count("Forbidden") == 1


def test_a_tick_on_a_stale_read_changes_nothing_and_the_next_reads_afresh() -> None:
    world = FakeWorld()
    body = world.cluster.add(without_analysis())
    ticker = world.ticker()
    stale = Rollout.from_body(body)
    # Given another writer changed the object after it was read
    world.cluster.annotate(NS, NAME, {"note": "changed"})
    # When the tick acts on the old read, Then the write conflicts and nothing is decided
    assert ticker.tick(stale, T0) is None
    assert world.cluster.status_writes == 0
    assert world.notifier.sent == []
    assert world.cluster.deployments == {}
    # And the next run goes at once, on a fresh read, and acts
    assert ticker.memory(NS, NAME).stale
    ticker.run(NS, NAME, T0)
    assert world.cluster.status()["phase"] == "Promoted"
    assert world.notifier.reasons() == ["Initialized"]


def test_an_unreachable_prometheus_holds_the_canary_and_says_so_briefly() -> None:
    world = FakeWorld()
    world.source.answer = lambda _q: Measurement(
        error="Prometheus at http://127.0.0.1:9090: unreachable (cannot connect)"
    )
    started(world, rollout(version="v2"))
    ticker = world.ticker()
    # When the canary has its first weight and its evaluations cannot reach Prometheus
    for second in range(2, 200, 5):
        ticker.run(NS, NAME, T0 + timedelta(seconds=second))
    status = world.cluster.status()
    # Then it never promotes, every signal says why in a line, and traffic stays bounded
    assert status["phase"] in ("Progressing", "Paused", "RolledBack")
    assert status["stable"]["version"] == "v1"
    signal = status["analysis"]["signals"][0]
    assert signal["verdict"] == "Error"
    assert len(signal["message"]) < 120
    assert world.routes.weights[(NS, NAME)] <= 20


def test_a_failing_notifier_never_fails_the_tick() -> None:
    world = FakeWorld()
    world.notifier.broken = True
    world.cluster.add(without_analysis())
    assert world.ticker().run(NS, NAME, T0) is not None
    assert world.cluster.status()["phase"] == "Promoted"
    assert (NS, "fraud-detector-" + world.cluster.status()["stable"]["revision"]) in set(
        world.cluster.deployments
    )


def test_past_the_fault_limit_the_canary_loses_its_traffic_first() -> None:
    world = FakeWorld()
    started(world, without_analysis("v2"))
    ticker = world.ticker(fault_limit=3)
    ticker.run(NS, NAME, T0 + timedelta(seconds=2))
    assert world.routes.weights[(NS, NAME)] == 20
    # When converging fails three ticks in a row
    world.cluster.faults.add("converge", ClusterError("etcdserver: request timed out", 500), 3)
    for second in (3, 4, 5):
        ticker.run(NS, NAME, T0 + timedelta(seconds=second))
    # Then the route goes to stable, and the rollback is recorded with the reason
    status = world.cluster.status()
    assert world.routes.weights[(NS, NAME)] == 0
    assert status["phase"] == "RolledBack"
    assert f"{TICK_FAILED} 3 times in a row" in status["message"]
    assert world.notifier.reasons().count("TickFailed") == 2  # the first, and at the limit


def test_an_api_server_outage_is_not_a_fault_and_the_canary_is_judged_after_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = FakeWorld()
    started(world, without_analysis("v2"))
    ticker = world.ticker(fault_limit=3)
    ticker.run(NS, NAME, T0 + timedelta(seconds=2))
    assert world.routes.weights[(NS, NAME)] == 20
    # When the API server answers nothing for 5 ticks (a restart of 25 s at 5-s ticks), at the
    # status write and at converging
    down = ClusterError("writing status: no answer from https://127.0.0.1:6443", None,
                        unanswered=True)  # fmt: skip
    world.cluster.faults.add("write_status", down, 2)
    world.cluster.faults.add("converge", down, 3)
    caplog.set_level(logging.INFO, logger="modelrollout")
    for second in (5, 10, 15, 20, 25):
        ticker.run(NS, NAME, T0 + timedelta(seconds=second))
    # Then nothing took the canary's traffic, no fault was counted, and each failed tick logged
    # one line without a traceback
    assert world.routes.weights[(NS, NAME)] == 20
    assert world.cluster.status()["phase"] == "Progressing"
    assert "TickFailed" not in world.notifier.reasons()
    failed = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert len(failed) == 5
    assert all(r.exc_info is None and "\n" not in r.getMessage() for r in failed)
    # When it answers again, Then the rollout goes on where it was
    ticker.run(NS, NAME, T0 + timedelta(seconds=30))
    assert world.cluster.status()["phase"] == "Progressing"
    assert world.routes.weights[(NS, NAME)] == 20
    assert "ticks complete again" in caplog.text


def test_a_fault_logs_its_traceback_once_and_one_line_a_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    world = FakeWorld()
    started(world, without_analysis("v2"))
    ticker = world.ticker(fault_limit=5)
    world.cluster.faults.add("converge", ClusterError("etcdserver: request timed out", 500), 3)
    caplog.set_level(logging.INFO, logger="modelrollout")
    for second in (3, 4, 5):
        ticker.run(NS, NAME, T0 + timedelta(seconds=second))
    failed = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert [r.exc_info is not None for r in failed] == [True, False, False]
    assert all("etcdserver: request timed out" in r.getMessage() for r in failed)


def test_an_abort_is_applied_even_while_ticks_fail() -> None:
    world = FakeWorld()
    started(world, without_analysis("v2"))
    ticker = world.ticker(fault_limit=3)
    ticker.run(NS, NAME, T0 + timedelta(seconds=2))
    world.cluster.annotate(NS, NAME, {COMMAND_ANNOTATION: encode(new_command("abort", "ana"))})
    world.routes.faults.add("read", ClusterError("connection reset", None))
    ticker.run(NS, NAME, T0 + timedelta(seconds=3))
    assert world.routes.weights[(NS, NAME)] == 0
    assert world.cluster.status()["phase"] == "RolledBack"


def test_a_correction_is_said_as_a_warning_event() -> None:
    world = FakeWorld()
    world.cluster.add(without_analysis())
    ticker = world.ticker()
    ticker.run(NS, NAME, T0)
    world.cluster.corrections = ["Deployment fraud-detector-abc was deleted by another writer"]
    ticker.run(NS, NAME, T0 + timedelta(seconds=400))
    warnings = [e for _, e in world.notifier.sent if e.reason == "Corrected"]
    assert [e.type for e in warnings] == ["Warning"]
    assert "deleted" in warnings[0].message


def test_a_rollout_at_rest_writes_nothing_and_is_due_at_the_resync() -> None:
    world = FakeWorld()
    world.cluster.add(without_analysis())
    ticker = world.ticker(poll=2, resync=300)
    ticker.run(NS, NAME, T0)
    writes = world.cluster.status_writes
    assert ticker.run(NS, NAME, T0 + timedelta(seconds=1)) == 300
    assert world.cluster.status_writes == writes


def test_a_timed_step_is_due_when_it_ends() -> None:
    world = FakeWorld()
    manifest = without_analysis("v2")
    manifest["spec"]["strategy"]["steps"] = [{"setWeight": 20}, {"pause": {"duration": "30s"}}]
    started(world, manifest)
    ticker = world.ticker(poll=60)
    # the tick that sets a weight on the route looks again at once, to count it
    assert ticker.run(NS, NAME, T0 + timedelta(seconds=2)) == 0.0
    delay = ticker.run(NS, NAME, T0 + timedelta(seconds=2))  # counted: the pause has begun
    assert delay is not None
    assert 25 <= delay <= 30


def test_a_deleted_rollout_is_forgotten() -> None:
    world = FakeWorld()
    world.cluster.add(without_analysis())
    ticker = world.ticker()
    ticker.run(NS, NAME, T0)
    del world.cluster.rollouts[(NS, NAME)]
    assert ticker.run(NS, NAME, T0) is None
    # and the cluster adapter forgets what it wrote for it (its memory is bounded by the living)
    assert world.cluster.forgotten == [(NS, NAME)]


def test_a_route_its_gateway_refuses_is_said_in_a_condition_until_accepted() -> None:
    world = FakeWorld()
    world.cluster.add(without_analysis())
    world.routes.refused = "Gateway public does not accept HTTPRoute fraud-detector: NotAllowed"
    ticker = world.ticker()
    ticker.run(NS, NAME, T0)
    said = condition(world.cluster.status(), ROUTE_CONDITION) or {}
    assert said.get("status") == "False"
    assert "NotAllowed" in said.get("message", "")
    world.routes.refused = None
    ticker.run(NS, NAME, T0 + timedelta(seconds=5))
    assert (condition(world.cluster.status(), ROUTE_CONDITION) or {}).get("status") == "True"


def test_in_a_namespace_being_deleted_nothing_is_refused_or_said() -> None:
    world = FakeWorld()
    world.cluster.add(without_analysis())
    gone = ClusterError("unable to create new content in namespace ml because it is being "
                        "terminated", 403, terminating=True)  # fmt: skip
    world.cluster.faults.add("converge", gone)
    world.ticker().run(NS, NAME, T0)
    assert "message" not in world.cluster.status()
    assert "Forbidden" not in world.notifier.reasons()
