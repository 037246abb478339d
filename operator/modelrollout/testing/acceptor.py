"""A stand-in Gateway API controller for the benchmarks on kwok nodes, as kwok stands in for
kubelets: it writes `Accepted=True` at each HTTPRoute's current generation for its parentRefs,
and nothing else (no data plane). The operator counts a step's weight only once a controller
accepted the route, so a benchmark without a gateway would never promote; the e2e stories use
Traefik instead. Its own requests are counted, so that a benchmark can leave them out of the
operator's figures."""

from __future__ import annotations

import threading
from typing import Any

from kubernetes import client

from modelrollout.routers.gateway_api import GROUP, PLURAL, VERSION, unaccepted_parent

CONTROLLER = "modelrollout.io/bench-acceptor"


def _status(route: dict[str, Any]) -> dict[str, Any]:
    generation = route["metadata"].get("generation")
    condition = {"type": "Accepted", "status": "True", "reason": "Accepted", "message": "bench",
                 "observedGeneration": generation,
                 "lastTransitionTime": "2026-01-01T00:00:00Z"}  # fmt: skip
    resolved = {**condition, "type": "ResolvedRefs", "reason": "ResolvedRefs"}
    return {"status": {"parents": [
        {"parentRef": ref, "controllerName": CONTROLLER, "conditions": [condition, resolved]}
        for ref in (route.get("spec") or {}).get("parentRefs") or []]}}  # fmt: skip


class RouteAcceptor:
    """Lists every HTTPRoute each `interval` seconds and accepts those not yet accepted at
    their generation; `requests` counts its own calls to the API server."""

    def __init__(self, api: client.ApiClient, interval: float = 0.5) -> None:
        self._objects = client.CustomObjectsApi(api)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="route-acceptor")
        self.requests = 0

    def start(self) -> RouteAcceptor:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.once()
            except client.ApiException:
                continue  # a route changed or went meanwhile: the next pass sees it

    def once(self) -> None:
        listed: Any = self._objects.list_cluster_custom_object(GROUP, VERSION, PLURAL)
        self.requests += 1
        for route in listed["items"]:
            if unaccepted_parent(route, current=True) is None:
                continue
            meta = route["metadata"]
            self._objects.patch_namespaced_custom_object_status(
                GROUP, VERSION, meta["namespace"], PLURAL, meta["name"], _status(route)
            )
            self.requests += 1
