"""A/B/n on the real data plane: a champion and three candidates as processes on the process
node, routed by Traefik at the shares the operator writes, judged on simulated labelled outcomes
scraped by a real Prometheus. The worse candidate goes and its share goes back; the better one
wins, bakes and is promoted; status, `modelrollout status` and `modelrollout report` show the
ranked table."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from modelrollout.testing.cluster import wait_for
from modelrollout.testing.prometheus import PrometheusPool, PrometheusServer, ScrapeJob
from modelrollout.testing.stories import NAME, Story, served, stable_behind_traefik, within
from modelrollout.testing.traefik import Traefik
from modelrollout.testing.traffic import ARM, SimulatedTraffic, Truth

pytestmark = pytest.mark.cluster

TRUTHS = {"v1": Truth(accuracy=0.90), "v2": Truth(accuracy=0.93), "v3": Truth(accuracy=0.90),
          "v4": Truth(accuracy=0.87)}  # fmt: skip
ACCURACY = {"name": "accuracy", "compare": {
    "successes": f'model_feedback_total{{{ARM},outcome="correct"}}',
    "total": f"model_feedback_total{{{ARM}}}", "margin": 0.01, "minSamples": 200}}  # fmt: skip


Feedback = tuple[SimulatedTraffic, PrometheusServer]


@pytest.fixture
def feedback(kube: client.ApiClient, namespace: str,
             prometheus: PrometheusPool) -> Iterator[Feedback]:  # fmt: skip
    """Labelled outcomes of every version, at the split the route says now, scraped."""
    traffic = SimulatedTraffic(kube, namespace, NAME, TRUTHS, rate=200)
    server = prometheus([ScrapeJob("models", (traffic.target,))])
    yield traffic, server
    traffic.close()


def abn(host: str, prometheus: str) -> dict[str, Any]:
    m = served("v2", host, prometheus, [{"setWeight": 50}, {"analyze": {"duration": "3s"}}])
    spec = m["spec"]
    spec["challengers"] = [{"version": "v3"}, {"version": "v4"}]
    spec["strategy"]["abn"] = {"duration": "15m", "margin": 0.015, "startShare": 50}
    spec["bake"] = {"duration": "5s"}
    spec["progressDeadline"] = "60s"
    spec["analysis"]["signals"] = [ACCURACY]
    return m


def arms(story: Story) -> dict[str, dict[str, Any]]:
    return {a["version"]: a for a in story.status().get("arms") or []}


def split_fits_the_route(story: Story, gateway: Traefik, host: str, count: int = 2000) -> bool:
    """Over `count` requests through Traefik, every version's share fits its route weight
    (99.9% binomial interval), and every answer is a pod's, while the route did not change
    meanwhile. False until then: Traefik applies a route, and pods get ready, a moment later."""
    before = story.route_weights()
    answered = gateway.send(host, count)
    if story.route_weights() != before or sum(answered.values()) != count:
        return False
    by_version = _versions_by_service(story)
    expected: dict[str, int] = {}
    for service, weight in before:
        version = by_version.get(service)
        if version:
            expected[version] = expected.get(version, 0) + weight
    if not set(answered) <= {v for v, w in expected.items() if w > 0}:
        return False  # a 503 while a pod is not ready yet, or an arm the route no longer has
    return all(within(answered.get(version, 0), count, weight)
               for version, weight in expected.items())  # fmt: skip


def _versions_by_service(story: Story) -> dict[str, str]:
    services = json.loads(story.cluster.kubectl("get", "svc", "-n", story.namespace,
                                                "-o", "json").stdout)["items"]  # fmt: skip
    revisions = {d["spec"]["template"]["metadata"]["labels"]["modelrollout.io/revision"]:
                 d["spec"]["template"]["metadata"]["labels"]["modelrollout.io/model-version"]
                 for d in story.deployments()}  # fmt: skip
    return {s["metadata"]["name"]: revisions.get(
        (s["spec"].get("selector") or {}).get("modelrollout.io/revision", ""), "")
        for s in services}  # fmt: skip


def test_the_worse_goes_its_share_returns_and_the_better_wins_bakes_and_is_promoted(
    story: Story, gateway: Traefik, *, pods_metrics: PrometheusServer, host: str,
    feedback: Feedback, tmp_path: Path,
) -> None:  # fmt: skip
    _, scraped = feedback
    # Given v1 is stable on processes behind Traefik
    stable_behind_traefik(story, gateway, host, pods_metrics.url, [{"setWeight": 50}])
    # When v2, v3 and v4 are judged against it at once
    story.apply(abn(host, scraped.url))
    story.until("the four arms share the route", lambda: len(story.route_weights()) == 4,
                timeout=60)  # fmt: skip
    # Then Traefik splits the requests as the route says (each arm within 99.9%)
    assert wait_for(lambda: split_fits_the_route(story, gateway, host), timeout=90)
    assert {v: a["share"] for v, a in arms(story).items()} == {"v1": 25, "v2": 25, "v3": 25,
                                                               "v4": 25}  # fmt: skip
    # And the worse one is eliminated before the phase ends, and its share goes back
    story.until("v4 is eliminated", lambda: arms(story).get("v4", {}).get("state")
                in ("Eliminated", "Lost"), timeout=300)  # fmt: skip
    assert arms(story)["v4"]["state"] == "Eliminated", arms(story)
    story.until("v4 takes no traffic", lambda: all(
        w == 0 for s, w in story.route_weights() if _versions_by_service(story).get(s) == "v4"),
        timeout=120)  # fmt: skip
    assert wait_for(lambda: split_fits_the_route(story, gateway, host), timeout=90)
    # And the better one is named the winner, bakes and is promoted
    story.until("v2 wins", lambda: (story.status().get("abn") or {}).get("winner") == "v2",
                timeout=600)  # fmt: skip
    story.until("v2 is promoted", lambda: story.phase() == "Promoted"
                and story.stable_version() == "v2", timeout=180)  # fmt: skip
    table = arms(story)
    assert (table["v2"]["state"], table["v4"]["state"]) == ("Won", "Eliminated"), table
    assert table["v3"]["state"] in ("Lost", "Eliminated"), table  # equal: it may be futile first
    assert table["v2"]["lower"] > 0 > table["v4"]["estimate"]  # its last standing is kept
    reasons = [e["reason"] for e in json.loads(story.cluster.kubectl(
        "get", "events", "-n", story.namespace, "-o", "json").stdout)["items"]]  # fmt: skip
    for reason in ("AbnStarted", "ArmEliminated", "WinnerNamed", "CanaryStarted", "Baking",
                   "Promoted"):  # fmt: skip
        assert reason in reasons, reasons
    # And the ranked table is in `modelrollout status` and `modelrollout report`
    shown = story.cli("status", NAME)
    assert "A/B/n  Winner: v2 wins" in shown, shown
    lines = [line.split()[0] for line in shown.splitlines() if line.startswith("    v")]
    assert lines[:4] == ["v1", "v2", "v3", "v4"], shown
    story.cli("report", NAME, "--prometheus", scraped.url, "--since", "30m",
              "--out", str(tmp_path))  # fmt: skip
    report = (tmp_path / f"{NAME}.md").read_text()
    assert "| v2 | challenger |" in report
    assert "| Won |" in report
    # And the arms' Services went once nothing routed to them: only stable and canary are left
    story.until("the arms' Services are gone", lambda: services(story) == [
        f"{NAME}-canary", f"{NAME}-stable"], timeout=120)  # fmt: skip


def services(story: Story) -> list[str]:
    listed = story.cluster.kubectl("get", "services", "-n", story.namespace, "-o", "json")
    return sorted(s["metadata"]["name"] for s in json.loads(listed.stdout)["items"])
