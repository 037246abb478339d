"""A model's life after its steps, on the real data plane: the revisions' pods are processes,
Traefik routes the requests, Prometheus scrapes the pods it discovers, and every split is counted
from the answers of the pods themselves."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import NAME, Story, served, users, within
from modelrollout.testing.traefik import Traefik

pytestmark = pytest.mark.cluster

STEPS = [{"setWeight": 50}, {"analyze": {"duration": "3s"}}]
INTERVAL_SECONDS = 1  # the signals' interval in `served`


def baked(version: str, host: str, prometheus: str, switches: Path) -> dict[str, Any]:
    """A rollout with a bake of 20 s and a holdback of 10%, whose pods answer 500 while a file
    named after their version is in `switches`; scaleDownDelay 10 s."""
    m = served(version, host, prometheus, STEPS, env={"FAIL_DIR": str(switches)})
    m["spec"]["bake"] = {"duration": "20s", "holdback": {"percent": 10}}
    # a rolled-back canary's pods stay this long for requests the gateway still sends them: on
    # a loaded machine Traefik has been seen to take more than 2 s to apply a route
    m["spec"]["scaleDownDelay"] = "10s"
    return m


def answered_only_by(story: Story, gateway: Traefik, host: str, version: str) -> None:
    """Every one of 500 requests answered by `version`, once the gateway has the route: on a
    loaded machine Traefik may apply it later than scaleDownDelay (2 s here), and until then the
    old pods, kept for that, still answer."""
    story.until(f"Traefik routes everything to {version}",
                lambda: gateway.send(host, 100) == {version: 100}, timeout=30)  # fmt: skip
    assert gateway.send(host, 500) == {version: 500}


def _ready(story: Story, revision: str) -> tuple[int, int]:
    """(spec.replicas, readyReplicas) of a revision's Deployment."""
    deployment = next(d for d in story.deployments()
                      if d["spec"]["template"]["metadata"]["labels"]["modelrollout.io/revision"]
                      == revision)  # fmt: skip
    return deployment["spec"]["replicas"], deployment["status"].get("readyReplicas", 0)


def _seconds(text: str) -> datetime:
    return datetime.fromisoformat(text)


def test_a_model_that_degrades_in_its_bake_goes_back_at_once_and_stays_rejected_until_retry(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str, tmp_path: Path
) -> None:
    switches = tmp_path / "fail"
    switches.mkdir()
    # Given v1 is stable on processes behind Traefik
    story.apply(baked("v1", host, pods_metrics.url, switches))
    story.until("v1 is stable", lambda: story.phase() == "Promoted")
    story.until("Traefik routes to v1", lambda: gateway.send(host, 20) == {"v1": 20}, timeout=30)
    v1 = story.status()["stable"]["revision"]
    with users(gateway, host) as answered:
        # When v2 passes its steps, Then it bakes: 90% of the requests reach it, 10% stay on v1,
        # and v1 stays at full size
        v2 = baked("v2", host, pods_metrics.url, switches)
        story.apply(v2)
        story.until("v2 bakes", lambda: story.phase() == "Baking", timeout=120)
        # Traefik applies the route a moment after the API server has it (at 50%, v1 would
        # answer about 100 of 200; at 10%, about 20)
        story.until("Traefik has the bake's route", lambda: gateway.send(host, 200)["v1"] < 50)
        split = gateway.send(host, 2000)
        assert split["v1"] + split["v2"] == 2000, split
        assert within(split["v2"], 2000, 90), split
        full = v2["spec"]["replicas"]
        assert _ready(story, v1) == (full, full)
        # When v2 starts failing every request in its bake
        (switches / "v2").touch()
        failed_at = time.monotonic()
        story.until("v2 is rolled back", lambda: story.phase() == "RolledBack", timeout=60)
        decided = time.monotonic() - failed_at
        # Then every request goes to v1 as soon as the gateway has the route, counted at the pods
        story.until("v1 answers all", lambda: gateway.send(host, 50) == {"v1": 50}, timeout=10)
        back = time.monotonic() - failed_at
        split = gateway.send(host, 1000)
    assert split == {"v1": 1000}, split
    # And no request found no pod: v1 was warm, and v2 kept its pods until the route had moved
    assert set(answered) == {"v1", "v2"}, answered
    status = story.status()
    degraded = next(c for c in status["conditions"] if c["type"] == "Degraded")
    assert (degraded["status"], degraded["reason"]) == ("True", "BakeFailed"), degraded
    assert status["message"].startswith("bake failed: signal errors"), status["message"]
    # And the rollback came in the tick of the failing verdict: within one interval of it
    verdict = next(s for s in status["analysis"]["signals"] if s["name"] == "errors")
    assert verdict["verdict"] == "Fail", verdict
    rolled_back = status["history"][-1]
    assert rolled_back["outcome"] == "RolledBack", rolled_back
    gap = (_seconds(rolled_back["finishedAt"]) - _seconds(verdict["at"])).total_seconds()
    assert 0 <= gap <= INTERVAL_SECONDS, (verdict, rolled_back)
    print(
        f"\nv2 failing → rolled back seen after {decided:.1f} s, all on v1 after {back:.1f} s; "
        f"users' requests meanwhile: {dict(answered)}"
    )
    # When the same spec is applied again, as a GitOps resync does, and the object is touched
    story.apply(v2)
    story.cluster.kubectl("annotate", "mro", NAME, "-n", story.namespace, "resync=1")
    time.sleep(5)  # ten of the operator's ticks
    # Then v2 is not promoted again, and nothing of the traffic goes to it
    status = story.status()
    assert (status["phase"], status["stable"]["version"]) == ("RolledBack", "v1"), status
    assert gateway.send(host, 500) == {"v1": 500}
    # When v2 is fixed and a human says `retry`, Then it starts again, bakes, and is promoted
    (switches / "v2").unlink()
    story.command("retry")
    with users(gateway, host):
        story.until("v2 bakes again", lambda: story.phase() == "Baking", timeout=120)
        story.until("v2 is promoted", lambda: story.phase() == "Promoted", timeout=60)
    assert story.stable_version() == "v2"
    # And after the bake v1 is removed, and every request reaches v2
    story.until("v1 is removed", lambda: len(story.deployments()) == 1, timeout=30)
    answered_only_by(story, gateway, host, "v2")


