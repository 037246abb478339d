"""Scale benchmark: N concurrent ModelRollouts with short steps on the local control plane.

    python bench/scale.py [--rollouts 100] [--tick 30] [--runs 1] [--idle 60] [--commands 20]

Prints, per run and as medians over runs: step lag (when a timed step actually ended minus when
it was scheduled to end; median, p95, max), operator peak RSS and CPU time, API requests per
step (from the API server's own request counter) over the wave, API requests per idle rollout
per minute once every rollout is at rest, and command-to-action latency (a `promote` annotation
on a rollout waiting at an indefinite pause, until status records the command; median, max).
Steps are timed pauses, so the figures measure the controller, not Prometheus.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import urllib3
from kubernetes import client, config, watch

from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.testing.acceptor import RouteAcceptor
from modelrollout.testing.cluster import Binaries, LocalCluster, wait_for
from modelrollout.testing.manifests import rollout
from modelrollout.testing.operator import OperatorProcess

ROOT = Path(__file__).resolve().parents[1]
PAUSE = 5.0
STEPS = [
    {"setWeight": 25},
    {"pause": {"duration": "5s"}},
    {"setWeight": 50},
    {"pause": {"duration": "5s"}},
]
TIMED = {1, 3}  # the indexes of the timed steps


def manifest(i: int, version: str) -> dict[str, Any]:
    m = rollout(f"model-{i:04d}", version)
    m["spec"]["replicas"] = 1
    m["spec"]["scaleDownDelay"] = "5s"
    m["spec"]["strategy"] = {"steps": STEPS}
    del m["spec"]["analysis"]
    return m


# What the operator reads and writes; at rest, nothing else in the cluster touches these (kwok and
# the controllers keep nodes, leases and pods), so their requests are the operator's.
OPERATORS = ("modelrollouts", "deployments", "services", "httproutes", "events")


def request_counts(cluster: LocalCluster) -> dict[str, float]:
    """The API server's request counter by verb, resource and subresource."""
    ctx = cluster.admin_context()
    with urllib.request.urlopen(f"{cluster.server}/metrics", context=ctx, timeout=30) as r:  # noqa: S310
        text = r.read().decode()
    counts: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and 'component="apiserver"' in line:
            inside = line[line.index("{") + 1 : line.index("}")]
            labels = dict(part.split("=", 1) for part in inside.split(","))
            key = " ".join(
                labels.get(k, "").strip('"') for k in ("verb", "resource", "subresource")
            )
            counts[key.strip()] = counts.get(key.strip(), 0.0) + float(line.rsplit(" ", 1)[1])
    return counts


def apiserver_requests(cluster: LocalCluster, resources: tuple[str, ...] = ()) -> float:
    """Requests the API server has served: all of them, or those on `resources`."""
    ctx = cluster.admin_context()
    with urllib.request.urlopen(f"{cluster.server}/metrics", context=ctx, timeout=30) as r:  # noqa: S310
        text = r.read().decode()
    total = 0.0
    for line in text.splitlines():
        if line.startswith("apiserver_request_total{") and 'component="apiserver"' in line:
            if resources and not any(f'resource="{name}"' in line for name in resources):
                continue
            total += float(line.rsplit(" ", 1)[1])
    return total


def proc_stats(pid: int) -> tuple[float, float]:
    """(peak RSS in MiB, CPU seconds) of a process."""
    status = Path(f"/proc/{pid}/status").read_text()
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    return hwm / 1024, ticks / 100


@dataclass
class Transitions:
    """When each rollout was first seen at each step: from a watch, so each change is stamped as
    it happens (a list every 0.25 s cost a fifth of a core at 1,000 rollouts, and blurred lags)."""

    seen: dict[str, dict[int, float]]
    stopped: threading.Event

    def note(self, item: dict[str, Any], now: float) -> None:
        status = item.get("status") or {}
        name = item["metadata"]["name"]
        if (status.get("canary") or {}).get("version") == "v2" and status.get(
            "currentStep"
        ) is not None:
            self.seen.setdefault(name, {}).setdefault(status["currentStep"], now)
        if (status.get("stable") or {}).get("version") == "v2":
            self.seen.setdefault(name, {}).setdefault(len(STEPS) + 1, now)

    def poll(self, objects: client.CustomObjectsApi) -> None:
        follow(objects, ("modelrollout.io", "v1alpha1", "default", "modelrollouts"), self.note,
               self.stopped)  # fmt: skip


