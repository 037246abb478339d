"""Rollouts on the real data plane: the revisions' pods are processes on the process node, the
operator's HTTPRoute is served by Traefik, and Prometheus finds the pods through the API server.
Every split here is counted from the answers of the pods themselves."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from modelrollout.testing.cluster import LocalCluster, wait_for
from modelrollout.testing.kubelet import PLACEMENT
from modelrollout.testing.podserver import CRASH, ECHO, JOB
from modelrollout.testing.prometheus import PrometheusServer
from modelrollout.testing.stories import (
    NAME,
    Story,
    served,
    stable_behind_traefik,
    users,
    within,
)
from modelrollout.testing.traefik import Traefik

pytestmark = pytest.mark.cluster


def test_the_split_through_traefik_follows_the_route_at_two_weights(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    steps = [{"setWeight": 20}, {"pause": {}}, {"setWeight": 60}, {"pause": {}}]
    # Given v1 is stable on processes behind Traefik
    stable_behind_traefik(story, gateway, host, pods_metrics.url, steps)
    # When v2 is rolled out, at 20% then at 60%
    story.apply(served("v2", host, pods_metrics.url, steps))
    before = 0
    for weight in (20, 60):
        story.until(f"the canary holds {weight}%", lambda w=weight: story.phase() == "Paused"
                    and story.canary_weight() == w)  # fmt: skip
        # Traefik applies the route a moment after the API server has it (later on a loaded
        # machine): wait until a probe's share is past halfway from the old weight to the new,
        # which the old route gives with a chance below 1e-6 at 400 requests
        halfway = 400 * (before + weight) / 200
        story.until(f"Traefik applies {weight}%", lambda h=halfway: gateway.send(host, 400)["v2"]
                    >= h, timeout=60)  # fmt: skip
        before = weight
        # Then over 5,000 requests the canary's share fits the weight (99.9% binomial interval)
        counts = gateway.send(host, 5000)
        assert sum(counts.values()) == 5000, counts
        assert set(counts) <= {"v1", "v2"}, counts
        assert within(counts["v2"], 5000, weight), (weight, counts)
        story.command("promote")  # ends the pause step, as Argo Rollouts' promote does


def test_a_header_match_sends_every_matching_request_to_the_canary(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    steps = [{"setWeight": 0}, {"pause": {}}]
    stable_behind_traefik(story, gateway, host, pods_metrics.url, steps)
    story.apply(served("v2", host, pods_metrics.url, steps))
    story.until("the canary is up, paused at 0%", lambda: story.phase() == "Paused")
    # Given a rule, beside the operator's route, that sends `x-canary: yes` to the canary
    rule = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": "testers"},
            "spec": {"parentRefs": [{"name": "public"}], "hostnames": [host], "rules": [{
                "matches": [{"headers": [{"name": "x-canary", "value": "yes"}]}],
                "backendRefs": [{"name": f"{NAME}-canary", "port": 80}]}]}}  # fmt: skip
    story.apply(rule)

    # When requests carry the header, and others do not
    def matching() -> bool:
        return gateway.send(host, 50, headers={"x-canary": "yes"}) == {"v2": 50}

    assert wait_for(matching, timeout=30), "Traefik never applied the header rule"
    # Then every matching request reaches the canary, and none of the others does
    assert gateway.send(host, 1000, headers={"x-canary": "yes"}) == {"v2": 1000}
    assert gateway.send(host, 1000, headers={"x-canary": "no"}) == {"v1": 1000}
    assert gateway.send(host, 1000) == {"v1": 1000}


def test_a_canary_that_crashes_at_start_is_rolled_back_on_its_deadline_naming_the_crash(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    steps = [{"setWeight": 50}, {"analyze": {"duration": "3s"}}]
    stable_behind_traefik(story, gateway, host, pods_metrics.url, steps)
    # When v2's server exits as it starts
    story.apply(served("v2", host, pods_metrics.url, steps, image=CRASH))
    # Then it never becomes Available, and it is rolled back on progressDeadline (20 s) with
    # the crash named: its exit code and what it said
    story.until("v2 is rolled back", lambda: story.phase() == "RolledBack", timeout=60)
    message = story.status()["history"][-1]["reason"]
    assert "progressDeadline" in message, message
    assert "exit code 3" in message, message
    assert "model weights not found" in message, message
    assert story.status().get("canaryWeight", 0) == 0
    assert gateway.send(host, 100) == {"v1": 100}


def test_a_canary_that_serves_30_s_then_exits_and_restarts_is_rolled_back_naming_the_crash(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    steps = [{"setWeight": 50}, {"analyze": {"duration": "90s"}}]
    stable_behind_traefik(story, gateway, host, pods_metrics.url, steps)
    # When v2 serves for 30 s, exits 1 and is restarted by the node, while users send requests
    with users(gateway, host) as answered:
        story.apply(served("v2", host, pods_metrics.url, steps, env={"EXIT_AFTER": "30"}))
        story.until("v2 is rolled back", lambda: story.phase() == "RolledBack", timeout=120)
    # Then it is rolled back, never promoted, on the crash: its exit code, what it said, and its
    # restart are in the reason (its Deployment was Available again a moment later)
    status = story.status()
    assert story.stable_version() == "v1"
    assert "Promoted" not in [h.get("outcome") for h in status["history"]
                              if h.get("revision") == status["canary"]["revision"]]  # fmt: skip
    reason = status["history"][-1]["reason"]
    assert "restarted or stopped being ready" in reason, reason
    assert "exited with code 1 (Error): out of memory after serving 30 s" in reason, reason
    assert "1 restart" in reason, reason
    assert answered["v2"] > 0, answered  # it did serve users before it crashed
    assert wait_for(lambda: gateway.send(host, 100) == {"v1": 100}, timeout=30)


def test_a_canary_whose_answers_fail_through_the_gateway_while_ready_is_rolled_back(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str, tmp_path: Path
) -> None:
    steps = [{"setWeight": 50}, {"analyze": {"duration": "90s"}}]
    switches = tmp_path / "fail"
    switches.mkdir()
    (switches / "v2").touch()  # v2 answers every request with 500; its health check passes
    env = {"FAIL_DIR": str(switches)}
    stable_behind_traefik(story, gateway, host, pods_metrics.url, steps, env=env)
    # When v2 takes 50% while users send requests through the gateway
    with users(gateway, host) as answered:
        story.apply(served("v2", host, pods_metrics.url, steps, env=env))
        story.until("v2 is rolled back", lambda: story.phase() == "RolledBack", timeout=120)
    # Then the errors users saw through the gateway roll it back, never promoted, though its
    # pods stayed Ready: nothing restarted, and the reason is the error signal
    status = story.status()
    assert story.stable_version() == "v1"
    reason = status["history"][-1]["reason"]
    assert reason.startswith("signal errors"), reason
    assert "restarted" not in reason, reason
    assert answered["v2"] > 0, answered
    pods = json.loads(
        story.cluster.kubectl(
            "get",
            "pods",
            "-n",
            story.namespace,
            "-l",
            f"modelrollout.io/revision={status['canary']['revision']}",
            "-o",
            "json",
        ).stdout
    )["items"]
    assert all(sum(c.get("restartCount", 0) for c in p["status"].get("containerStatuses") or [])
               == 0 for p in pods), pods  # fmt: skip


def test_pods_are_processes_deleting_one_stops_it_and_scaling_changes_their_number(
    cluster: LocalCluster, namespace: str
) -> None:
    node = cluster.node
    assert node is not None
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment",
                  "metadata": {"name": "echo", "namespace": namespace},
                  "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "echo"}},
                           "template": {"metadata": {"labels": {"app": "echo"}},
                                        "spec": {**PLACEMENT, "containers": [
                                            {"name": "s", "image": f"{ECHO}:1"}]}}}}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(deployment))
    assert wait_for(lambda: len(node.processes(namespace)) == 3, 30)
    pods = json.loads(cluster.kubectl("get", "pods", "-n", namespace, "-o", "json").stdout)
    victim = pods["items"][0]
    pid = next(c.process.pid for p in node.pods.values() if p.name == victim["metadata"]["name"]
               for c in p.containers if c.process is not None)  # fmt: skip
    # When a pod is deleted, its process is stopped (and the ReplicaSet starts another)
    cluster.kubectl("delete", "pod", victim["metadata"]["name"], "-n", namespace, "--wait=true")
    assert pid not in node.processes(namespace)
    assert wait_for(lambda: len(node.processes(namespace)) == 3, 30)
    # When the Deployment is scaled, the number of processes follows
    cluster.kubectl("scale", "deployment", "echo", "-n", namespace, "--replicas=1")
    assert wait_for(lambda: len(node.processes(namespace)) == 1, 30), node.processes(namespace)
    cluster.kubectl("scale", "deployment", "echo", "-n", namespace, "--replicas=2")
    assert wait_for(lambda: len(node.processes(namespace)) == 2, 30), node.processes(namespace)


def _job(name: str, code: int, message: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": 0, "template": {"spec": {
                **PLACEMENT, "restartPolicy": "Never", "containers": [{
                    "name": "train", "image": f"{JOB}:1",
                    "args": ["--seconds", "0.5", "--message", message,
                             "--exit", str(code)]}]}}}}  # fmt: skip


def test_a_job_succeeds_with_its_termination_message_and_a_failing_one_fails_with_its_code(
    cluster: LocalCluster, namespace: str
) -> None:
    jobs = [_job("trains", 0, "model v7 registered"), _job("fails", 4, "no labelled data")]
    cluster.kubectl(
        "apply",
        "-n",
        namespace,
        "-f",
        "-",
        stdin=json.dumps({"apiVersion": "v1", "kind": "List", "items": jobs}),
    )

    def pod_of(job: str) -> dict[str, Any]:
        out = cluster.kubectl("get", "pods", "-n", namespace, "-l", f"job-name={job}", "-o", "json")
        items: list[dict[str, Any]] = json.loads(out.stdout)["items"]
        return items[0] if items else {}

    def condition(job: str) -> str | None:
        out = cluster.kubectl("get", "job", job, "-n", namespace, "-o", "json")
        conditions = json.loads(out.stdout).get("status", {}).get("conditions") or []
        return next((c["type"] for c in conditions if c["status"] == "True"
                     and c["type"] in ("Complete", "Failed")), None)  # fmt: skip

    assert wait_for(lambda: condition("trains") == "Complete", 60), pod_of("trains")
    assert wait_for(lambda: condition("fails") == "Failed", 60), pod_of("fails")
    ok, bad = pod_of("trains"), pod_of("fails")
    assert ok["status"]["phase"] == "Succeeded"
    done = ok["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (done["exitCode"], done["message"]) == (0, "model v7 registered")
    assert bad["status"]["phase"] == "Failed"
    failed = bad["status"]["containerStatuses"][0]["state"]["terminated"]
    assert (failed["exitCode"], failed["reason"], failed["message"]) == (
        4,
        "Error",
        "no labelled data",
    )


def test_a_split_the_route_does_not_say_fails_the_sample_ratio_check(
    story: Story, gateway: Traefik, pods_metrics: PrometheusServer, host: str
) -> None:
    steps = [{"setWeight": 50}, {"analyze": {"duration": "5m"}}]
    stable_behind_traefik(story, gateway, host, pods_metrics.url, steps)
    # Given a second HTTPRoute, not the operator's, that takes /predict for the stable only
    foreign = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
               "metadata": {"name": "legacy"},
               "spec": {"parentRefs": [{"name": "public"}], "hostnames": [host], "rules": [{
                   "matches": [{"path": {"type": "PathPrefix", "value": "/predict"}}],
                   "backendRefs": [{"name": f"{NAME}-stable", "port": 80}]}]}}  # fmt: skip
    story.apply(foreign)
    # When v2 takes 50% by the route, while half of the requests go to /predict
    story.apply(served("v2", host, pods_metrics.url, steps))
    story.until("the canary takes 50%", lambda: story.canary_weight() == 50)
    deadline = time.monotonic() + 60

    def mismatch() -> dict[str, Any] | None:
        signals = (story.status().get("analysis") or {}).get("signals") or []
        return next((s for s in signals if s["name"] == "sample-ratio"
                     and s.get("verdict") == "Error"), None)  # fmt: skip

    found = None
    while found is None and time.monotonic() < deadline:
        gateway.send(host, 400, paths=("/predict", "/score"))
        found = mismatch()
    # Then the sample-ratio check fails the evaluation: the canary got about 25%, not 50%
    assert found is not None, story.status().get("analysis")
    assert "sample ratio mismatch" in found["message"], found
    assert 0.15 < found["value"] < 0.35, found


def test_a_pod_process_that_dies_is_reported_with_its_log_tail(
    cluster: LocalCluster, namespace: str
) -> None:
    node = cluster.node
    assert node is not None
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "dies"},
           "spec": {**PLACEMENT, "restartPolicy": "Never", "containers": [{
               "name": "server", "image": f"{CRASH}:1",
               "terminationMessagePolicy": "FallbackToLogsOnError"}]}}  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))
    # When its process exits with an error
    assert wait_for(lambda: any(f"{namespace}/dies" in r for r in node.reports), 30)
    # Then the node reports it with the log's last lines and where the log is
    report = next(r for r in node.reports if f"{namespace}/dies" in r)
    assert "exited with code 3" in report
    assert "error: /models/fraud/model.bin: no such file" in report
    assert str(node.log_path(namespace, "dies", "server")) in report
    # And the pod says it too: Failed, exit code 3, the message the process wrote
    out = cluster.kubectl("get", "pod", "dies", "-n", namespace, "-o", "json").stdout
    status = json.loads(out)["status"]
    assert status["phase"] == "Failed"
    ended = status["containerStatuses"][0]["state"]["terminated"]
    assert (ended["exitCode"], ended["message"]) == (
        3,
        "model weights not found: /models/fraud/model.bin",
    )


def test_an_image_the_node_does_not_know_waits_with_err_image_pull(
    cluster: LocalCluster, namespace: str
) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "unknown"},
        "spec": {**PLACEMENT, "containers": [{"name": "s", "image": "example/nowhere:1"}]},
    }
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(pod))

    def waiting() -> dict[str, Any]:
        out = cluster.kubectl("get", "pod", "unknown", "-n", namespace, "-o", "json").stdout
        statuses = json.loads(out).get("status", {}).get("containerStatuses") or [{}]
        found: dict[str, Any] = statuses[0].get("state", {}).get("waiting") or {}
        return found

    assert wait_for(lambda: waiting().get("reason") == "ErrImagePull", 30)
    assert "example/nowhere:1" in waiting()["message"]
    assert ECHO in waiting()["message"]  # it says which images it knows


def test_a_pod_reaches_a_service_through_the_variables_a_kubelet_sets(
    cluster: LocalCluster, namespace: str
) -> None:
    # Given a Service `echo` over a ready pod
    server = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "echo"},
              "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "echo"}},
                       "template": {"metadata": {"labels": {"app": "echo"}}, "spec": {
                           **PLACEMENT, "containers": [{
                               "name": "s", "image": f"{ECHO}:1",
                               "env": [{"name": "MODEL_VERSION", "value": "v9"}],
                               "ports": [{"name": "http", "containerPort": 8080}],
                               "readinessProbe": {"tcpSocket": {"port": "http"},
                                                  "periodSeconds": 1}}]}}}}  # fmt: skip
    service = {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "echo"},
               "spec": {"selector": {"app": "echo"},
                        "ports": [{"name": "web", "port": 80, "targetPort": "http"}]}}  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [server, service]}))  # fmt: skip
    cluster.kubectl("rollout", "status", "deployment/echo", "-n", namespace, "--timeout=60s")
    # When a Job calls it at $(ECHO_SERVICE_HOST):$(ECHO_SERVICE_PORT_WEB), as a kubelet sets them
    url = "http://$(ECHO_SERVICE_HOST):$(ECHO_SERVICE_PORT_WEB)/from-a-job"
    job = _job("caller", 0, "")
    job["spec"]["template"]["spec"]["containers"][0]["args"] += ["--url", url]
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(job))
    # Then the call reaches the Service's pod through its cluster IP
    out: dict[str, Any] = {}

    def finished() -> bool:
        got = cluster.kubectl("get", "pods", "-n", namespace, "-l", "job-name=caller", "-o",
                              "json").stdout  # fmt: skip
        items = json.loads(got)["items"]
        out.update(items[0] if items else {})
        return bool(items) and items[0].get("status", {}).get("phase") in ("Succeeded", "Failed")

    assert wait_for(finished, 60), out.get("status")
    ended = out["status"]["containerStatuses"][0]["state"]["terminated"]
    assert ended["exitCode"] == 0, (ended, cluster.node.reports if cluster.node else None)
    answer = json.loads(ended["message"])
    assert (answer["version"], answer["path"]) == ("v9", "/from-a-job")


def test_a_pods_env_is_resolved_from_config_maps_secrets_and_its_own_fields(
    cluster: LocalCluster, namespace: str
) -> None:
    config = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"},
              "data": {"threshold": "0.7"}}  # fmt: skip
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "creds"},
              "stringData": {"token": "s3cr3t"}}  # fmt: skip
    job = _job("env", 0, "$(THRESHOLD)/$(TOKEN)/$(ME)/$(WHERE)")
    job["spec"]["template"]["spec"]["containers"][0]["env"] = [
        {"name": "THRESHOLD", "valueFrom": {"configMapKeyRef": {"name": "settings",
                                                                "key": "threshold"}}},
        {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}},
        {"name": "ME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "WHERE", "value": "at-$(ME)"},
    ]  # fmt: skip
    cluster.kubectl("apply", "-n", namespace, "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": [config, secret, job]}))  # fmt: skip

    def terminated() -> dict[str, Any]:
        got = cluster.kubectl("get", "pods", "-n", namespace, "-l", "job-name=env", "-o",
                              "json").stdout  # fmt: skip
        items = json.loads(got)["items"]
        statuses = (items[0].get("status", {}).get("containerStatuses") or [{}]) if items else [{}]
        found: dict[str, Any] = statuses[0].get("state", {}).get("terminated") or {}
        return found

    assert wait_for(lambda: bool(terminated()), 60)
    assert terminated()["message"] == f"0.7/s3cr3t/{namespace}/at-{namespace}"