def test_a_hard_failure_with_no_warm_previous_falls_back_to_the_heuristic_revision(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str, tmp_path: Path
) -> None:
    switches = tmp_path / "fail"
    switches.mkdir()
    # Given v1, the first revision (nothing before it to go back to), watched for 5xx answers,
    # with a heuristic fallback kept ready beside it
    v1 = served("v1", host, pods_metrics.url, STEPS, env={"FAIL_DIR": str(switches)})
    heuristic = json.loads(json.dumps(v1["spec"]["template"]))
    v1["spec"]["fallback"] = {"version": "rules-v1", "template": heuristic}
    v1["spec"]["monitor"] = {
        "interval": "1s", "window": "3s", "confirm": 1, "cooldown": "1m",
        "signals": [{"name": "errors", "threshold": {"max": 0.01, "query": (
            'sum(rate(model_requests_total{version="{{ stable.version }}",code=~"5.."}[5s]))'
            " or vector(0)")}}],
        "onAlarm": [{"fallback": "previous"}],
    }  # fmt: skip
    story.apply(v1)
    story.until("v1 is stable", lambda: story.phase() == "Promoted")
    story.until("Traefik routes to v1", lambda: gateway.send(host, 20) == {"v1": 20}, timeout=30)
    fallback = f"{NAME}-fallback"
    story.until("the fallback is ready",
                lambda: (story.get("deploy", fallback) or {}).get("status", {}).get(
                    "readyReplicas") == 1)  # fmt: skip
    with users(gateway, host) as answered:
        story.until("the monitor passes", lambda: any(s["verdict"] == "Pass" for s in (
            story.status().get("monitor") or {}).get("signals", [])), timeout=30)  # fmt: skip
        # When v1 starts failing every request
        (switches / "v1").touch()
        failed_at = time.monotonic()
        story.until("it falls back", lambda: story.status().get("fallback") is not None,
                    timeout=30)  # fmt: skip
        decided = time.monotonic() - failed_at
        # Then every request is answered by the heuristic, counted at the pods
        story.until("rules-v1 answers all",
                    lambda: gateway.send(host, 50) == {"rules-v1": 50}, timeout=15)  # fmt: skip
        back = time.monotonic() - failed_at
        split = gateway.send(host, 1000)
    assert split == {"rules-v1": 1000}, split
    assert set(answered) <= {"v1", "rules-v1"}, answered  # no request found no pod
    status = story.status()
    alarm = status["monitor"]["alarms"][-1]
    assert status["fallback"]["since"] == alarm["at"]  # decided in the tick of the alarm
    assert "rules-v1" in status["message"]
    print(f"\nv1 failing → fallen back after {decided:.1f} s, all on rules-v1 after {back:.1f} s")
