"""The watch after promotion, told through the ticker over fakes: a monitor that looks at the
stable revision, its alarms, and the retraining they ask for (at most one at a time, a cooldown,
a human's approval, a Job that cannot be created)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from modelrollout.analysis.notifications import Answer
from modelrollout.analysis.series import Increases
from modelrollout.controller.delivery import Sender
from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.domain.judging import Measurement
from modelrollout.k8s.owner import ClusterError
from modelrollout.testing.fakes import FakeWorld
from modelrollout.testing.manifests import rollout

T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
NS, NAME = "ml", "fraud-detector"
ERRORS = "monitor_errors"
JOB = {
    "template": {
        "spec": {
            "template": {
                "spec": {
                    "containers": [
                        {
                            "name": "train",
                            "image": "example/job:1",
                            "env": [{"name": "DATA", "value": "s3://labels"}],
                        }
                    ]
                }
            }
        }
    }
}


def watched(
    *, approval: str = "none", signals: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    m = rollout(version="v1")
    m["spec"]["monitor"] = {
        "interval": "1m",
        "window": "10m",
        "baseline": "10m",
        "confirm": 2,
        "cooldown": "1h",
        "signals": signals or [{"name": "errors", "threshold": {"query": ERRORS, "max": 0.01}}],
        "onAlarm": [{"retrain": {"cooldown": "6h", "approval": approval, "job": JOB}}],
    }
    return m


class Scene:
    def __init__(self, manifest: dict[str, Any]) -> None:
        self.world = FakeWorld()
        self.errors = 0.001
        self.world.source.answer = lambda q: Measurement(value=self.errors if q == ERRORS else 0.0)
        self.world.cluster.add(manifest)
        self.ticker = self.world.ticker()
        self.now = T0
        self.tick()

    def tick(self, minutes: float = 1) -> dict[str, Any]:
        self.now += timedelta(minutes=minutes)
        self.ticker.run(NS, NAME, self.now)
        return self.world.cluster.status()

    def run(self, minutes: int) -> dict[str, Any]:
        status: dict[str, Any] = {}
        for _ in range(minutes):
            status = self.tick()
        return status

    def command(self, kind: str, user: str) -> None:
        command = new_command(kind, user)  # type: ignore[arg-type]
        self.world.cluster.annotate(NS, NAME, {COMMAND_ANNOTATION: encode(command)})

    def reasons(self) -> list[str]:
        return self.world.notifier.reasons()

    def job(self, n: int = 1) -> dict[str, Any] | None:
        return self.world.cluster.jobs.get((NS, f"{NAME}-retrain-{n}"))


def test_a_healthy_stable_is_watched_without_alarms_and_a_drift_waits_a_window() -> None:
    drift = {
        "name": "amounts",
        "drift": {
            "histogram": "h_bucket",
            "against": "reference",
            "reference": {"name": "ref", "key": "r.json"},
        },
    }
    scene = Scene(
        watched(signals=[{"name": "errors", "threshold": {"query": ERRORS, "max": 0.01}}, drift])
    )
    status = scene.run(5)
    errors, amounts = status["monitor"]["signals"]
    assert errors["verdict"] == "Pass"  # a threshold has its own range: judged at once
    assert amounts["verdict"] == "Inconclusive"  # a window of the new model's inputs first
    assert "first window" in amounts["message"]
    status = scene.run(30)
    assert status["monitor"]["signals"][1]["verdict"] != "Inconclusive" or (
        "first window" not in status["monitor"]["signals"][1]["message"]
    )
    assert status["monitor"]["signals"][0]["verdict"] == "Pass"
    assert status["monitor"]["budgetPerSignal"] == "360h"  # 720h over two signals
    assert "MonitorAlarm" not in scene.reasons()
    assert scene.world.cluster.jobs == {}


def test_an_alarm_needs_two_failing_looks_and_retrains_once_with_its_trigger_in_the_env() -> None:
    scene = Scene(watched())
    scene.run(12)
    scene.errors = 0.2
    scene.tick()
    assert "MonitorAlarm" not in scene.reasons()  # one failing look is not an alarm (confirm 2)
    status = scene.tick()
    assert scene.reasons().count("MonitorAlarm") == 1
    retraining = status["retraining"]["current"]
    assert (retraining["state"], retraining["job"]) == ("Pending", f"{NAME}-retrain-1")
    assert retraining["trigger"]["signal"] == "errors"
    # Then the next tick creates its Job, with what triggered it in its env
    status = scene.tick()
    job = scene.job()
    assert job is not None
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELROLLOUT_TRIGGER_SIGNAL"] == "errors"
    assert float(env["MODELROLLOUT_TRIGGER_VALUE"]) == 0.2
    assert env["MODELROLLOUT_TRIGGER_BOUND"] == "0.01"
    assert (env["MODEL_VERSION"], env["DATA"]) == ("v1", "s3://labels")
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    assert job["metadata"]["ownerReferences"][0]["name"] == NAME
    assert status["retraining"]["current"]["state"] == "Running"
    # When the failure goes on past the monitor's cooldown (1h), Then it alarms again, and no
    # second Job starts while the first runs
    scene.run(70)
    assert scene.reasons().count("MonitorAlarm") == 2
    assert "RetrainingSkipped" in scene.reasons()
    assert scene.job(2) is None
    # When the Job succeeds, Then its outcome is in the retraining history
    scene.world.cluster.jobs[(NS, f"{NAME}-retrain-1")]["outcome"] = ("Succeeded", "model v2 ok")
    status = scene.tick()
    done = status["retraining"]["history"][-1]
    assert (done["state"], done["message"]) == ("Succeeded", "model v2 ok")
    assert status["retraining"].get("current") is None
    # And an alarm inside the retraining's cooldown (6h) starts nothing; after it, one does
    scene.run(60)
    assert scene.job(2) is None
    scene.run(300)
    assert scene.job(2) is not None
    assert scene.reasons().count("RetrainingRequested") == 2


def test_with_approval_required_nothing_runs_until_approve_and_reject_ends_it() -> None:
    scene = Scene(watched(approval="required"))
    scene.run(12)
    scene.errors = 0.2
    status = scene.run(5)
    assert status["retraining"]["current"]["state"] == "WaitingForApproval"
    assert "ApprovalRequired" in scene.reasons()
    assert scene.job() is None
    scene.command("approve", "alice@example.com")
    status = scene.run(2)
    assert scene.job() is not None
    assert status["retraining"]["current"]["decidedBy"] == "alice@example.com"
    approved = next(e for _, e in scene.world.notifier.sent if e.reason == "Approved")
    assert "alice@example.com" in approved.message
    # a second rollout, whose retraining is rejected
    scene = Scene(watched(approval="required"))
    scene.run(12)
    scene.errors = 0.2
    scene.run(5)
    scene.command("reject", "bob@example.com")
    status = scene.run(2)
    assert scene.job() is None
    assert status["retraining"]["history"][-1]["state"] == "Rejected"
    assert status["retraining"]["history"][-1]["decidedBy"] == "bob@example.com"


def test_a_job_that_cannot_be_created_is_an_error_in_its_words_created_after_the_cooldown() -> None:
    scene = Scene(watched())
    scene.run(12)
    forbidden = ClusterError(
        'jobs.batch is forbidden: User "system:serviceaccount:ml:op" cannot create resource "jobs"',
        403,
    )
    scene.world.cluster.faults.add("create_job", forbidden, times=1)
    scene.errors = 0.2
    status = scene.run(3)
    current = status["retraining"]["current"]
    assert current["state"] == "Error"
    assert "cannot create resource" in current["message"]
    assert current["retryAt"]
    assert "RetrainingFailed" in scene.reasons()
    assert not status.get("conditions") or all(
        c["type"] != "OperatorFault" or c["status"] == "False" for c in status["conditions"]
    )
    # When the cooldown (6h) has passed, Then the Job is created after all
    scene.run(60 * 6 + 2)
    assert scene.job() is not None


def test_a_kpi_that_falls_after_its_baseline_alarms() -> None:
    kpi = [
        {"name": "accuracy", "kpi": {"successes": "ok_total", "total": "all_total", "drop": 0.02}}
    ]
    scene = Scene(watched(signals=kpi))
    rate = {"value": 0.90}
    per_look = 3000.0  # labels a minute

    def counted(selector: str) -> Increases:
        share = rate["value"] if selector == "ok_total" else 1.0
        return Increases(by={"": per_look * share})

    scene.world.source.counted = counted
    status = scene.run(15)
    detector = status["monitor"]["detectors"][0]
    assert detector["floor"] is not None  # 10 min of 3,000 labels: the baseline is ready
    assert status["monitor"]["signals"][0]["verdict"] == "Pass"
    status = scene.run(60)
    assert "MonitorAlarm" not in scene.reasons()
    rate["value"] = 0.85
    for _ in range(10):
        scene.tick()
        if "MonitorAlarm" in scene.reasons():
            break
    assert "MonitorAlarm" in scene.reasons()
    assert scene.world.cluster.status()["retraining"]["current"]["trigger"]["signal"] == "accuracy"


HEURISTIC = {"version": "rules-v1", "replicas": 1, "template": {
    "metadata": {"labels": {"app": NAME}},
    "spec": {"containers": [{"name": "rules", "image": "example/rules:1"}]}}}  # fmt: skip


def falling_back(to: str) -> dict[str, Any]:
    m = watched()
    m["spec"]["monitor"].update(confirm=1, window="2m", onAlarm=[{"fallback": to}])
    m["spec"]["fallback"] = HEURISTIC
    m["spec"]["scaleDownDelay"] = "30m"
    return m


def test_a_hard_failure_with_no_warm_previous_falls_back_to_the_heuristic() -> None:
    scene = Scene(falling_back("previous"))
    # the fallback revision is kept at its size and ready beside the stable one
    assert scene.world.cluster.deployments[(NS, f"{NAME}-fallback")].replicas == 1
    scene.run(4)
    scene.errors = 0.5
    status = scene.tick()
    assert status["fallback"]["reason"].startswith("errors:")
    assert "FellBack" in scene.reasons()
    assert "rules-v1" in status["message"]
    # the stable Service now selects the fallback's pods; nothing else moved
    assert status["stable"]["version"] == "v1"
    # and the monitor rests while the stable serves nothing
    before = status["monitor"]["lastEvaluatedAt"]
    assert scene.run(5)["monitor"]["lastEvaluatedAt"] == before
    # When a human says resume, Then the stable serves again
    scene.command("resume", "carol")
    status = scene.run(1)
    assert status.get("fallback") is None
    assert "FallbackEnded" in scene.reasons()


def test_a_hard_failure_within_scale_down_delay_goes_back_to_the_warm_previous() -> None:
    scene = Scene(falling_back("previous"))
    v2 = falling_back("previous")
    v2["spec"]["model"]["version"] = "v2"
    v2["spec"]["strategy"]["steps"] = [{"setWeight": 50}]
    del v2["spec"]["analysis"]["signals"]
    scene.world.cluster.add(v2)
    for _ in range(20):
        if scene.tick(0.5).get("stable", {}).get("version") == "v2":
            break
    status = scene.world.cluster.status()
    assert status["stable"]["version"] == "v2"
    scene.run(3)  # past the monitor's first window on v2, within scaleDownDelay (30 min)
    scene.errors = 0.5
    status = scene.tick()
    assert (status["phase"], status["stable"]["version"]) == ("RolledBack", "v1")
    assert status["canary"]["version"] == "v2"  # remembered as rejected
    assert status.get("fallback") is None


def test_a_retraining_sent_to_a_workflow_engine_is_a_cloud_event_carrying_its_trigger() -> None:
    posted: list[tuple[str, bytes]] = []

    def post(url: str, body: bytes, kind: str, signature: str | None) -> Answer:
        posted.append((url, body))
        return Answer(True)

    m = watched()
    m["spec"]["monitor"]["onAlarm"] = [{"retrain": {"cooldown": "6h", "webhook": {
        "url": "https://events.example/retrain"}}}]  # fmt: skip
    scene = Scene(m)
    sender = Sender(lambda _ns, _n: {}, post=post)
    scene.ticker.deliveries = sender
    scene.run(12)
    scene.errors = 0.2
    status = scene.run(3)
    sender.drain_now()
    done = status["retraining"]["history"][-1]
    assert (done["state"], done["message"]) == (
        "Requested",
        "sent as a CloudEvent to https://events.example/retrain",
    )
    assert scene.world.cluster.jobs == {}  # no Job: the engine runs it
    (url, body), *_ = [p for p in posted if b"retrainingrequested" in p[1]]
    event = json.loads(body)
    assert url == "https://events.example/retrain"
    assert event["type"] == "io.modelrollout.rollout.retrainingrequested.v1"
    assert event["data"]["details"]["signal"] == "errors"
    assert float(event["data"]["details"]["value"]) == 0.2
    # the engine hears the Retraining events only: not the alarm itself
    assert all(b"monitoralarm" not in b for _, b in posted)
