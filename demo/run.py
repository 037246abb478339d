"""`make demo`: real model rollouts end to end on a local control plane and a real data plane.

From nothing: a control plane built from Go modules with a process node (each pod a local
process), Traefik as the Gateway API implementation, a real Prometheus that finds the model
servers' pods through the API server, the ModelRollout CRD and the operator as a process. Four
small classifiers are trained here and put in a model registry (a directory); every pod of a
revision is a model server (demo/server.py) that loads its version and answers over HTTP. Users
send transactions to the gateway; the HTTPRoute the operator writes decides which version answers;
the true labels go back to the pod that answered. Then: v1 becomes stable; v2 (better) is
promoted step by step once the evidence says it is at least as accurate; v3 (a serving bug) is
rolled back on its error rate; v4 (fast, error-free, but its feature pipeline doubles every
amount) is rolled back on input drift. The live
`modelrollout status` view is printed as it goes; a timeline picture and a summary are written
to out/.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import yaml
from kubernetes import client, config
from models import accuracy, draw, save, train_all
from traffic import GatewayTraffic

from modelrollout.cli.view import render_status
from modelrollout.testing.cluster import Binaries, LocalCluster, wait_for
from modelrollout.testing.kubelet import Image
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.prometheus import PrometheusServer, built
from modelrollout.testing.traefik import Traefik, locate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
NAME, NAMESPACE = "fraud-detector", "default"
MANIFEST = ROOT / "examples" / "demo" / "fraud-detector.yaml"
HOST = "fraud.demo.internal"  # the route's hostname, in the manifest
SERVER_IMAGE = "example.invalid/fraud"  # any tag: the process node runs demo/server.py for it


@dataclass
class Recorder:
    """Samples the rollout's status every second, for the timeline."""

    objects: client.CustomObjectsApi
    rows: list[dict[str, Any]] = field(default_factory=list)
    stopped: threading.Event = field(default_factory=threading.Event)

    def get(self) -> dict[str, Any]:
        body: dict[str, Any] = self.objects.get_namespaced_custom_object(
            "modelrollout.io", "v1alpha1", NAMESPACE, "modelrollouts", NAME
        )
        return body

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                status = self.get().get("status") or {}
            except client.exceptions.ApiException:
                status = {}
            signals = (status.get("analysis") or {}).get("signals") or []
            self.rows.append(
                {
                    "t": time.monotonic(),
                    "phase": status.get("phase"),
                    "canary": (status.get("canary") or {}).get("version"),
                    "weight": status.get("canaryWeight", 0),
                    "signals": {s["name"]: s for s in signals},
                }
            )
            self.stopped.wait(1.0)


def apply(cluster: LocalCluster, prometheus: str, version: str) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    manifest["spec"]["model"]["version"] = version
    manifest["spec"]["template"]["spec"]["containers"][0]["image"] = f"{SERVER_IMAGE}:{version}"
    manifest["spec"]["analysis"]["prometheus"]["address"] = prometheus
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(manifest))


def watch(recorder: Recorder, version: str, outcome: str, timeout: float,
          every: float = 6.0) -> dict[str, Any]:  # fmt: skip
    """Print the live status view until `version` is Promoted or RolledBack, or time out."""
    deadline, shown = time.monotonic() + timeout, 0.0
    while time.monotonic() < deadline:
        body = recorder.get()
        status = body.get("status") or {}
        if time.monotonic() - shown >= every:
            print(render_status(body) + "\n", flush=True)
            shown = time.monotonic()
        history = status.get("history") or []
        if history and (history[-1]["version"], history[-1]["outcome"]) == (version, outcome):
            return body
        time.sleep(1.0)
    raise SystemExit(f"{version} was not {outcome} within {timeout:.0f} s")


