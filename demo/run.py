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
amount) is rolled back on input drift. Then the loop closes: the world shifts (larger amounts,
and foreign transactions no longer riskier); the monitor watching v2 sees its inputs drift from
its training data and its accuracy fall; a retraining Job (demo/retrain.py, a process on the
process node) trains v5 on recent labels, registers it and sets the rollout's version with its
own ServiceAccount; v5 goes through the canary and its bake and is promoted. Last, v5 fails hard
and the traffic falls back to a heuristic within a few looks. The live `modelrollout status` view
is printed as it goes; `modelrollout report`'s picture and summary are written to out/.
"""

from __future__ import annotations

import http.client
import json
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from kubernetes import client, config
from models import accuracy, draw, save, train_all
from server import AMOUNT_EDGES
from traffic import GatewayTraffic

from modelrollout.cli import report
from modelrollout.cli.view import render_status
from modelrollout.domain.reference import DEFAULT_KEY, config_map, encode, histogram_counts
from modelrollout.testing.cluster import Binaries, LocalCluster, wait_for
from modelrollout.testing.kubelet import Image
from modelrollout.testing.operator import OperatorProcess
from modelrollout.testing.prometheus import PrometheusServer, ScrapeJob, built
from modelrollout.testing.traefik import Traefik, locate

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out"
NAME, NAMESPACE = "fraud-detector", "default"
MANIFEST = ROOT / "examples" / "demo" / "fraud-detector.yaml"
HOST = "fraud.demo.internal"  # the route's hostname, in the manifest
SERVER_IMAGE = "example.invalid/fraud"  # any tag: the process node runs demo/server.py for it
RETRAIN_IMAGE = "example.invalid/retrain"  # demo/retrain.py
REFERENCE = "fraud-training"  # the monitor's training reference (the retraining renews it)


@dataclass
class Recorder:
    """Reads the rollout as the demo goes."""

    objects: client.CustomObjectsApi

    def get(self) -> dict[str, Any]:
        body: dict[str, Any] = self.objects.get_namespaced_custom_object(
            "modelrollout.io", "v1alpha1", NAMESPACE, "modelrollouts", NAME
        )
        return body

    def until(self, what: str, holds: Any, timeout: float) -> dict[str, Any]:
        """The rollout once `holds(status)`; the demo stops saying what it waited for if not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.get()
            if holds(body.get("status") or {}):
                return body
            time.sleep(1.0)
        raise SystemExit(f"{what}: not within {timeout:.0f} s")


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


