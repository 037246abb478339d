"""Peer benchmark: Argo Rollouts' controller and this operator through the same wave, on the same
local control plane build, one after the other.

    python bench/peer.py [--rollouts 250] [--runs 1] [--tick 30]

Each run starts a fresh control plane (kwok nodes), creates N rollouts of 1 replica at v1, waits
until all are stable, then changes all to v2 with the steps setWeight 25, pause 5s, setWeight 50,
pause 5s, and waits until all are promoted. Argo Rollouts (built from its Go module by
hack/build-argo-rollouts.sh, cached outside the repository) runs with its defaults and no traffic
router (its replica-based canary); this operator with the Gateway API router. Printed for each:
CPU seconds and peak RSS of the controller, API requests per step (the API server's own counter,
all clients), the wave's wall time, and step lag (median, p95); then this operator's figure over
Argo's, as a ratio (below 1: this operator needs less).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kubernetes import client, config

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import (
    PAUSE,
    STEPS,
    TIMED,
    apiserver_requests,
    follow,
    manifest,
    one_run,
    percentile,
    proc_stats,
)

from modelrollout.testing.cluster import Binaries, LocalCluster, wait_for
from modelrollout.testing.processes import ManagedProcess, free_ports

ROOT = Path(__file__).resolve().parents[1]
ARGO = ("argoproj.io", "v1alpha1", "default", "rollouts")
FIGURES = ("operator_cpu_s", "operator_peak_rss_mib", "api_requests_per_step", "wall_s",
           "lag_median_s", "lag_p95_s")  # fmt: skip


def argo_build() -> Path:
    """The cache directory of the Argo Rollouts build (built on first use, ~2.5 min cold)."""
    script = ROOT / "hack" / "build-argo-rollouts.sh"
    out = subprocess.run([shutil.which("bash") or "/bin/bash", str(script)],  # noqa: S603
                         capture_output=True, text=True, check=True)  # fmt: skip
    return Path(out.stdout.strip().splitlines()[-1])


def argo_rollout(i: int, version: str) -> dict[str, Any]:
    """The same pods as bench/scale.py's, as an Argo Rollout with the same steps."""
    ours = manifest(i, version)
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Rollout",
        "metadata": {"name": ours["metadata"]["name"]},
        "spec": {
            "replicas": 1,
            "selector": ours["spec"]["selector"],
            "template": {
                **ours["spec"]["template"],
                "spec": {
                    "containers": [
                        {**c, "env": [{"name": "MODEL_VERSION", "value": version}]}
                        for c in ours["spec"]["template"]["spec"]["containers"]
                    ]
                },
            },
            "strategy": {"canary": {"steps": STEPS}},
        },
    }


@dataclass
class ArgoSteps:
    """When each Argo Rollout was first seen at each step index, from a watch."""

    seen: dict[str, dict[int, float]]
    stopped: threading.Event

    def note(self, item: dict[str, Any], now: float) -> None:
        status = item.get("status") or {}
        name = item["metadata"]["name"]
        if status.get("currentStepIndex") is not None and _updating(item):
            self.seen.setdefault(name, {}).setdefault(status["currentStepIndex"], now)
        if _promoted(item, "v2"):
            self.seen.setdefault(name, {}).setdefault(len(STEPS) + 1, now)

    def poll(self, objects: client.CustomObjectsApi) -> None:
        follow(objects, ARGO, self.note, self.stopped)


def _version(item: dict[str, Any]) -> str:
    env = item["spec"]["template"]["spec"]["containers"][0].get("env") or [{}]
    return str(env[0].get("value", ""))


