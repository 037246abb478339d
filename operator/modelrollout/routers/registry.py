"""Which router serves a rollout: one line per router module. A router is its module (the
Router protocol of routers/base.py) plus its line here; the ticker, the harness and the e2e
stories reach it only through `router_for`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers import gateway_api
from modelrollout.routers.base import Router

Build = Callable[[KubeCluster, Owner, ModelRolloutSpec], Router | None]


@dataclass(frozen=True)
class RouterKind:
    """A router: the name of its key under spec.traffic, and how to build it for a rollout
    (None when the spec does not ask for it)."""

    name: str
    build: Build


ROUTERS: list[RouterKind] = [
    RouterKind("gatewayAPI", gateway_api.build),
]


def router_for(cluster: KubeCluster, owner: Owner, spec: ModelRolloutSpec) -> Router | None:
    """The router the spec's `traffic` names, or None when no registered router serves it."""
    for kind in ROUTERS:
        router = kind.build(cluster, owner, spec)
        if router is not None:
            return router
    return None