def follow(objects: client.CustomObjectsApi, resource: tuple[str, str, str, str],
           note: Any, stopped: threading.Event) -> None:  # fmt: skip
    """Call note(object, monotonic time) for every object of `resource` as it is listed and as
    it changes, until `stopped`."""
    while not stopped.is_set():
        try:
            listed: Any = objects.list_namespaced_custom_object(*resource)
        except (client.exceptions.ApiException, urllib3.exceptions.HTTPError):
            stopped.wait(1)
            continue
        now = time.monotonic()
        for item in listed["items"]:
            note(item, now)
        stream = watch.Watch()
        try:
            for event in stream.stream(objects.list_namespaced_custom_object, *resource,
                                       resource_version=listed["metadata"]["resourceVersion"],
                                       timeout_seconds=30):  # fmt: skip
                note(event["object"], time.monotonic())
                if stopped.is_set():
                    break
        except (client.exceptions.ApiException, urllib3.exceptions.HTTPError):
            continue  # expired, or the cluster is going away: list again, or stop
        finally:
            stream.stop()


def lateness(metrics_url: str) -> tuple[float, float, float]:
    """(ticks, p50, p95 of how late ticks started) from the operator's own histogram, as the
    upper edge of the bucket each quantile falls in."""
    with urllib.request.urlopen(metrics_url, timeout=30) as r:  # noqa: S310
        text = r.read().decode()
    buckets = []
    for line in text.splitlines():
        if line.startswith("modelrollout_tick_lateness_seconds_bucket{"):
            edge = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(edge), float(line.rsplit(" ", 1)[1])))
    total = buckets[-1][1] if buckets else 0.0

    def quantile(q: float) -> float:
        return next((edge for edge, count in buckets if count >= q * total), math.inf)

    return total, quantile(0.5), quantile(0.95)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def command_latencies(objects: client.CustomObjectsApi, names: list[str]) -> list[float]:
    """Seconds from a `promote` annotation to status recording that command, one at a time."""
    latencies = []
    for name in names:
        command = new_command("promote", "bench")
        patch = {"metadata": {"annotations": {COMMAND_ANNOTATION: encode(command)}}}
        started = time.monotonic()
        objects.patch_namespaced_custom_object(
            "modelrollout.io", "v1alpha1", "default", "modelrollouts", name, patch
        )

        def recorded(name: str = name, id_: str = command.id) -> bool:
            body: Any = objects.get_namespaced_custom_object(
                "modelrollout.io", "v1alpha1", "default", "modelrollouts", name
            )
            return (body.get("status") or {}).get("lastCommand") == id_

        if not wait_for(recorded, timeout=60, interval=0.02):
            raise SystemExit(f"{name}: the command was not acted on within 60 s")
        latencies.append(time.monotonic() - started)
    return latencies


