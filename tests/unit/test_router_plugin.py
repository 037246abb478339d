"""A router plugs in by its own module and one registry line: a test-only router, registered
first, carries a whole rollout through the real ticker and registry, with nothing else edited."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.controller.tick import Ticker
from modelrollout.domain.machine import World
from modelrollout.domain.routes import Routes, canary_weight, two_arms
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers import registry
from modelrollout.routers.base import Acceptance, Capability, Router
from modelrollout.testing.fakes import FakeCluster, FakeNotifier, FakeSource
from modelrollout.testing.manifests import rollout

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


class LedgerRouter:
    """The test-only router: it keeps every weight it is given in a ledger."""

    capabilities = frozenset({Capability.WEIGHTS})
    ledger: list[int] = []  # noqa: RUF012 (the ledger is shared by every instance on purpose)

    def apply(self, routes: Routes) -> str | None:
        weight = canary_weight(routes, "fraud-detector")
        if weight is not None and (not self.ledger or self.ledger[-1] != weight):
            self.ledger.append(weight)
        return None

    def read(self) -> Routes | None:
        return two_arms("fraud-detector", self.ledger[-1]) if self.ledger else None

    def acceptance(self, now: datetime) -> Acceptance:
        return Acceptance(accepted=True)

    def shape(self, world: World) -> World:
        return world


def build(_cluster: KubeCluster, _owner: Owner, _spec: ModelRolloutSpec) -> Router | None:
    return LedgerRouter()


def test_a_router_registered_by_one_line_carries_a_rollout(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given the test-only router, plugged in by one registry line
    monkeypatch.setattr(registry, "ROUTERS", [registry.RouterKind("ledger", build),
                                              *registry.ROUTERS])  # fmt: skip
    LedgerRouter.ledger = []
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
    assert LedgerRouter.ledger == [0, 20, 60, 100, 0]
    assert cluster.status()["stable"]["version"] == "v2"