def draw_timeline(rows: list[dict[str, Any]], spec: dict[str, Any], path: Path) -> None:
    plt.switch_backend("Agg")  # files only, no display
    t0 = rows[0]["t"]
    ts = [r["t"] - t0 for r in rows]
    signals = [s["name"] for s in spec["analysis"]["signals"]]
    fig, axes = plt.subplots(
        len(signals) + 1, 1, figsize=(11, 2.3 * (len(signals) + 1)), sharex=True
    )
    axes[0].step(ts, [r["weight"] for r in rows], where="post", color="tab:blue")
    axes[0].set_ylabel("canary weight %")
    axes[0].set_ylim(-5, 105)
    last, heights = None, iter([95, 80, 65] * 10)
    for t, r in zip(ts, rows, strict=True):
        marker = (r["phase"], r["canary"])
        if marker != last and r["phase"] in ("Progressing", "Promoted", "RolledBack"):
            label = r["phase"] if r["phase"] != "Progressing" else f"canary {r['canary']}"
            for ax in axes:
                ax.axvline(t, color="grey", linewidth=0.6, linestyle=":")
            axes[0].annotate(label, (t, next(heights)), fontsize=8, ha="left", va="top")
        last = marker
    for ax, name in zip(axes[1:], signals, strict=True):
        points = [
            (t, r["signals"][name]) for t, r in zip(ts, rows, strict=True) if name in r["signals"]
        ]
        xs = [t for t, s in points if s.get("value") is not None]
        ys = [s["value"] for t, s in points if s.get("value") is not None]
        ax.plot(xs, ys, ".-", color="tab:green", markersize=3)
        fails = [(t, s["value"]) for t, s in points if s.get("verdict") == "Fail"]
        if fails:
            ax.plot(*zip(*fails, strict=True), "x", color="tab:red", markersize=8, label="Fail")
            ax.legend(loc="upper right", fontsize=8)
        latest = points[-1][1] if points else {}
        for key in ("min", "max", "bound"):  # the limit each verdict was judged against
            if latest.get(key) is not None:
                ax.axhline(latest[key], color="tab:red", linestyle="--", linewidth=1)
        ax.set_ylabel(name if latest.get("kind") != "compare" else f"{name}\nadvantage")
    axes[-1].set_xlabel("seconds since v2 was applied")
    fig.suptitle("modelrollout demo: v2 promoted, v3 rolled back on errors, v4 on input drift")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def summarise(offline: dict[str, float], history: list[dict[str, Any]], seconds: float,
              traffic: GatewayTraffic) -> str:  # fmt: skip
    answered = ", ".join(
        f"{v} {n} (HTTP {code})" for (v, code), n in sorted(traffic.answered.items())
    )
    lines = [
        "# modelrollout demo",
        "",
        f"Run at {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {seconds:.0f} s in all.",
        "",
        "Held-out accuracy: " + ", ".join(f"{v} {a:.3f}" for v, a in offline.items()),
        "",
        f"Requests answered through the gateway, by version: {answered}.",
        f"Requests without an answer: {sum(traffic.failures.values())} "
        f"({dict(traffic.failures) or 'none'}); label batches lost with their pod: "
        f"{traffic.labels_lost}.",
        "",
        "| version | outcome | started | finished | reason |",
        "|---|---|---|---|---|",
    ]
    for h in history:
        cells = (h["version"], h["outcome"], h["startedAt"], h["finishedAt"], h.get("reason", ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def wait_for_gateway(url: str, timeout: float = 60) -> None:
    """Until the gateway answers a transaction for the demo's host (a model server did)."""

    def answers() -> bool:
        connection = http.client.HTTPConnection(url.removeprefix("http://"), timeout=5)
        try:
            connection.request("POST", "/predict", body='{"features": [55, 3, 400, 0]}',
                               headers={"Host": HOST})  # fmt: skip
            return connection.getresponse().status == 200
        except OSError:
            return False
        finally:
            connection.close()

    if not wait_for(answers, timeout):
        raise SystemExit(f"the gateway at {url} did not answer for {HOST} within {timeout:.0f} s")


def main() -> int:
    began = time.monotonic()
    OUT.mkdir(exist_ok=True)
    print("training four fraud classifiers on synthetic data ...", flush=True)
    models = train_all()
    held_out = draw(np.random.default_rng(99), 20_000)
    offline = {v: accuracy(m, held_out) for v, m in models.items()}
    print("  held-out accuracy: " + ", ".join(f"{v} {a:.3f}" for v, a in offline.items()))
    registry = Path(tempfile.mkdtemp(prefix="modelrollout-demo-models-"))
    for version, model in models.items():
        save(model, registry / f"{version}.json")
    demo = Path(__file__).resolve().parent
    images = {SERVER_IMAGE: Image((sys.executable, str(demo / "server.py")),
                                  env={"MODEL_DIR": str(registry)}, workdir=demo)}  # fmt: skip
    try:
        with (
            LocalCluster(Binaries.locate(), images=images) as cluster,
            Traefik(locate(), cluster.kubeconfig, cluster.network) as gateway,
            PrometheusServer(
                [cluster.pods_job("model-servers")], network=cluster.network, binary=built()
            ) as prom,
        ):
            run(cluster, gateway, prom, offline, began)
    finally:
        shutil.rmtree(registry, ignore_errors=True)
    print(f"demo done in {time.monotonic() - began:.0f} s; everything it started is stopped")
    return 0


def run(cluster: LocalCluster, gateway: Traefik, prom: PrometheusServer,
        offline: dict[str, float], began: float) -> None:  # fmt: skip
    print(f"control plane, process node, Traefik and Prometheus up in "
          f"{time.monotonic() - began:.0f} s; prometheus at {prom.url}")  # fmt: skip
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(NAMESPACE))
    cluster.kubectl("wait", "--for=condition=Established", "crd/modelrollouts.modelrollout.io")
    # The demo's Prometheus scrapes every second and its canaries live for seconds, not
    # minutes: compare the arms within 5-second periods (production default: 60 s).
    operator = OperatorProcess(cluster.kubeconfig, tick_seconds=1.0,
                               env={"MODELROLLOUT_PERIOD_SECONDS": "5"})  # fmt: skip
    operator.start()
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    traffic = GatewayTraffic(gateway.url, HOST, cluster.network)
    recorder = Recorder(client.CustomObjectsApi(api))
    try:
        apply(cluster, prom.url, "v1")
        if not wait_for(
            lambda: (recorder.get().get("status") or {}).get("phase") == "Promoted", 60
        ):
            raise SystemExit(f"v1 never became stable; operator log:\n{operator.log()}")
        wait_for_gateway(gateway.url)
        traffic.start()
        print(f"\nv1 is stable, its pods are model servers, and users send {traffic.rate} "
              "transactions/s through Traefik. While the demo runs, so can you:\n"
              f"  curl -H 'Host: {HOST}' -d '{{\"features\": [120, 3, 400, 1]}}' "
              f"{gateway.url}/predict\n\nRolling out v2 ...\n", flush=True)  # fmt: skip
        threading.Thread(target=recorder.run, daemon=True).start()
        apply(cluster, prom.url, "v2")
        promoted = watch(recorder, "v2", "Promoted", timeout=240)
        print(render_status(promoted) + "\n")
        print("v2 is promoted. Rolling out v3, which has a serving bug ...\n", flush=True)
        apply(cluster, prom.url, "v3")
        rolled_back = watch(recorder, "v3", "RolledBack", timeout=180)
        print(render_status(rolled_back) + "\n")
        print("v3 is rolled back. Rolling out v4, whose feature pipeline doubles amounts ...\n",
              flush=True)  # fmt: skip
        apply(cluster, prom.url, "v4")
        rolled_back = watch(recorder, "v4", "RolledBack", timeout=180)
        time.sleep(3)  # a few seconds of the aftermath for the timeline
        print(render_status(rolled_back) + "\n")
    finally:
        recorder.stopped.set()
        traffic.stop()
        operator.close()
    spec = yaml.safe_load(MANIFEST.read_text())["spec"]
    draw_timeline(recorder.rows, spec, OUT / "demo-timeline.png")
    summary = OUT / "demo-summary.md"
    history = (rolled_back.get("status") or {}).get("history", [])
    summary.write_text(summarise(offline, history, time.monotonic() - began, traffic))
    print(f"timeline: {OUT / 'demo-timeline.png'}\nsummary:  {summary}")


if __name__ == "__main__":
    sys.exit(main())