def summarise(offline: dict[str, float], body: dict[str, Any], seconds: float,
              traffic: GatewayTraffic, loop: dict[str, float]) -> str:  # fmt: skip
    status = body.get("status") or {}
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
        f"After the world shifted: the monitor's first alarm after {loop['alarm']:.0f} s, the "
        f"retraining Job done after {loop['retrained']:.0f} s, v5 promoted after "
        f"{loop['promoted']:.0f} s. After v5 failed hard: fallen back after {loop['fell']:.0f} s, "
        f"the heuristic answering after {loop['answering']:.0f} s.",
        "",
        "| version | outcome | started | finished | reason |",
        "|---|---|---|---|---|",
    ]
    for h in status.get("history", []):
        cells = (h["version"], h["outcome"], h["startedAt"], h["finishedAt"], h.get("reason", ""))
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| monitor alarm | at | message |", "|---|---|---|"]
    for alarm in (status.get("monitor") or {}).get("alarms", []):
        lines.append(f"| {alarm['signal']} | {alarm['at']} | {alarm['message']} |")
    lines += ["", "| retraining | Job | state | message |", "|---|---|---|---|"]
    for r in (status.get("retraining") or {}).get("history", []):
        lines.append(f"| {r['id']} | {r['job']} | {r['state']} | {r['message']} |")
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
    print("training five fraud classifiers and a heuristic on synthetic data ...", flush=True)
    models = train_all()
    held_out = draw(np.random.default_rng(99), 20_000)
    offline = {v: accuracy(m, held_out) for v, m in models.items()}
    print("  held-out accuracy: " + ", ".join(f"{v} {a:.3f}" for v, a in offline.items()))
    registry = Path(tempfile.mkdtemp(prefix="modelrollout-demo-models-"))
    for version, model in models.items():
        save(model, registry / f"{version}.json")
    training = draw(np.random.default_rng(7), 20_000)  # train_all's sample: the first reference
    demo = Path(__file__).resolve().parent
    images = {
        SERVER_IMAGE: Image((sys.executable, str(demo / "server.py")),
                            env={"MODEL_DIR": str(registry)}, workdir=demo),
        RETRAIN_IMAGE: Image((sys.executable, str(demo / "retrain.py")),
                             env={"MODEL_DIR": str(registry)}, workdir=demo),
    }  # fmt: skip
    try:
        with LocalCluster(Binaries.locate(), images=images) as cluster:
            # The demo's Prometheus scrapes the operator too, as a cluster's would: the report
            # reads the rollout's weights and signals from it.
            operator = OperatorProcess(cluster.kubeconfig, tick_seconds=1.0,
                                       env={"MODELROLLOUT_PERIOD_SECONDS": "5"})  # fmt: skip
            cluster.network.reach(operator.metrics_port)
            jobs = [cluster.pods_job("model-servers"),
                    ScrapeJob("operator", (f"127.0.0.1:{operator.metrics_port}",))]  # fmt: skip
            with (
                Traefik(locate(), cluster.kubeconfig, cluster.network) as gateway,
                PrometheusServer(jobs, network=cluster.network, binary=built()) as prom,
            ):
                run(Scene(cluster, gateway, prom, operator, registry), offline,
                    training.x[:, 0], began)  # fmt: skip
    finally:
        shutil.rmtree(registry, ignore_errors=True)
    print(f"demo done in {time.monotonic() - began:.0f} s; everything it started is stopped")
    return 0


@dataclass(frozen=True)
class Scene:
    cluster: LocalCluster
    gateway: Traefik
    prom: PrometheusServer
    operator: OperatorProcess
    registry: Path


def prepare(cluster: LocalCluster, amounts: Any) -> None:
    """The training reference the monitor judges inputs against, and the retraining Job's own
    identity: a ServiceAccount whose token may only read and patch this rollout and renew that
    reference."""
    reference = encode(histogram_counts(amounts, AMOUNT_EDGES), "training sample of v1-v4")
    objects: list[dict[str, Any]] = [
        config_map(REFERENCE, NAMESPACE, DEFAULT_KEY, reference),
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "retrainer"}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": "retrainer"}, "rules": [
             {"apiGroups": ["modelrollout.io"], "resources": ["modelrollouts"],
              "resourceNames": [NAME], "verbs": ["get", "patch"]},
             {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": [REFERENCE],
              "verbs": ["get", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": "retrainer"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "retrainer"},
         "subjects": [{"kind": "ServiceAccount", "name": "retrainer", "namespace": NAMESPACE}]},
    ]  # fmt: skip
    listed = {"apiVersion": "v1", "kind": "List", "items": objects}
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(listed))
    token = cluster.kubectl("create", "token", "retrainer", "-n", NAMESPACE,
                            "--duration", "2h").stdout.strip()  # fmt: skip
    kubeconfig = yaml.safe_load(cluster.kubeconfig.read_text())
    ca = Path(kubeconfig["clusters"][0]["cluster"]["certificate-authority"]).read_text()
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "retrainer-token"},
              "stringData": {"token": token, "ca.crt": ca}}  # fmt: skip
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", stdin=json.dumps(secret))


