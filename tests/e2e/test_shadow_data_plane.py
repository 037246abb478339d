"""A shadow step through Traefik on the process node: the candidate gets a copy of the users'
requests through a TraefikService mirror, answers none of them, and the comparator's paired counts
(labels joined by request id) decide: a candidate 2 points less accurate is rolled back in its
shadow step and no user-facing answer came from it (counted at the gateway and by the model
servers); an equal one passes on to its canary steps, the mirror and the comparator gone; one that
fails 5% of requests is caught."""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from typing import Any

import pytest

from modelrollout.domain.routes import Mirror, mirror_of
from modelrollout.testing.cluster import wait_for
from modelrollout.testing.podserver import truth
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import NAME, Story, served
from modelrollout.testing.traefik import Traefik

pytestmark = pytest.mark.cluster

SHARE = 100
STEPS = [{"shadow": {"share": SHARE, "duration": "10m"}}, {"setWeight": 20}, {"pause": {}}]
PAIRED = [
    {"name": "accuracy", "paired": {"test": "correctness", "margin": 0.005}},
    {"name": "agreement", "paired": {"test": "disagreement", "max": 0.05}},
    {"name": "shadow-errors", "paired": {"test": "errors"}},
]
BATCH = 400


def shadowed(version: str, host: str, prometheus: str, **env: str) -> dict[str, Any]:
    """A rollout whose model server answers a prediction per request id (podserver.predict)."""
    m = served(version, host, prometheus, STEPS, env=env)
    m["spec"]["progressDeadline"] = "60s"
    m["spec"]["replicas"] = 2
    m["spec"]["analysis"]["signals"] += PAIRED
    return m


def comparator_ip(story: Story) -> str | None:
    out = story.cluster.kubectl("get", "pods", "-n", story.namespace, "-l",
                                "modelrollout.io/revision=shadow", "-o", "json")  # fmt: skip
    pods = [p for p in json.loads(out.stdout)["items"]
            if any(c.get("type") == "Ready" and c.get("status") == "True"
                   for c in (p.get("status") or {}).get("conditions") or [])]  # fmt: skip
    return pods[0]["status"]["podIP"] if pods else None


def post_labels(gateway: Traefik, ip: str, ids: list[str]) -> int:
    """The labels of `ids`, posted to the comparator as a label pipeline would; how many joined."""
    assert gateway.network is not None
    connection = http.client.HTTPConnection(ip, 8080, timeout=10)
    try:
        connection.sock = gateway.network.connect(ip, 8080, timeout=10)
        body = json.dumps([{"id": i, "label": truth(i)} for i in ids])
        connection.request("POST", "/labels", body=body,
                           headers={"Content-Type": "application/json"})  # fmt: skip
        answer = json.loads(connection.getresponse().read())
    except OSError:  # the step just ended and the comparator with it: these labels come late
        return 0
    finally:
        connection.close()
    return int(answer["joined"])


def signal(story: Story, name: str) -> dict[str, Any]:
    signals = (story.status().get("analysis") or {}).get("signals") or []
    return next((s for s in signals if s["name"] == name), {})


def candidate_served_users(prometheus: PrometheusServer, namespace: str) -> float:
    """The users' requests v2's model servers answered (the comparator's own are stamped)."""
    selector = f'model_requests_total{{namespace="{namespace}",version="v2",arm=""}}'
    query = urllib.parse.urlencode({"query": f"sum({selector})"})
    with urllib.request.urlopen(f"{prometheus.url}/api/v1/query?{query}", timeout=10) as a:  # noqa: S310
        result = json.load(a)["data"]["result"]
    return float(result[0]["value"][1]) if result else 0.0


def shadow_until(story: Story, gateway: Traefik, host: str, done: Any,
                 timeout: float = 240) -> Counter[str]:  # fmt: skip
    """Users' requests, each with its id, through the gateway, and their labels one batch
    later (labels come late), until `done()`; what answered the users."""
    answered: Counter[str] = Counter()
    late: list[str] = []
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:
        ids = [uuid.uuid4().hex for _ in range(BATCH)]
        answers = gateway.exchange(host, [("/predict", {"x-request-id": i}) for i in ids])
        answered.update(version for version, _ in answers)
        ip = comparator_ip(story)
        if ip is not None and late:
            post_labels(gateway, ip, late)
        late = ids
    return answered


def in_shadow(story: Story, gateway: Traefik, host: str, prometheus: str, **env: str) -> None:
    """Given v1 (90% accurate) stable behind Traefik, When v2 rolls out with `env`, Then its
    shadow step mirrors through a TraefikService and the comparator is ready."""
    story.apply(shadowed("v1", host, prometheus, ACCURACY="0.90"))
    story.until("v1 is stable", lambda: story.phase() == "Promoted")
    assert wait_for(lambda: gateway.send(host, 20) == {"v1": 20}, timeout=30)
    story.apply(shadowed("v2", host, prometheus, **env))
    story.until("the route mirrors to the comparator", lambda: mirror_of(story.plan())
                == Mirror(f"{NAME}-shadow", SHARE), timeout=60)  # fmt: skip
    route = story.get("httproute", NAME) or {}
    backends = [b for r in route["spec"]["rules"] for b in r["backendRefs"]]
    assert {"group": "traefik.io", "kind": "TraefikService", "name": f"{NAME}-mirror"}.items() <= (
        backends[0].items()), backends  # fmt: skip
    assert all("filters" not in r for r in route["spec"]["rules"]), "no RequestMirror on Traefik"
    story.until("the comparator is ready", lambda: comparator_ip(story) is not None, timeout=60)


