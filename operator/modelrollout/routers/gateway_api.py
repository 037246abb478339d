"""Gateway API router: an owned HTTPRoute `NAME` with two weighted backendRefs.

`spec.rules` is an atomic list, so a weight change is get, modify, put with the resourceVersion
read, retried on conflict: a concurrent writer is never overwritten blindly.
"""

from __future__ import annotations

from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from modelrollout.api.v1alpha1 import GatewayAPITraffic
from modelrollout.domain.revision import canary_service, stable_service
from modelrollout.k8s.objects import Manifest, Owner, error_message
from modelrollout.routers.base import RouterError

GROUP, VERSION, PLURAL = "gateway.networking.k8s.io", "v1", "httproutes"
CONFLICT_RETRIES = 5


def build_route(
    owner: Owner, traffic: GatewayAPITraffic, port: int, canary_weight: int
) -> Manifest:
    spec: Manifest = {
        "parentRefs": [r.model_dump(by_alias=True, exclude_none=True) for r in traffic.parent_refs],
        "rules": [{"backendRefs": _backends(owner.name, port, canary_weight)}],
    }
    if traffic.hostnames:
        spec["hostnames"] = list(traffic.hostnames)
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "HTTPRoute",
        "metadata": owner.metadata(owner.name, {}),
        "spec": spec,
    }


def _backends(name: str, port: int, canary_weight: int) -> list[Manifest]:
    return [
        {"name": stable_service(name), "port": port, "weight": 100 - canary_weight},
        {"name": canary_service(name), "port": port, "weight": canary_weight},
    ]


def canary_weight_of(route: Manifest, name: str) -> int | None:
    for rule in route.get("spec", {}).get("rules", []):
        for backend in rule.get("backendRefs", []):
            if backend.get("name") == canary_service(name):
                weight: int = backend.get("weight", 1)
                return weight
    return None


class GatewayAPIRouter:
    def __init__(
        self, api: client.ApiClient, owner: Owner, traffic: GatewayAPITraffic, port: int
    ) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._owner = owner
        self._traffic = traffic
        self._port = port
        # The route as read_weight saw it: set_weight's first attempt starts from it instead of
        # reading again (a router lives for one tick; a stale read only costs a 409 and a retry).
        self._seen: Manifest | None = None
        self._has_seen = False

    def _get(self) -> Manifest | None:
        try:
            route = cast(
                Manifest,
                self._objects.get_namespaced_custom_object(
                    GROUP, VERSION, self._owner.namespace, PLURAL, self._owner.name
                ),
            )
        except ApiException as error:
            if error.status == 404:
                return None
            where = self._where()
            raise RouterError(f"reading HTTPRoute {where}: {error_message(error)}") from error
        return route

    def set_weight(self, canary_weight: int) -> None:
        desired = build_route(self._owner, self._traffic, self._port, canary_weight)
        for attempt in range(CONFLICT_RETRIES):
            current = self._seen if attempt == 0 and self._has_seen else self._get()
            try:
                if current is None:
                    self._objects.create_namespaced_custom_object(
                        GROUP, VERSION, self._owner.namespace, PLURAL, desired
                    )
                    return
                self._owned_or_fail(current)
                if current["spec"] == {**current["spec"], **desired["spec"]}:
                    return  # already so: no write
                updated: dict[str, Any] = {
                    **current,
                    "spec": {**current["spec"], **desired["spec"]},
                }
                self._objects.replace_namespaced_custom_object(
                    GROUP, VERSION, self._owner.namespace, PLURAL, self._owner.name, updated
                )
                return
            except ApiException as error:
                if error.status == 409:  # changed since we read it, or created meanwhile
                    continue
                where = self._where()
                raise RouterError(f"writing HTTPRoute {where}: {error_message(error)}") from error
        raise RouterError(
            f"HTTPRoute {self._where()} kept changing; gave up after {CONFLICT_RETRIES} tries"
        )

    def read_weight(self) -> int | None:
        route = self._seen = self._get()
        self._has_seen = True
        return None if route is None else canary_weight_of(route, self._owner.name)

    def _owned_or_fail(self, route: Manifest) -> None:
        owners = route.get("metadata", {}).get("ownerReferences", [])
        if not any(o.get("uid") == self._owner.uid for o in owners):
            raise RouterError(
                f"HTTPRoute {self._where()} exists and is not owned by this ModelRollout; "
                "it is left untouched (rename one of them)"
            )

    def _where(self) -> str:
        return f"{self._owner.namespace}/{self._owner.name}"
