"""The demo's model server: one process per pod, on the local cluster's process node.

It loads the model version its pod runs ($MODEL_VERSION, set by the operator) from the demo's
model registry ($MODEL_DIR), answers `POST /predict` and `POST /feedback` on $POD_IP:8080, and
exports what it does with `modelrollout.telemetry` on $POD_IP:9090, which Prometheus finds through
the pod's `prometheus.io/*` annotations. `GET /healthz` is its readiness probe.

    POST /predict   {"features": [amount, transactions_24h, account_age_days, foreign]}
                 -> {"id": ..., "score": ..., "fraud": 0|1, "version": ..., "pod": ...}
    POST /feedback  {"labels": [[id, true_label], ...]}  (labels for this pod's predictions)
"""

from __future__ import annotations

import http.server
import itertools
import json
import os
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
from models import ServingError, load
from prometheus_client import CollectorRegistry

from modelrollout.telemetry import Telemetry

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
AMOUNT_EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500)
REMEMBERED = 50_000  # predictions kept for their labels


def main() -> None:
    name, version = os.environ["MODEL_NAME"], os.environ["MODEL_VERSION"]
    pod, address = os.environ.get("HOSTNAME", "?"), os.environ["POD_IP"]
    model = load(Path(os.environ["MODEL_DIR"]) / f"{version}.json")
    telemetry = Telemetry(features={"amount": AMOUNT_EDGES}, latency_buckets=LATENCY_BUCKETS,
                          registry=CollectorRegistry())  # fmt: skip
    telemetry.serve(9090, addr=address)
    served = telemetry.model(name, version)
    predicted: OrderedDict[int, int] = OrderedDict()
    ids = itertools.count(1)
    lock = threading.Lock()

    broken = Path(os.environ["MODEL_DIR"]) / f"broken-{version}"  # the demo's hard failure

    def predict(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        started = time.perf_counter()
        if broken.exists():
            served.request("500")
            return 500, {"error": "model store unreachable", "version": version, "pod": pod}
        # what this version's feature pipeline feeds its model
        x = np.array([body["features"]], dtype=float) * np.array([model.input_scale, 1, 1, 1])
        served.inputs({"amount": float(x[0, 0])})
        try:
            score = float(model.score(x)[0])
        except ServingError as error:
            served.request("500")
            return 500, {"error": str(error), "version": version, "pod": pod}
        fraud = int(score >= 0.5)
        with lock:
            key = next(ids)
            predicted[key] = fraud
            if len(predicted) > REMEMBERED:
                predicted.popitem(last=False)
        served.request("200", seconds=time.perf_counter() - started)
        served.prediction(score, fraud, segment="foreign" if x[0, 3] else "domestic")
        return 200, {"id": key, "score": score, "fraud": fraud, "version": version, "pod": pod}

    def feedback(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        joined = 0
        for key, label in body.get("labels", []):
            with lock:
                fraud = predicted.pop(int(key), None)
            if fraud is not None:
                served.feedback(correct=fraud == int(label))
                joined += 1
        return 200, {"joined": joined}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body are two writes: without this, Nagle's algorithm and the peer's delayed
        # ACK hold every kept-alive answer ~40 ms
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            self._answer(200 if self.path == "/healthz" else 404, {"version": version})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(length) or b"{}")
                route = {"/predict": predict, "/feedback": feedback}.get(self.path)
                code, answer = route(body) if route else (404, {"error": "no such path"})
            except (ValueError, KeyError, TypeError) as error:
                code, answer = 400, {"error": f"bad request: {error}"}
            self._answer(code, answer)

        def _answer(self, code: int, answer: dict[str, Any]) -> None:
            data = json.dumps(answer).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", pod)
            self.send_header("X-Pod-Address", f"{address}:8080")
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # a line per request would drown the pod's log

    server = http.server.ThreadingHTTPServer((address, 8080), Handler)
    print(f"{name} {version} serving on {address}:8080, metrics on :9090", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
