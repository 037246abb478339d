"""The watch after promotion end to end: the operator process watches a stable model's inputs in
a real Prometheus against a frozen training reference; its alarm creates a retraining Job that
runs as a process on the process node; a human approves or rejects with the command line."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from kubernetes import client

from modelrollout.cli.main import main
from modelrollout.testing.cluster import LocalCluster
from modelrollout.testing.kubelet import PLACEMENT
from modelrollout.testing.manifests import rollout
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.podserver import JOB
from modelrollout.testing.prometheus import PrometheusPool, ScrapeJob
from modelrollout.testing.stories import NAME, Story
from modelrollout.testing.traffic import AMOUNT_EDGES, AMOUNTS, ARM, SimulatedTraffic, Truth

pytestmark = pytest.mark.cluster

TRAINING_DRIFT = {
    "name": "training-drift",
    "drift": {
        "histogram": AMOUNTS,
        "against": "reference",
        "reference": {"name": "training-amounts", "key": "reference.json"},
        "max": 0.1,
        "minSamples": 300,
    },
}


class Watched:
    """v1 promoted and watched, its traffic simulated (kwok pods), its retraining Job real."""

    def __init__(
        self, story: Story, kube: client.ApiClient, prometheus: PrometheusPool, tmp_path: Path
    ) -> None:
        self.story, self.kube = story, kube
        training = tmp_path / "training.csv"
        amounts = np.random.default_rng(11).lognormal(4.0, 1.0, 20_000)
        training.write_text("amount\n" + "".join(f"{a:.2f}\n" for a in amounts))
        out = tmp_path / "reference.yaml"
        edges = ",".join(str(e) for e in AMOUNT_EDGES)
        assert (
            main(
                [
                    "reference",
                    "training-amounts",
                    "--csv",
                    str(training),
                    "--column",
                    "amount",
                    "--edges",
                    edges,
                    "-o",
                    str(out),
                ]
            )
            == 0
        )
        client.CoreV1Api(kube).create_namespaced_config_map(
            story.namespace, yaml.safe_load(out.read_text())
        )
        self.traffic = SimulatedTraffic(kube, story.namespace, NAME, {"v1": Truth()}, rate=600)
        self.server = prometheus([ScrapeJob("models", (self.traffic.target,))])

    def apply(self, *, approval: str = "none", cooldown: str = "10m",
              signals: list[dict[str, Any]] | None = None) -> None:  # fmt: skip
        m = rollout(NAME, "v1")
        job = {
            "template": {
                "spec": {
                    "backoffLimit": 0,
                    "template": {
                        "spec": {
                            **PLACEMENT,
                            "containers": [
                                {
                                    "name": "train",
                                    "image": f"{JOB}:1",
                                    "args": [
                                        "--seconds",
                                        "1",
                                        "--message",
                                        "model v2 trained on the last day's labels",
                                    ],
                                }
                            ],
                        }
                    },
                }
            }
        }
        m["spec"]["analysis"] = {"interval": "1s", "prometheus": {"address": self.server.url}}
        m["spec"]["monitor"] = {
            "interval": "1s",
            "window": "5s",
            "baseline": "5s",
            "confirm": 2,
            "cooldown": "3s",
            "signals": signals or [TRAINING_DRIFT],
            "onAlarm": [{"retrain": {"approval": approval, "cooldown": cooldown, "job": job}}],
        }
        self.story.apply(m)
        self.story.stable("v1")

    def drift(self) -> None:
        """Upstream, the amounts become e^1 times larger (the world moved, not the model)."""
        self.traffic.truths["v1"] = Truth(amount_log_mean=5.0)

    def retraining(self) -> dict[str, Any]:
        return dict(self.story.status().get("retraining") or {})

    def jobs(self) -> list[dict[str, Any]]:
        out = self.story.cluster.kubectl("get", "jobs", "-n", self.story.namespace, "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items

    def events(self, reason: str) -> list[str]:
        out = self.story.cluster.kubectl(
            "get",
            "events",
            "-n",
            self.story.namespace,
            "--field-selector",
            f"reason={reason}",
            "-o",
            "json",
        )
        return [e["message"] for e in json.loads(out.stdout)["items"]]

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "modelrollout.cli.main",
                "--kubeconfig",
                str(self.story.cluster.kubeconfig),
                "-n",
                self.story.namespace,
                *args,
                NAME,
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def close(self) -> None:
        self.traffic.close()


@pytest.fixture
def watched(
    cluster: LocalCluster,
    namespace: str,
    operator: OperatorProcess,
    *,
    kube: client.ApiClient,
    prometheus: PrometheusPool,
    tmp_path: Path,
) -> Iterator[Watched]:
    w = Watched(Story(cluster, namespace, operator), kube, prometheus, tmp_path)
    yield w
    w.close()


def _last(retraining: dict[str, Any]) -> dict[str, Any]:
    return dict(retraining.get("current") or (retraining.get("history") or [{}])[-1])


def test_data_drift_on_the_stable_retrains_once_and_the_jobs_outcome_is_in_status(
    watched: Watched,
) -> None:
    story = watched.story
    # Given v1 is promoted and watched against its training reference, and healthy
    watched.apply(cooldown="10m")
    story.until(
        "the monitor passes",
        lambda: any(
            s["verdict"] == "Pass" for s in (story.status().get("monitor") or {}).get("signals", [])
        ),
        timeout=60,
    )
    assert watched.jobs() == []
    # When its inputs drift from training
    watched.drift()
    # Then one retraining Job runs, as a process on the process node, and succeeds
    story.until(
        "a retraining is asked for", lambda: watched.retraining().get("count") == 1, timeout=60
    )
    story.until(
        "the retraining succeeds",
        lambda: _last(watched.retraining()).get("state") == "Succeeded",
        timeout=60,
    )
    done = _last(watched.retraining())
    assert done["job"] == f"{NAME}-retrain-1"
    assert done["message"] == "model v2 trained on the last day's labels"
    assert done["trigger"]["signal"] == "training-drift"
    assert done["trigger"]["reference"] == "training-amounts/reference.json"
    (job,) = watched.jobs()
    env = {e["name"]: e["value"] for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MODELROLLOUT_TRIGGER_SIGNAL"] == "training-drift"
    assert float(env["MODELROLLOUT_TRIGGER_VALUE"]) > 0.1
    # When the drift goes on and alarms again (the monitor's cooldown is 3 s), inside the
    # retraining's cooldown (10 min), Then no second Job is created
    story.until(
        "a second alarm",
        lambda: len((story.status().get("monitor") or {}).get("alarms", [])) >= 2,
        timeout=60,
    )
    story.until(
        "the skip is said",
        lambda: any("cooldown" in m for m in watched.events("RetrainingSkipped")),
        timeout=30,
    )
    assert len(watched.jobs()) == 1
    assert watched.retraining()["count"] == 1


def test_with_approval_required_nothing_runs_until_approve_and_reject_ends_it(
    watched: Watched,
) -> None:
    story = watched.story
    watched.apply(approval="required", cooldown="1s")
    # With nothing waiting, approve and reject say so and exit non-zero
    for decision in ("approve", "reject"):
        said = watched.cli(decision)
        assert said.returncode != 0, said
        assert "nothing waits for approval" in said.stderr, said.stderr
    # When the inputs drift, Then a retraining waits for a human, visibly, and no Job runs
    watched.drift()
    story.until(
        "a retraining waits",
        lambda: _last(watched.retraining()).get("state") == "WaitingForApproval",
        timeout=60,
    )
    assert any("modelrollout approve" in m for m in watched.events("ApprovalRequired"))
    assert watched.jobs() == []
    # When a human rejects it, Then it ends, naming them, and still nothing runs
    said = watched.cli("reject")
    assert said.returncode == 0, said.stderr
    user = said.stdout.strip().rsplit(" as ", 1)[1]
    story.until(
        "it is rejected",
        lambda: any(r.get("state") == "Rejected" for r in watched.retraining().get("history", [])),
        timeout=30,
    )
    rejected = next(r for r in watched.retraining()["history"] if r["state"] == "Rejected")
    assert rejected["decidedBy"] == user
    assert any(user in m for m in watched.events("Rejected"))
    assert watched.jobs() == []
    # When the drift alarms again and a human approves, Then the Job runs, naming them
    story.until(
        "a second one waits",
        lambda: (
            _last(watched.retraining()).get("state") == "WaitingForApproval"
            and watched.retraining()["count"] == 2
        ),
        timeout=60,
    )
    said = watched.cli("approve")
    assert said.returncode == 0, said.stderr
    story.until(
        "the approved retraining succeeds",
        lambda: any(r.get("state") == "Succeeded" for r in watched.retraining().get("history", [])),
        timeout=60,
    )
    approved = next(r for r in watched.retraining()["history"] if r["state"] == "Succeeded")
    assert approved["decidedBy"] == user
    assert any(user in m for m in watched.events("Approved"))
    assert [j["metadata"]["name"] for j in watched.jobs()] == [f"{NAME}-retrain-2"]


def test_a_job_the_quota_refuses_is_an_error_in_the_api_servers_words_then_retried(
    watched: Watched,
) -> None:
    story = watched.story
    # Given a quota that allows no Job in the namespace
    quota = {"apiVersion": "v1", "kind": "ResourceQuota", "metadata": {"name": "no-jobs"},
             "spec": {"hard": {"count/jobs.batch": "0"}}}  # fmt: skip
    story.apply(quota)
    watched.apply(cooldown="5s")
    # When the inputs drift, Then the retraining is an Error with the API server's words
    watched.drift()
    story.until("the retraining errs", lambda: _last(watched.retraining()).get("state")
                == "Error", timeout=60)  # fmt: skip
    failed = _last(watched.retraining())
    assert "exceeded quota" in failed["message"], failed
    assert failed["retryAt"]
    assert any("exceeded quota" in m for m in watched.events("RetrainingFailed"))
    assert watched.jobs() == []
    # When the quota is lifted, Then after the cooldown the same retraining creates its Job
    story.cluster.kubectl("delete", "resourcequota", "no-jobs", "-n", story.namespace)

    def first_succeeded() -> bool:
        known = watched.retraining()
        every = [*(known.get("history") or []), *([known["current"]] if known.get("current")
                                                   else [])]  # fmt: skip
        return any(r.get("state") == "Succeeded" and r.get("job") == f"{NAME}-retrain-1"
                   for r in every)  # fmt: skip

    story.until("the retraining succeeds", first_succeeded, timeout=60)
    # the refused retraining's own Job; a later alarm past the 5-s cooldown may add -retrain-2
    # on a slow machine, which is not what this story is about
    names = sorted(j["metadata"]["name"] for j in watched.jobs())
    assert names[0] == f"{NAME}-retrain-1", names


def test_inputs_drifting_from_the_models_own_first_window_alarm_without_a_reference(
    watched: Watched,
) -> None:
    story = watched.story
    # Given v1 watched against its own first window after promotion (no training reference)
    own = {"name": "self-drift", "drift": {"histogram": AMOUNTS, "against": "baseline",
                                           "max": 0.1, "minSamples": 300}}  # fmt: skip
    watched.apply(signals=[own])
    story.until("the monitor passes", lambda: any(
        s["verdict"] == "Pass" for s in (story.status().get("monitor") or {}).get("signals", [])),
        timeout=60)  # fmt: skip
    # When the inputs move, Then the drift from the first window alarms and retrains
    watched.drift()
    story.until("an alarm of self-drift", lambda: any(
        a["signal"] == "self-drift" for a in (story.status().get("monitor") or {}).get(
            "alarms", [])), timeout=60)  # fmt: skip
    alarm = story.status()["monitor"]["alarms"][-1]
    assert "above max 0.1 with confidence" in alarm["message"], alarm
    story.until("a retraining", lambda: watched.retraining().get("count") == 1, timeout=30)


def test_a_segment_treated_worse_than_in_the_baseline_alarms(watched: Watched) -> None:
    story = watched.story
    # Given v1 watched for its approval parity against its own first window (40% and 40%)
    parity = {"name": "approval-parity", "fairness": {
        "selected": f'model_predictions_total{{{ARM},predicted="1"}}',
        "total": f"model_predictions_total{{{ARM}}}",
        "margin": 0.05, "minSamples": 100}}  # fmt: skip
    watched.apply(signals=[parity])
    story.until("the monitor passes", lambda: any(
        s["verdict"] == "Pass" for s in (story.status().get("monitor") or {}).get("signals", [])),
        timeout=60)  # fmt: skip
    # When segment b starts being approved half as often
    watched.traffic.truths["v1"] = Truth(selection={"a": 0.4, "b": 0.2})
    # Then the gap against the baseline's alarms
    story.until("an alarm of approval-parity", lambda: any(
        a["signal"] == "approval-parity" for a in (story.status().get("monitor") or {}).get(
            "alarms", [])), timeout=60)  # fmt: skip
    found = next(s for s in story.status()["monitor"]["signals"] if s["name"] == "approval-parity")
    assert found["value"] > 0.05, found
