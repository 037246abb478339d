"""The shadow step's own checks (the mirror's share, the users' errors) and how the Gateway API
router decides to mirror from what each parent Gateway's class advertises, with a cluster fake
that holds the Gateways and GatewayClasses."""

from __future__ import annotations

from typing import Any

import pytest

from modelrollout.analysis.evaluate import unstamped
from modelrollout.api.v1alpha1 import GatewayAPITraffic, SampleRatio
from modelrollout.domain.signals import judge_mirror_ratio, judge_user_errors
from modelrollout.k8s.owner import Owner
from modelrollout.routers.gateway_api import GatewayAPIRouter

AT = "2026-12-06T00:00:00Z"
CHECK = SampleRatio()


def test_a_data_plane_that_does_not_mirror_is_an_error_and_a_real_mirror_passes() -> None:
    missing = judge_mirror_ratio(CHECK, 0, 2000, slack=40, share=20, at=AT)
    assert missing is not None
    assert missing.verdict == "Error"
    assert "mirror ratio mismatch" in (missing.message or "")
    fine = judge_mirror_ratio(CHECK, 410, 2000, slack=40, share=20, at=AT)
    assert fine is not None
    assert fine.verdict == "Pass"
    every = judge_mirror_ratio(CHECK, 1990, 2000, slack=40, share=100, at=AT)
    assert every is not None
    assert every.verdict == "Pass", "what one scrape adds at the window's ends is allowed"
    assert judge_mirror_ratio(CHECK, 5, 50, slack=0, share=20, at=AT) is None, "too few yet"


def test_the_slack_is_what_keeps_a_correct_mirror_from_failing_on_scrape_edges() -> None:
    # 100% mirrored, 300 requests a second, the two scrapes a second apart at one end
    tight = judge_mirror_ratio(CHECK, 2700, 3000, slack=0, share=100, at=AT)
    loose = judge_mirror_ratio(CHECK, 2700, 3000, slack=600, share=100, at=AT)
    assert tight is not None
    assert loose is not None
    assert (tight.verdict, loose.verdict) == ("Error", "Pass")


def test_users_errors_rising_with_the_mirror_fail_and_a_flat_rate_passes() -> None:
    rising = judge_user_errors((5, 5000), (300, 5000), AT)
    assert rising is not None
    assert rising.verdict == "Fail"
    assert "since the mirror went on" in (rising.message or "")
    flat = judge_user_errors((10, 5000), (12, 5000), AT)
    assert flat is not None
    assert flat.verdict == "Pass"
    assert judge_user_errors((0, 0), (3, 100), AT) is None


@pytest.mark.parametrize(("selector", "expected"), [
    ('model_requests_total{model="m",version="{{ version }}"}',
     'model_requests_total{model="m",version="{{ version }}",arm!="shadow"}'),
    ("model_requests_total{}", 'model_requests_total{arm!="shadow"}'),
    ("model_requests_total", 'model_requests_total{arm!="shadow"}'),
])  # fmt: skip
def test_the_users_requests_leave_the_comparators_calls_out(selector: str, expected: str) -> None:
    assert unstamped(selector) == expected


class Gateways:
    """The cluster, as the router reads it for mirroring: Gateways and GatewayClasses."""

    def __init__(self, classes: dict[str, dict[str, Any]], gateways: dict[str, str]) -> None:
        self.classes, self.gateways = classes, gateways

    def fetch(self, group: str, version: str, plural: str, namespace: str | None,
              name: str) -> dict[str, Any] | None:  # fmt: skip
        if plural == "gateways":
            cls = self.gateways.get(name)
            return None if cls is None else {"spec": {"gatewayClassName": cls}}
        if plural == "gatewayclasses":
            return self.classes.get(name)
        return None


def gateway_class(name: str, controller: str, *features: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "spec": {"controllerName": controller},
            "status": {"supportedFeatures": [{"name": f} for f in features]}}  # fmt: skip


def router(cluster: Gateways, *parents: str) -> GatewayAPIRouter:
    traffic = GatewayAPITraffic.model_validate({"parentRefs": [{"name": p} for p in parents]})
    return GatewayAPIRouter(cluster, Owner("fraud", "ns", "u"), traffic, 80)  # type: ignore[arg-type]


def test_the_standard_filter_only_where_the_class_lists_it_and_its_percentage() -> None:
    full = gateway_class("envoy", "example.com/envoy", "HTTPRoute", "HTTPRouteRequestMirror",
                         "HTTPRouteRequestPercentageMirror")  # fmt: skip
    whole = gateway_class("whole", "example.com/other", "HTTPRoute", "HTTPRouteRequestMirror")
    cluster = Gateways({"envoy": full, "whole": whole}, {"gw": "envoy", "w": "whole"})
    assert router(cluster, "gw").mirroring(20) == "filter"
    assert router(cluster, "w").mirroring(100) == "filter"
    refused = router(cluster, "w").mirroring(20)
    assert refused == (
        "the shadow step needs HTTPRouteRequestPercentageMirror, which GatewayClass whole of "
        "Gateway ns/w does not list in status.supportedFeatures; the router traffic.gatewayAPI "
        "writes no mirror its data plane does not implement"
    )


def test_traefik_mirrors_through_its_own_service_and_a_mix_is_refused() -> None:
    traefik = gateway_class("traefik", "traefik.io/gateway-controller", "HTTPRoute")
    full = gateway_class("envoy", "example.com/envoy", "HTTPRouteRequestMirror",
                         "HTTPRouteRequestPercentageMirror")  # fmt: skip
    cluster = Gateways({"traefik": traefik, "envoy": full}, {"public": "traefik", "gw": "envoy"})
    assert router(cluster, "public").mirroring(20) == "traefik"
    assert "different ways" in str(router(cluster, "public", "gw").mirroring(20))
    assert "does not exist" in str(router(cluster, "nowhere").mirroring(20))