def paused_then_promoted(cluster: LocalCluster, objects: client.CustomObjectsApi,
                         operator: OperatorProcess, n: int,
                         commands: int) -> list[float]:  # fmt: skip
    """Command-to-action latencies: a sample waits at an indefinite pause, then each is
    promoted by a human's command."""
    sample = [f"model-{i:04d}" for i in range(0, n, max(1, n // commands))][:commands]
    waiting = [manifest(i, "v3") for i in range(n) if f"model-{i:04d}" in sample]
    for m in waiting:
        m["spec"]["strategy"] = {"steps": [{"setWeight": 25}, {"pause": {}}]}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": waiting}), timeout=300)  # fmt: skip

    def paused() -> bool:
        listed: Any = objects.list_namespaced_custom_object(
            "modelrollout.io", "v1alpha1", "default", "modelrollouts"
        )
        return sum((i.get("status") or {}).get("phase") == "Paused"
                   for i in listed["items"]) == len(sample)  # fmt: skip

    if not wait_for(paused, timeout=300, interval=1):
        raise SystemExit(f"the sample never paused; operator log:\n{operator.log()}")
    return command_latencies(objects, sample)


def apply_version(cluster: LocalCluster, n: int, version: str) -> None:
    items = {"apiVersion": "v1", "kind": "List",
             "items": [manifest(i, version) for i in range(n)]}  # fmt: skip
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(items), timeout=300)


def one_run(n: int, tick: float, idle: float, commands: int) -> dict[str, float]:
    with LocalCluster(Binaries.locate()) as cluster:
        cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
        cluster.established("modelrollouts.modelrollout.io")
        operator = OperatorProcess(cluster.kubeconfig, tick_seconds=tick)
        operator.start()
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        objects = client.CustomObjectsApi(api)
        # kwok has no data plane: a stand-in controller accepts the routes (a weight counts
        # only once one has); its own requests are left out of the operator's figures
        acceptor = RouteAcceptor(api).start()
        try:
            apply_version(cluster, n, "v1")

            def all_stable(version: str) -> bool:
                listed: Any = objects.list_namespaced_custom_object(
                    "modelrollout.io", "v1alpha1", "default", "modelrollouts"
                )
                return sum(((i.get("status") or {}).get("stable") or {}).get("version") == version
                           for i in listed["items"]) == n  # fmt: skip

            if not wait_for(lambda: all_stable("v1"), timeout=600 + n, interval=1):
                raise SystemExit(f"not all v1 stable; operator log:\n{operator.log()}")
            assert operator.process is not None
            requests_before = apiserver_requests(cluster) - acceptor.requests
            counts_before = request_counts(cluster)
            _, cpu_before = proc_stats(operator.process.pid)
            transitions = Transitions({}, threading.Event())
            poller = threading.Thread(target=transitions.poll, args=(objects,), daemon=True)
            poller.start()
            started = time.monotonic()
            apply_version(cluster, n, "v2")
            if not wait_for(lambda: all_stable("v2"), timeout=900 + n, interval=1):
                raise SystemExit(f"not all v2 promoted; operator log:\n{operator.log()}")
            elapsed = time.monotonic() - started
            transitions.stopped.set()
            poller.join(timeout=1)  # a daemon; its watch ends by itself within 30 s
            requests = apiserver_requests(cluster) - acceptor.requests - requests_before
            counts = request_counts(cluster)  # (the acceptor's list and patch of httproutes too)
            spent = {k: v - counts_before.get(k, 0.0) for k, v in counts.items()}
            top = sorted(spent.items(), key=lambda kv: -kv[1])[:12]
            shown = [f"{k} {v / (n * len(STEPS)):.2f}" for k, v in top if v > 0]
            print("  requests per step by verb and resource: " + ", ".join(shown), flush=True)
            _, cpu_after = proc_stats(operator.process.pid)
            # At rest (old revisions scaled down and removed): what the operator asks of the API
            # server while nothing changes.
            time.sleep(20)
            at_rest = apiserver_requests(cluster, OPERATORS) - acceptor.requests
            time.sleep(idle)
            idle_requests = apiserver_requests(cluster, OPERATORS) - acceptor.requests - at_rest
            latencies = paused_then_promoted(cluster, objects, operator, n, commands)
            ticks, late_p50, late_p95 = lateness(operator.metrics_url)
            rss, _ = proc_stats(operator.process.pid)
        finally:
            acceptor.stop()
            operator.close()
    lags = []
    for steps in transitions.seen.values():
        for index in TIMED:
            if index in steps and index + 1 in steps:
                lags.append(steps[index + 1] - steps[index] - PAUSE)
    total_steps = n * len(STEPS)
    return {
        "rollouts": n,
        "wall_s": elapsed,
        "lag_median_s": statistics.median(lags),
        "lag_p95_s": percentile(lags, 0.95),
        "lag_max_s": max(lags),
        "operator_peak_rss_mib": rss,
        "operator_cpu_s": cpu_after - cpu_before,
        "api_requests_per_step": requests / total_steps,
        "idle_requests_per_rollout_minute": idle_requests / n / (idle / 60),
        "command_median_s": statistics.median(latencies),
        "command_max_s": max(latencies),
        "ticks": ticks,
        "tick_late_p50_s": late_p50,
        "tick_late_p95_s": late_p95,
        "lag_samples": len(lags),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=100)
    parser.add_argument(
        "--tick",
        type=float,
        default=30.0,
        help="the operator's longest poll, seconds (its default)",
    )
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--idle", type=float, default=60.0, help="seconds measured at rest")
    parser.add_argument("--commands", type=int, default=20, help="rollouts sent a command")
    args = parser.parse_args()
    results = []
    for run in range(args.runs):
        result = one_run(args.rollouts, args.tick, args.idle, args.commands)
        results.append(result)
        print(f"run {run + 1}: " + "  ".join(f"{k} {v:.2f}" for k, v in result.items()), flush=True)
    if args.runs > 1:
        print("median: " + "  ".join(
            f"{k} {statistics.median(r[k] for r in results):.2f}" for k in results[0]
        ))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