def run(scene: Scene, offline: dict[str, float], amounts: Any, began: float) -> None:
    cluster, gateway, prom, operator = scene.cluster, scene.gateway, scene.prom, scene.operator
    print(f"control plane, process node, Traefik and Prometheus up in "
          f"{time.monotonic() - began:.0f} s; prometheus at {prom.url}")  # fmt: skip
    cluster.kubectl("apply", "--server-side", "-f", str(ROOT / "crds"))
    cluster.kubectl("apply", "-f", "-", stdin=gateway.manifest_json(NAMESPACE))
    cluster.established("modelrollouts.modelrollout.io")
    prepare(cluster, amounts)
    # The demo's Prometheus scrapes every second and its canaries live for seconds, not
    # minutes: compare the arms within 5-second periods (production default: 60 s).
    operator.start()
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig))
    traffic = GatewayTraffic(gateway.url, HOST, cluster.network,
                             labelled=scene.registry / "labelled.jsonl")  # fmt: skip
    recorder = Recorder(client.CustomObjectsApi(api))
    started = datetime.now(UTC)
    loop: dict[str, float] = {}
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
        apply(cluster, prom.url, "v2")
        promoted = watch(recorder, "v2", "Promoted", timeout=240)
        print(render_status(promoted) + "\n")
        print("v2 is promoted after its bake. Rolling out v3, which has a serving bug ...\n",
              flush=True)  # fmt: skip
        apply(cluster, prom.url, "v3")
        rolled_back = watch(recorder, "v3", "RolledBack", timeout=180)
        print(render_status(rolled_back) + "\n")
        print("v3 is rolled back. Rolling out v4, whose feature pipeline doubles amounts ...\n",
              flush=True)  # fmt: skip
        apply(cluster, prom.url, "v4")
        rolled_back = watch(recorder, "v4", "RolledBack", timeout=180)
        print(render_status(rolled_back) + "\n")
        close_the_loop(recorder, traffic, scene.registry, loop)
        time.sleep(3)  # a few seconds of the aftermath for the picture
        final = recorder.get()
        print(render_status(final) + "\n")
    finally:
        traffic.stop()
        operator.close()
    time.sleep(2)  # the operator's last scrape
    data = report.gather(final, prom.url, (datetime.now(UTC) - started).total_seconds() + 5)
    report.draw(data, OUT / "demo-timeline.png")
    (OUT / "demo-report.md").write_text(report.markdown(data, "demo-timeline.png"))
    summary = OUT / "demo-summary.md"
    summary.write_text(summarise(offline, final, time.monotonic() - began, traffic, loop))
    print(f"timeline: {OUT / 'demo-timeline.png'} (modelrollout report: {OUT / 'demo-report.md'})"
          f"\nsummary:  {summary}")  # fmt: skip


def close_the_loop(recorder: Recorder, traffic: GatewayTraffic, registry: Path,
                   loop: dict[str, float]) -> None:  # fmt: skip
    """The world shifts; the monitor alarms; a retraining Job trains and sets v5; v5 is rolled
    out and promoted; then v5 fails hard and the traffic falls back to the heuristic."""
    print("v4 is rolled back; v2 serves, watched by the monitor. Now the world shifts: amounts "
          "grow and foreign transactions are no longer riskier ...\n", flush=True)  # fmt: skip
    traffic.shift()
    shifted = time.monotonic()
    body = recorder.until("the monitor's alarm", lambda st: (st.get("monitor") or {}).get(
        "alarms"), 240)  # fmt: skip
    loop["alarm"] = time.monotonic() - shifted
    print(render_status(body) + "\n")
    body = recorder.until("the retraining's outcome", lambda st: any(
        r["state"] in ("Succeeded", "Failed") for r in (st.get("retraining") or {}).get(
            "history", [])), 180)  # fmt: skip
    loop["retrained"] = time.monotonic() - shifted
    done = body["status"]["retraining"]["history"][-1]
    print(f"retraining {done['id']}: Job {done['job']} {done['state']}: {done['message']}\n",
          flush=True)  # fmt: skip
    if done["state"] != "Succeeded":
        raise SystemExit("the retraining failed")
    promoted = watch(recorder, "v5", "Promoted", timeout=300)
    loop["promoted"] = time.monotonic() - shifted
    print(render_status(promoted) + "\n")
    print("v5 is promoted. Now its model store goes away: every request fails ...\n", flush=True)
    (registry / "broken-v5").touch()
    broke = time.monotonic()
    body = recorder.until("the fallback", lambda st: st.get("fallback") is not None, 120)
    loop["fell"] = time.monotonic() - broke
    before = traffic.answered[("rules-v1", 200)]
    if not wait_for(lambda: traffic.answered[("rules-v1", 200)] > before + 100, 30):
        raise SystemExit("the heuristic answered nothing after the fallback")
    loop["answering"] = time.monotonic() - broke
    print(render_status(body) + "\n")


if __name__ == "__main__":
    sys.exit(main())