def test_a_shadow_two_points_less_accurate_is_rejected_before_any_user_reached_it(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    in_shadow(story, gateway, host, pods_metrics.url, ACCURACY="0.88")
    answered = shadow_until(story, gateway, host, lambda: story.phase() == "RolledBack")
    assert set(answered) == {"v1"}, f"a user was answered by another: {answered}"
    assert story.phase() == "RolledBack", json.dumps(story.status().get("analysis"), indent=1)
    message = str(story.status().get("message"))
    assert "signal accuracy: the candidate is less accurate than tolerated" in message, message
    accuracy = signal(story, "accuracy")
    print(f"rejected in the shadow step after {accuracy.get('samples')} labelled pairs: {message}")
    assert candidate_served_users(pods_metrics, story.namespace) == 0
    assert story.status().get("canaryWeight") == 0
    assert wait_for(lambda: mirror_of(story.plan()) is None, timeout=30), story.plan()


def test_an_equal_shadow_passes_on_to_its_canary_and_the_mirror_goes(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    in_shadow(story, gateway, host, pods_metrics.url, ACCURACY="0.90")
    answered = shadow_until(story, gateway, host,
                            lambda: (story.status().get("currentStep") or 0) >= 1)  # fmt: skip
    assert (story.status().get("currentStep") or 0) >= 1, story.status()
    # no user reached v2 but by the canary step's weight (the last batch may have met it): the
    # users its model servers answered are the v2 answers the gateway counted
    reached = answered["v2"]
    assert wait_for(
        lambda: candidate_served_users(pods_metrics, story.namespace) == reached, timeout=30
    ), (reached, candidate_served_users(pods_metrics, story.namespace))
    answered.update(gateway.send(host, 1000))  # while the route changes
    answered.pop("v2", None)
    assert set(answered) == {"v1"}, answered
    print("shadow step passed:", [(s["name"], s["verdict"], s.get("message"))
                                  for s in story.status()["analysis"]["signals"]])  # fmt: skip
    story.until("the canary takes 20% and the mirror is gone", lambda: story.canary_weight() == 20
                and mirror_of(story.plan()) is None, timeout=60)  # fmt: skip
    story.until("the comparator is removed", lambda: story.get("deploy", f"{NAME}-shadow") is None,
                timeout=60)  # fmt: skip
    # and the users lost no request while the mirror went and the canary came
    assert wait_for(lambda: "v2" in gateway.send(host, 200), timeout=30)
    after = gateway.send(host, 2000)
    assert set(after) == {"v1", "v2"}, after


def test_a_shadow_that_fails_five_percent_of_requests_is_caught(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    in_shadow(story, gateway, host, pods_metrics.url, ACCURACY="0.90", FAIL_RATE="0.05")
    answered = shadow_until(story, gateway, host, lambda: story.phase() == "RolledBack")
    assert story.phase() == "RolledBack", json.dumps(story.status().get("analysis"), indent=1)
    message = str(story.status().get("message"))
    assert "signal shadow-errors: the candidate fails where the champion does not" in message
    assert set(answered) == {"v1"}, answered
    assert candidate_served_users(pods_metrics, story.namespace) == 0


def test_a_gateway_that_does_not_advertise_mirroring_gets_no_mirror_and_the_step_fails(
    story: Story, pods_metrics: PrometheusServer, host: str
) -> None:
    """The standard filter only where advertised, Traefik's own mirror only on Traefik: on a
    class that lists neither feature, nothing is written and the step says why."""
    # Given a Gateway whose class (another controller's) lists no mirror feature
    listener = {"name": "web", "protocol": "HTTP", "port": 80}
    story.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass",
                 "metadata": {"name": "no-mirror"},
                 "spec": {"controllerName": "example.com/gateway-controller"}})  # fmt: skip
    story.apply({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
                 "metadata": {"name": "elsewhere"},
                 "spec": {"gatewayClassName": "no-mirror", "listeners": [listener]}})  # fmt: skip
    v1, v2 = (shadowed(v, host, pods_metrics.url, ACCURACY="0.9") for v in ("v1", "v2"))
    for m in (v1, v2):
        m["spec"]["traffic"]["gatewayAPI"]["parentRefs"] = [{"name": "elsewhere"}]
        m["spec"]["strategy"]["steps"][0]["shadow"]["share"] = 10
    story.apply(v1)
    story.until("v1 is stable", lambda: story.phase() == "Promoted")
    # When v2 rolls out with a shadow step
    story.apply(v2)
    story.until("v2 is rolled back", lambda: story.phase() == "RolledBack", timeout=60)
    # Then the step failed naming the Gateway, its class and the missing feature
    message = str(story.status().get("message"))
    assert (
        "the shadow step cannot run: the shadow step needs HTTPRouteRequestMirror and "
        "HTTPRouteRequestPercentageMirror, which GatewayClass no-mirror of Gateway "
        f"{story.namespace}/elsewhere does not list in status.supportedFeatures"
    ) in message
    # and no mirror of any kind was ever written to its route
    route = story.get("httproute", NAME) or {}
    rules = route["spec"]["rules"]
    assert all("filters" not in r for r in rules), rules
    assert all("kind" not in b or b["kind"] == "Service" for r in rules for b in r["backendRefs"])
    assert story.get("traefikservice", f"{NAME}-mirror") is None
