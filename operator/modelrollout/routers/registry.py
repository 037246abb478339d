"""Which router serves a rollout: one line per router module."""

from __future__ import annotations

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.k8s.cluster import KubeCluster
from modelrollout.k8s.owner import Owner
from modelrollout.routers.base import Router
from modelrollout.routers.gateway_api import GatewayAPIRouter


def router_for(cluster: KubeCluster, owner: Owner, spec: ModelRolloutSpec) -> Router | None:
    """The router the spec's `traffic` names, or None when it names one not implemented."""
    if spec.traffic.gateway_api is not None:
        return GatewayAPIRouter(cluster, owner, spec.traffic.gateway_api, spec.service.port)
    return None  # istio and replica-ratio routers come later
