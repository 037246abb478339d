"""`make demo`: the main job, on a local control plane built from Go modules.

Today it shows the foundation the canary loop will run on: a real API server with controllers,
scheduler and kwok nodes, a model Deployment that becomes Available behind a weighted HTTPRoute,
and a real Prometheus. The canary loop itself (issue 3) replaces the middle of this script.
"""

from __future__ import annotations

import json
import sys
import time

from modelrollout.testing.cluster import Binaries, LocalCluster, wait_for
from modelrollout.testing.prometheus import PrometheusServer

MANIFESTS = {
    "apiVersion": "v1",
    "kind": "List",
    "items": [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "fraud-detector-v1", "namespace": "default"},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "fraud-detector"}},
                "template": {
                    "metadata": {"labels": {"app": "fraud-detector", "version": "v1"}},
                    "spec": {"containers": [{"name": "server", "image": "example/model:1"}]},
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {"name": "fraud-detector-stable", "namespace": "default"},
            "spec": {"selector": {"app": "fraud-detector"}, "ports": [{"port": 80}]},
        },
        {
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": {"name": "fraud-detector", "namespace": "default"},
            "spec": {
                "parentRefs": [{"name": "public"}],
                "rules": [
                    {"backendRefs": [{"name": "fraud-detector-stable", "port": 80, "weight": 100}]}
                ],
            },
        },
    ],
}


def main() -> int:
    began = time.monotonic()
    with LocalCluster(Binaries.locate()) as cluster, PrometheusServer([]) as prometheus:
        print(f"control plane up in {time.monotonic() - began:.1f} s at {cluster.server}")
        print(cluster.kubectl("get", "nodes").stdout)
        print(f"prometheus up at {prometheus.url}\n")
        cluster.kubectl("apply", "-f", "-", stdin=json.dumps(MANIFESTS))

        def available() -> bool:
            out = cluster.kubectl("get", "deploy", "fraud-detector-v1", "-o", "json").stdout
            return json.loads(out).get("status", {}).get("availableReplicas") == 3

        if not wait_for(available, timeout=60):
            print("the model Deployment did not become Available", file=sys.stderr)
            return 1
        print(cluster.kubectl("get", "deploy,pods,svc,httproute", "-o", "wide").stdout)
        print("The canary loop (ModelRollout, issue 3) is not built yet; this is its foundation.")
    print(f"done in {time.monotonic() - began:.1f} s; everything stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
