"""Rollouts end to end: the operator process, the real control plane and a real Prometheus."""

from __future__ import annotations

import json
import socket
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.cli import report
from modelrollout.testing.cluster import LocalCluster, wait_for
from modelrollout.testing.exporter import ErrorRateExporter
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.processes import free_ports
from modelrollout.testing.prometheus import PrometheusPool, PrometheusServer, ScrapeJob
from modelrollout.testing.stories import CANARY_AT_50, NAME, Story, model_rollout
from modelrollout.testing.traefik import Traefik
from modelrollout.testing.vocabulary import aborted_at_once
from modelrollout.testing.webhooks import Receiver

pytestmark = pytest.mark.cluster


def test_a_good_model_is_promoted(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v2's error rate is well within bounds
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v2").set(0.002)
    story.apply(model_rollout(metrics.url, "v1"))
    story.until("v1 is stable", lambda: story.status().get("phase") == "Promoted")
    assert story.stable_version() == "v1"
    # When the model version changes to v2
    story.apply(model_rollout(metrics.url, "v2"))
    # Then v2 takes half the traffic while it is analysed
    story.until(
        "the canary takes 50%", lambda: ("fraud-detector-canary", 50) in story.route_weights()
    )
    # And each revision keeps its own model: the stable Deployment still runs v1
    status = story.status()
    assert story.served_versions() == {
        status["stable"]["revision"]: "v1",
        status["canary"]["revision"]: "v2",
    }
    # And then it is promoted: stable is v2 and the route sends everything to stable
    story.until("v2 is promoted", lambda: story.stable_version() == "v2")
    status = story.status()
    assert status["phase"] == "Promoted"
    assert status["history"][-1]["outcome"] == "Promoted"
    story.until(
        "the route is all stable",
        lambda: story.route_weights()[0] == ("fraud-detector-stable", 100),
    )
    # And the v1 revision is removed after scaleDownDelay
    story.until("one revision left", lambda: len(story.deployments()) == 1)


def test_a_threshold_breach_rolls_back(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter, receiver: Receiver
) -> None:
    # Given v1 is stable and v3 fails 20% of requests
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v3").set(0.2)
    story.apply(model_rollout(metrics.url, "v1"))
    story.until("v1 is stable", lambda: story.status().get("phase") == "Promoted")
    # When v3 is rolled out, with a webhook subscribed to rollbacks
    v3 = model_rollout(metrics.url, "v3")
    v3["spec"]["notifications"] = {"webhooks": [{"url": receiver.url, "events": ["RolledBack"]}]}
    story.apply(v3)
    # Then it is rolled back with the signal, value and bound as the reason
    story.until("v3 is rolled back", lambda: story.status().get("phase") == "RolledBack")
    status = story.status()
    assert "error-rate: 0.2 above max 0.01" in status["message"]
    assert status["stable"]["version"] == "v1"
    # And no traffic goes to the canary, whose pods are scaled to zero after scaleDownDelay
    story.until(
        "the route is all stable", lambda: story.route_weights()[1] == ("fraud-detector-canary", 0)
    )
    deployment = f"fraud-detector-{status['canary']['revision']}"
    story.until(
        "the canary has no pods",
        lambda: (story.get("deploy", deployment) or {})["spec"]["replicas"] == 0,
    )
    # And the webhook was told, with the same reason
    assert [(r["event"], r["version"]) for r in receiver.received] == [("RolledBack", "v3")]
    assert "error-rate: 0.2 above max 0.01" in receiver.received[0]["message"]


def test_abort_rolls_back_at_once(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # The story the ticker over fakes tells too (tests/unit/test_story_vocabulary.py), here on the
    # real control plane: v2 takes 50%, a human aborts, it is rolled back with no canary traffic
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v2").set(0.001)
    steps = [{"setWeight": 50}, {"analyze": {"duration": "10m"}}]
    aborted_at_once(story, model_rollout(metrics.url, "v1", steps),
                    model_rollout(metrics.url, "v2", steps))  # fmt: skip
    assert story.status()["message"] == "aborted by admin"  # the API server's name for us


def test_manual_pause_holds_then_promote_ends_the_step(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v2 has taken 50%
    story.canary_at_half(metrics, telemetry, [{"setWeight": 50}, {"analyze": {"duration": "4s"}}])
    # When a human pauses the rollout
    story.command("pause")
    story.until("paused", lambda: story.phase() == "Paused")
    # Then it holds well past the analysis step's duration
    assert not wait_for(lambda: story.phase() != "Paused", timeout=6)
    assert story.status()["pause"]["reason"] == "Manual"
    # And `status` shows why
    shown = story.cli("status", NAME)
    assert "phase Paused" in shown
    assert "paused  Manual: paused by admin" in shown
    assert "error-rate" in shown
    # When the human promotes, Then the step ends and the canary is promoted
    story.command("promote")
    story.until("v2 promoted", lambda: story.stable_version() == "v2")
    listed = story.cli("list").splitlines()
    assert listed[0].split() == ["NAMESPACE", "NAME", "PHASE", "STABLE", "CANARY", "WEIGHT", "STEP"]
    assert listed[1].split()[1:5] == [NAME, "Promoted", "v2", "-"]
    events = story.cluster.kubectl("get", "events", "-n", story.namespace, "-o", "json").stdout
    reasons = {e["reason"] for e in json.loads(events)["items"]}
    assert {"CanaryStarted", "Paused", "PromotedStep", "Promoted"} <= reasons


def test_a_new_revision_mid_rollout_replaces_the_canary(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    telemetry.error_rate.labels(version="v3").set(0.001)
    # Given v1 is stable and v2 has taken 50%
    story.canary_at_half(metrics, telemetry, [{"setWeight": 50}, {"analyze": {"duration": "10m"}}])
    # When v3 is applied while v2 is still a canary
    story.apply(model_rollout(metrics.url, "v3"))
    # Then v2 is superseded and v3 goes through the steps to promotion
    story.until("v3 promoted", lambda: story.stable_version() == "v3")
    outcomes = [(h["version"], h["outcome"]) for h in story.status()["history"]]
    assert outcomes == [("v2", "Superseded"), ("v3", "Promoted")]


def test_an_operator_killed_mid_step_resumes_where_it_was(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v2 has taken 50%
    story.canary_at_half(metrics, telemetry, [{"setWeight": 50}, {"analyze": {"duration": "6s"}}])
    # When the operator is killed outright mid-step and a new one starts
    assert story.operator.process is not None
    assert story.operator.process.popen is not None
    story.operator.process.popen.kill()
    story.operator.process.popen.wait()
    assert story.status()["phase"] == "Progressing"
    story.operator.start()
    # Then the rollout resumes from status and ends promoted, exactly once
    story.until("v2 promoted", lambda: story.stable_version() == "v2")
    assert [h["outcome"] for h in story.status()["history"]] == ["Promoted"]


def test_prometheus_down_neither_promotes_nor_storms_and_recovers(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v2 has taken 50%
    story.canary_at_half(
        metrics,
        telemetry,
        [{"setWeight": 50}, {"analyze": {"duration": "2s"}}],
        consecutiveErrorLimit=100,
    )
    # When Prometheus goes away for longer than the analysis step
    metrics.pause()
    story.until("errors counted", lambda: (story.status().get("analysis") or {})
                .get("counters", {}).get("consecutiveErrors", 0) >= 3)  # fmt: skip
    # Then the rollout neither promotes nor rolls back: it holds at 50%
    status = story.status()
    assert (status["phase"], status["stable"]["version"]) == ("Progressing", "v1")
    assert CANARY_AT_50 in story.route_weights()
    # When Prometheus returns, Then the rollout goes on to promotion
    metrics.resume()
    story.until("v2 promoted", lambda: story.stable_version() == "v2")


OUTAGE_SECONDS = 25


def test_an_api_server_restart_mid_step_neither_rolls_back_a_healthy_canary_nor_floods_the_log(
    cluster: LocalCluster, namespace: str, modelrollout_crd: None, metrics: PrometheusServer,
    telemetry: ErrorRateExporter, *, gateway: Traefik,
) -> None:  # fmt: skip
    # Given an operator ticking every 5 s (its fault limit, 3 ticks, is shorter than the outage)
    # and a healthy v2 at 50% in a 50-s analyze step
    operator = OperatorProcess(cluster.kubeconfig, tick_seconds=5,
                               env={"MODELROLLOUT_PERIOD_SECONDS": "5"})  # fmt: skip
    operator.start()
    try:
        cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(namespace))
        story = Story(cluster, namespace, operator)
        story.canary_at_half(metrics, telemetry,
                             [{"setWeight": 50}, {"analyze": {"duration": "50s"}}])  # fmt: skip
        before = len(operator.log_path.read_text().splitlines())
        # When the API server is stopped for 25 s mid-step (the fault is the test's to make: this
        # sleep is the outage itself, not a wait for another process), then started again
        cluster.stop_apiserver()
        time.sleep(OUTAGE_SECONDS)
        cluster.start_apiserver()
        # Then the canary is not rolled back: the rollout goes on to promote it, exactly once
        story.until("v2 promoted", lambda: story.stable_version() == "v2", timeout=180)
        assert [h["outcome"] for h in story.status()["history"]] == ["Promoted"]
        # And the outage cost a few log lines per failed tick (the tick's own, and one for each
        # of kopf's watches), without a traceback each: warnings and errors, as the operator's
        # handlers logged through promotion
        logged = operator.log_path.read_text().splitlines()[before:]
        failed = [line for line in logged if "tick failed" in line]
        assert failed, "no tick failed during the outage: it was not one"
        counted = [line for line in failed if "not counted toward the fault limit" not in line]
        assert counted == [], "\n".join(counted)
        said = [line for line in logged if "[WARNING" in line or "[ERROR" in line]
        assert len(said) <= 2 * len(failed) + 10, "\n".join(said)
        assert sum("Traceback" in line for line in logged) <= 1, "\n".join(logged)
    finally:
        operator.close()


def test_a_route_whose_gateway_does_not_exist_is_never_promoted_and_says_so(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given a rollout whose HTTPRoute names a Gateway that does not exist (no controller will
    # ever write its status), a threshold written the defensive way, and v1 stable
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v2").set(0.001)
    v1, v2 = model_rollout(metrics.url, "v1"), model_rollout(metrics.url, "v2")
    for manifest in (v1, v2):
        manifest["spec"]["traffic"]["gatewayAPI"]["parentRefs"] = [{"name": "nowhere"}]
        manifest["spec"]["analysis"]["signals"][0]["threshold"]["query"] = (
            'max(model_error_rate{version="{{ canary.version }}"}) or vector(0)')  # fmt: skip
    story.apply(v1)
    story.stable("v1")
    # When v2 is rolled out
    story.apply(v2)
    # Then it is never promoted: past progressDeadline it is rolled back, and status and a
    # Warning Event say that no controller accepted the route
    story.until("v2 is rolled back", lambda: story.phase() == "RolledBack", timeout=150)
    status = story.status()
    assert status["stable"]["version"] == "v1"
    assert [h["outcome"] for h in status["history"]] == ["RolledBack"]
    said = f"no controller accepted HTTPRoute {NAME} for Gateway {story.namespace}/nowhere"
    assert said in status["message"], status["message"]
    events = json.loads(story.cluster.kubectl("get", "events", "-n", story.namespace, "-o",
                                              "json").stdout)["items"]  # fmt: skip
    warned = [e for e in events if e["reason"] == "RouteNotAccepted"]
    assert warned, "no RouteNotAccepted Event"
    assert warned[0]["type"] == "Warning"
    assert said in warned[0]["message"], warned


def test_deleting_a_rollout_mid_way_leaves_nothing_routed_to_the_canary(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v1 is stable and v2 has taken 50%
    story.canary_at_half(metrics, telemetry, [{"setWeight": 50}, {"analyze": {"duration": "10m"}}])
    # When the ModelRollout is deleted
    story.cluster.kubectl("delete", "mro", NAME, "-n", story.namespace, "--wait=true", timeout=60)
    # Then the route and the revisions it owned are garbage-collected
    story.until("route gone", lambda: story.get("httproute", NAME) is None, timeout=60)
    story.until("deployments gone", lambda: story.deployments() == [], timeout=60)


def test_a_canary_that_never_becomes_available_is_rolled_back(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    telemetry.error_rate.labels(version="v1").set(0.001)
    story.apply(model_rollout(metrics.url, "v1"))
    story.stable("v1")
    # Given v2's pods can be scheduled nowhere
    broken = model_rollout(metrics.url, "v2")
    broken["spec"]["progressDeadline"] = "4s"
    broken["spec"]["template"]["spec"]["nodeSelector"] = {"no-such-node": "true"}
    story.apply(broken)
    # Then it is rolled back after progressDeadline, with that reason, and never took traffic
    story.until("rolled back", lambda: story.phase() == "RolledBack")
    assert "progressDeadline 4s" in story.status()["message"]
    assert "cannot be scheduled" in story.status()["message"]  # the scheduler's words
    assert story.route_weights()[1] == ("fraud-detector-canary", 0)


def test_what_another_writer_changes_is_put_back_and_said(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    # Given v2 holds 50% at an indefinite pause
    story.canary_at_half(metrics, telemetry, [{"setWeight": 50}, {"pause": {}}])
    canary = next(d["metadata"]["name"] for d in story.deployments()
                  if d["metadata"]["labels"]["modelrollout.io/model-version"] == "v2")  # fmt: skip
    # When someone deletes the canary's Deployment and sets the route's weights by hand
    story.cluster.kubectl("delete", "deploy", canary, "-n", story.namespace)
    story.cluster.kubectl("patch", "httproute", NAME, "-n", story.namespace, "--type=json", "-p",
                          '[{"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight",'
                          ' "value": 90}]')  # fmt: skip
    # Then both are put back, from the watches
    story.until("the canary's Deployment is back", lambda: story.get("deploy", canary) is not None,
                timeout=10)  # fmt: skip
    story.until("the route is back at 50%", lambda: CANARY_AT_50 in story.route_weights(),
                timeout=10)  # fmt: skip

    # And each correction is a Warning Event that says what was found
    def corrections() -> list[str]:
        events = story.cluster.kubectl("get", "events", "-n", story.namespace, "-o", "json")
        return [e["message"] for e in json.loads(events.stdout)["items"]
                if e["reason"] == "Corrected" and e["type"] == "Warning"]  # fmt: skip

    story.until("both corrections are said", lambda: len(corrections()) >= 2, timeout=20)
    said = " | ".join(corrections())
    assert f"Deployment {canary} was deleted" in said
    assert "carried canary weight 90" in said


def _tick_seconds(story: Story) -> tuple[float, float]:
    """(sum, count) of the operator's tick durations so far."""
    text = urllib.request.urlopen(story.operator.metrics_url, timeout=10).read().decode()  # noqa: S310
    name = "modelrollout_reconcile_duration_seconds"
    found = {s.name: s.value for f in text_string_to_metric_families(text) for s in f.samples}
    return found[f"{name}_sum"], found[f"{name}_count"]


def _rolled_out(story: Story, metrics: PrometheusServer, version: str,
                notifications: dict[str, Any]) -> tuple[float, float]:  # fmt: skip
    """Roll `version` out to promotion; (seconds it took, mean tick seconds meanwhile)."""
    m = model_rollout(metrics.url, version)
    m["spec"]["notifications"] = notifications
    before, started = _tick_seconds(story), time.monotonic()
    story.apply(m)
    story.until(f"{version} is promoted", lambda: story.stable_version() == version, timeout=120)
    took = time.monotonic() - started
    after = _tick_seconds(story)
    return took, (after[0] - before[0]) / max(1.0, after[1] - before[1])


def test_a_receiver_failing_three_times_then_recovering_gets_every_event_once_in_order(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    receiver = Receiver(failing=3, retry_after="1")
    try:
        for version, rate in (("v1", 0.001), ("v2", 0.001), ("v3", 0.2)):
            telemetry.error_rate.labels(version=version).set(rate)
        hooks = {"webhooks": [{"url": receiver.url, "format": "cloudEvents"}]}
        # Given v1 stable, v2 promoted and v3 rolled back, told to a receiver that refuses the
        # first three POSTs
        for version in ("v1", "v2", "v3"):
            m = model_rollout(metrics.url, version)
            m["spec"]["notifications"] = hooks
            story.apply(m)
            done = "RolledBack" if version == "v3" else "Promoted"
            story.until(f"{version} ends {done}", lambda d=done, v=version: story.phase() == d
                        and (story.status().get("history") or [{}])[-1].get("version") in (v, None)
                        and (v != "v2" or story.stable_version() == "v2"), timeout=120)  # fmt: skip
        # Then every event arrives once, in order, after the refusals
        story.until("the outbox is empty", lambda: not (
            story.status().get("notifications") or {}).get("pending"), timeout=60)  # fmt: skip
        assert receiver.refused == 3
        got = [(e["sequence"], e["id"], e["data"]["event"]) for e in receiver.received]
        sequences = [int(s) for s, _, _ in got]
        assert sequences == list(range(1, len(got) + 1)), got
        assert len({i for _, i, _ in got}) == len(got), got
        assert [e for _, _, e in got] == ["Progressing", "Promoted", "Progressing", "RolledBack"]
        sink = story.status()["notifications"]["sinks"][0]
        assert (sink["delivered"], sink["failures"]) == (len(got), 0)
    finally:
        receiver.close()


def test_a_receiver_down_for_a_whole_rollout_delays_no_decision(
    story: Story, metrics: PrometheusServer, telemetry: ErrorRateExporter
) -> None:
    for version in ("v1", "v2", "v3"):
        telemetry.error_rate.labels(version=version).set(0.001)
    healthy = Receiver()
    # a receiver that takes connections and never answers: every POST waits out its timeout
    (port,) = free_ports(1)
    hanging = socket.socket()
    hanging.bind(("127.0.0.1", port))
    hanging.listen(64)
    try:
        story.apply(model_rollout(metrics.url, "v1"))
        story.stable("v1")
        up = _rolled_out(story, metrics, "v2", {"webhooks": [{"url": healthy.url}]})
        down = _rolled_out(story, metrics, "v3",
                           {"webhooks": [{"url": f"http://127.0.0.1:{port}/hook"}]})  # fmt: skip
        print(
            f"\nreceiver up: promoted in {up[0]:.1f} s, mean tick {up[1] * 1000:.1f} ms; "
            f"receiver down: promoted in {down[0]:.1f} s, mean tick {down[1] * 1000:.1f} ms"
        )
        assert healthy.received, "the healthy receiver heard nothing"
        assert down[0] < up[0] * 1.5 + 5, (up, down)
        assert down[1] < up[1] * 2 + 0.05, (up, down)
        # And the receiver's failure is in status, in the sender's words (a 5 s timeout each)
        story.until("the failure is recorded", lambda: (story.status().get("notifications") or {})
                    .get("sinks", [{}])[0].get("failures", 0) >= 1, timeout=30)  # fmt: skip
        sink = story.status()["notifications"]["sinks"][0]
        assert "Timeout" in sink["lastError"] or "timed out" in sink["lastError"], sink
    finally:
        healthy.close()
        hanging.close()


def test_the_report_draws_a_real_rollout_from_its_status_and_prometheus(
    story: Story, prometheus: PrometheusPool, telemetry: ErrorRateExporter, tmp_path: Path
) -> None:
    # Given a Prometheus that scrapes the models and the operator, as in production
    target = story.operator.metrics_url.removeprefix("http://").removesuffix("/metrics")
    server = prometheus(
        [ScrapeJob("models", (telemetry.target,)), ScrapeJob("operator", (target,))]
    )
    telemetry.error_rate.labels(version="v1").set(0.001)
    telemetry.error_rate.labels(version="v2").set(0.004)
    # When v2 is rolled out and promoted
    story.promoted(model_rollout(server.url, "v1"), model_rollout(server.url, "v2"))
    time.sleep(3)  # the last scrapes
    # Then the data behind the picture is the rollout's: its weights, its signal and bound, and
    # its decisions
    body = story.get("modelrollout", NAME)
    assert body is not None
    data = report.gather(body, server.url, since=300)
    weights = [v for _, v in data.weight]
    assert 50.0 in weights, weights  # the canary's step (its 100% lasts less than a scrape)
    assert weights[-1] == 0.0
    assert any(abs(v - 0.004) < 1e-9 for _, v in data.signals["error-rate"]), data.signals
    assert {v for _, v in data.bounds["error-rate"]} == {0.01}
    assert [d.what for d in data.decisions][-1] == "v2 Promoted"
    # And the command writes the picture and the summary
    said = story.cli("report", NAME, "--prometheus", server.url, "--since", "5m",
                     "--out", str(tmp_path))  # fmt: skip
    assert "wrote" in said
    assert (tmp_path / f"{NAME}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = (tmp_path / f"{NAME}.md").read_text()
    assert "| v2 Promoted | operator |" in summary, summary
    assert "| error-rate | 0.004 | 0.01 | 0 |" in summary, summary  # value, bound, at Fail
