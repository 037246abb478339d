"""A test-only router, plugged in by this file and one registry line (tests/unit/
test_router_plugin.py, tests/e2e/test_admission.py): it keeps every canary weight it is given in
a ledger, and can express weights only, so a cohort step on it is refused at admission."""

from __future__ import annotations

from datetime import datetime
from typing import ClassVar

from pydantic import Field

from modelrollout.api.v1alpha1 import ModelRolloutSpec, RouterSpec
from modelrollout.domain.machine import World
from modelrollout.domain.routes import Routes, canary_weight, two_arms
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers.base import Acceptance, Router
from modelrollout.routers.registry import RouterKind

ROLLOUT = "fraud-detector"


class LedgerTraffic(RouterSpec):
    """spec.traffic.ledger: the router's field (weights only: RouterSpec's default)."""

    book: str = Field(default="main", max_length=63)


class LedgerRouter:
    capabilities = LedgerTraffic.CAPABILITIES
    ledger: ClassVar[list[int]] = []  # shared by every instance: what the test reads

    def apply(self, routes: Routes) -> str | None:
        weight = canary_weight(routes, ROLLOUT)
        if weight is not None and (not self.ledger or self.ledger[-1] != weight):
            self.ledger.append(weight)
        return None

    def read(self) -> Routes | None:
        return two_arms(ROLLOUT, self.ledger[-1]) if self.ledger else None

    def acceptance(self, now: datetime) -> Acceptance:
        return Acceptance(accepted=True)

    def refuses(self, routes: Routes) -> str | None:
        return None

    def shape(self, world: World) -> World:
        return world


def build(_cluster: KubeCluster, _owner: Owner, _spec: ModelRolloutSpec) -> Router | None:
    return LedgerRouter()


# Its registry line, and its field for a CRD rendered with it (api/crd.py's build_crd).
KIND = RouterKind("ledger", build)
TRAFFIC: dict[str, type[RouterSpec]] = {"ledger": LedgerTraffic}
