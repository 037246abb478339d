"""The trap issue 22 must avoid, shown on the harness's Traefik: Traefik 3.6 does not implement
HTTPRoute `RequestMirror` (its GatewayClass does not advertise HTTPRouteRequestMirror), and a
rule that carries one answers 500 to every request while the route's status stays Accepted. A
router that wrote the standard filter blindly would take the model down and show green."""

from __future__ import annotations

import json
from typing import Any

import pytest

from modelrollout.testing.cluster import wait_for
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import NAME, Story, stable_behind_traefik
from modelrollout.testing.traefik import GATEWAY, GATEWAY_CLASS, Traefik

pytestmark = pytest.mark.cluster


def test_a_request_mirror_filter_answers_500_on_traefik_while_the_route_stays_accepted(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    # Given v1 serves behind Traefik, and Traefik's class does not advertise mirroring
    stable_behind_traefik(story, gateway, host, pods_metrics.url, [{"setWeight": 50}])
    listed = story.cluster.kubectl("get", "gatewayclass", GATEWAY_CLASS, "-o", "json").stdout
    features = {f["name"] for f in json.loads(listed)["status"].get("supportedFeatures", [])}
    assert "HTTPRouteRequestMirror" not in features
    # When a route of its own sends another host to the same Service, mirrored to it as well
    mirrored = f"mirror-{host}"
    route: dict[str, Any] = {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "mirrored", "namespace": story.namespace},
        "spec": {"parentRefs": [{"name": GATEWAY}], "hostnames": [mirrored], "rules": [{
            "backendRefs": [{"name": f"{NAME}-stable", "port": 80}],
            "filters": [{"type": "RequestMirror", "requestMirror": {
                "backendRef": {"name": f"{NAME}-stable", "port": 80}}}]}]}}  # fmt: skip
    story.cluster.kubectl("apply", "-f", "-", stdin=json.dumps(route))

    # Then Traefik says the route is Accepted
    def accepted() -> bool:
        got = story.get("httproute", "mirrored") or {}
        return any(c.get("type") == "Accepted" and c.get("status") == "True"
                   for p in (got.get("status") or {}).get("parents") or []
                   for c in p.get("conditions") or [])  # fmt: skip

    assert wait_for(accepted, timeout=60), story.get("httproute", "mirrored")
    # And yet every request to that host is answered 500 by the gateway, none by a pod
    assert wait_for(lambda: gateway.send(mirrored, 20) == {"HTTP 500": 20}, timeout=60), (
        gateway.send(mirrored, 20))  # fmt: skip
    # While the operator's own route, with no mirror, still reaches the model
    assert gateway.send(host, 20) == {"v1": 20}
