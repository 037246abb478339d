"""A router plugs in by its own module and one registry line: a test-only router
(testing/ledger.py), registered first, carries a whole rollout through the real ticker and
registry, with nothing else edited; its capabilities decide what admission refuses."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import pytest

from modelrollout.api import crd
from modelrollout.api.v1alpha1 import Capability, capability_rules, routers
from modelrollout.controller.tick import Ticker
from modelrollout.routers import registry
from modelrollout.routers.gateway_api import GatewayAPIRouter
from modelrollout.testing import ledger
from modelrollout.testing.fakes import FakeCluster, FakeNotifier, FakeSource
from modelrollout.testing.manifests import rollout

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def test_a_router_registered_by_one_line_carries_a_rollout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the test-only router, plugged in by one registry line
    monkeypatch.setattr(registry, "ROUTERS", [ledger.KIND, *registry.ROUTERS])
    monkeypatch.setattr(ledger.LedgerRouter, "ledger", [])
    cluster = FakeCluster()
    routers = functools.partial(registry.router_for, cast(Any, cluster))
    ticker = Ticker(cluster, routers, FakeSource(), FakeNotifier())
    manifest = rollout(version="v1")
    del manifest["spec"]["analysis"]
    manifest["spec"]["strategy"] = {"steps": [{"setWeight": 20}, {"setWeight": 60}]}
    cluster.add(manifest)
    ticker.run("ml", "fraud-detector", T0)
    # When a new version rolls out through the real ticker and registry
    manifest["spec"]["model"]["version"] = "v2"
    cluster.add(manifest)
    for second in range(1, 8):
        ticker.run("ml", "fraud-detector", T0 + timedelta(seconds=second))
    # Then every weight went through the test-only router, and the canary was promoted
    assert ledger.LedgerRouter.ledger == [0, 20, 60, 100, 0]
    assert cluster.status()["stable"]["version"] == "v2"


def test_a_plugged_router_that_cannot_match_headers_gets_rules_refusing_cohort_and_shadow() -> None:
    # Given the ledger router, which can express weights only
    assert ledger.LedgerRouter.capabilities == frozenset({Capability.WEIGHTS})
    # When a CRD is rendered with it plugged in
    schema = crd.spec_schema(ledger.TRAFFIC)
    # Then spec.traffic has its field, exactly one router is asked for in all,
    assert "ledger" in schema["properties"]["traffic"]["properties"]
    messages = [v["message"] for v in schema["properties"]["traffic"]["x-kubernetes-validations"]]
    assert "traffic needs exactly one of gatewayAPI or ledger" in messages
    # and cohort and shadow steps are refused while it names the router, naming the router and
    # the field
    refusal = [v for v in schema["x-kubernetes-validations"] if "traffic.ledger" in v["message"]]
    assert refusal == [{
        "rule": "!has(self.traffic.ledger) || !self.strategy.steps.exists(s, has(s.cohort))",
        "message": "spec.strategy.steps[].cohort: the router traffic.ledger cannot match "
                   "requests by header or cookie (it can: weights)",
        "fieldPath": ".strategy.steps"}, {
        "rule": "!has(self.traffic.ledger) || !self.strategy.steps.exists(s, has(s.shadow))",
        "message": "spec.strategy.steps[].shadow: the router traffic.ledger cannot copy "
                   "requests to an arm that answers no user (it can: weights)",
        "fieldPath": ".strategy.steps"}]  # fmt: skip
    # and the model side of the same rule says the same of a spec
    rule, _ = capability_rules(ledger.TRAFFIC)
    cohort = SimpleNamespace(cohort=object())
    weight = SimpleNamespace(cohort=None)
    assert not rule.holds(
        SimpleNamespace(
            traffic=SimpleNamespace(ledger=object()),
            strategy=SimpleNamespace(steps=[weight, cohort]),
        )
    )
    assert rule.holds(
        SimpleNamespace(
            traffic=SimpleNamespace(ledger=object()), strategy=SimpleNamespace(steps=[weight])
        )
    )
    assert rule.holds(SimpleNamespace(traffic=SimpleNamespace(ledger=None),
                                      strategy=SimpleNamespace(steps=[cohort])))  # fmt: skip


def test_the_product_routers_capabilities_come_from_their_spec_models() -> None:
    # The Gateway API router states what its field's model states, and can match headers,
    # so the product's CRD carries no refusal and renders as it did without plugged routers
    assert set(routers()) == {"gatewayAPI"}
    assert GatewayAPIRouter.capabilities == routers()["gatewayAPI"].CAPABILITIES
    assert Capability.HEADERS in GatewayAPIRouter.capabilities
    assert capability_rules(routers()) == ()
    assert crd.build_crd() == crd.build_crd({})