def _updating(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    return _version(item) == "v2" and status.get("stableRS") != status.get("currentPodHash")


def _promoted(item: dict[str, Any], version: str) -> bool:
    status = item.get("status") or {}
    observed = str(status.get("observedGeneration")) == str(item["metadata"].get("generation"))
    return (_version(item) == version and observed and status.get("phase") == "Healthy"
            and status.get("stableRS") == status.get("currentPodHash"))  # fmt: skip


def argo_run(n: int, build: Path) -> dict[str, float]:
    with LocalCluster(Binaries.locate()) as cluster:
        for crd in sorted((build / "crds").glob("*-crd.yaml")):
            cluster.kubectl("apply", "--server-side", "-f", str(crd))
        cluster.established("rollouts.argoproj.io")
        metrics_port, health_port = free_ports(2)
        log = Path(cluster.workdir) / "argo-rollouts.log"
        controller = ManagedProcess(
            name="argo-rollouts",
            argv=[str(build / "bin" / "rollouts-controller"), "--kubeconfig",
                  str(cluster.kubeconfig), "--metricsPort", str(metrics_port), "--healthzPort",
                  str(health_port), "--loglevel", "warn", "--leader-elect=false"],
            log_path=log,
        )  # fmt: skip
        controller.start()
        api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
        objects = client.CustomObjectsApi(api)
        try:
            apply_all(cluster, [argo_rollout(i, "v1") for i in range(n)])

            def all_promoted(version: str) -> bool:
                listed: Any = objects.list_namespaced_custom_object(*ARGO)
                return sum(_promoted(i, version) for i in listed["items"]) == n

            if not wait_for(lambda: all_promoted("v1"), timeout=600 + n, interval=1):
                raise SystemExit(f"Argo: not all v1 healthy; log:\n{log.read_text()[-3000:]}")
            assert controller.popen is not None
            pid = controller.popen.pid
            requests_before = apiserver_requests(cluster)
            _, cpu_before = proc_stats(pid)
            steps = ArgoSteps({}, threading.Event())
            poller = threading.Thread(target=steps.poll, args=(objects,), daemon=True)
            poller.start()
            started = time.monotonic()
            apply_all(cluster, [argo_rollout(i, "v2") for i in range(n)])
            if not wait_for(lambda: all_promoted("v2"), timeout=900 + n, interval=1):
                raise SystemExit(f"Argo: not all v2 promoted; log:\n{log.read_text()[-3000:]}")
            elapsed = time.monotonic() - started
            steps.stopped.set()
            poller.join(timeout=1)  # a daemon; its watch ends by itself within 30 s
            requests = apiserver_requests(cluster) - requests_before
            rss, cpu_after = proc_stats(pid)
        finally:
            controller.stop()
    lags = [s[i + 1] - s[i] - PAUSE for s in steps.seen.values() for i in TIMED
            if i in s and i + 1 in s]  # fmt: skip
    return {
        "operator_cpu_s": cpu_after - cpu_before,
        "operator_peak_rss_mib": rss,
        "api_requests_per_step": requests / (n * len(STEPS)),
        "wall_s": elapsed,
        "lag_median_s": statistics.median(lags),
        "lag_p95_s": percentile(lags, 0.95),
    }


def apply_all(cluster: LocalCluster, items: list[dict[str, Any]]) -> None:
    listed = {"apiVersion": "v1", "kind": "List", "items": items}
    cluster.kubectl("apply", "-f", "-", stdin=json.dumps(listed), timeout=600)


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rollouts", type=int, default=250)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument(
        "--tick",
        type=float,
        default=30.0,
        help="this operator's longest poll, seconds (its default)",
    )
    args = parser.parse_args()
    build = argo_build()
    argo, ours = [], []
    for run in range(args.runs):
        argo.append(argo_run(args.rollouts, build))
        ours.append(one_run(args.rollouts, args.tick, idle=10, commands=5))
        print(f"run {run + 1}: argo " + "  ".join(f"{k} {argo[-1][k]:.2f}" for k in FIGURES)
              + "\n       ours " + "  ".join(f"{k} {ours[-1][k]:.2f}" for k in FIGURES),
              flush=True)  # fmt: skip
    print(f"\n{args.rollouts} rollouts, medians of {args.runs} run(s)")
    print(f"{'figure':<24}{'Argo Rollouts':>15}{'modelrollout':>15}{'ratio':>8}")
    for key in FIGURES:
        a = statistics.median(r[key] for r in argo)
        o = statistics.median(r[key] for r in ours)
        ratio = f"{o / a:.2f}" if a > 0 else "-"
        print(f"{key:<24}{a:>15.2f}{o:>15.2f}{ratio:>8}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
