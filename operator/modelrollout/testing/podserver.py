"""What the test images run on the process node, with the standard library only (it starts in
tens of milliseconds):

- `serve`: an HTTP server on $POD_IP:$PORT (8080) that answers every GET with the pod's name and
  model version as JSON and an `X-Served-By` header, and counts what it served on /metrics as
  `model_requests_total{model, version, code, arm}` (what the sample-ratio checks read; `arm`: the
  x-modelrollout-arm header a bucket rule stamped on the request, "" for none), for Prometheus;
  with $FAIL_DIR set, it answers 500 to every request while a file named after its version is
  there (a test degrades a model that is already serving, without a new revision); with
  $EXIT_AFTER set, it serves that many seconds, says so in its termination message and exits 1
  (a model server that crash-loops after serving: the kubelet restarts it);
- `crash`: a model server that fails while loading its model, says why and exits 3;
- `job`: a batch step that sleeps `--seconds`, writes `--message` to its termination message and
  exits with `--exit`; with `--url`, it GETs that URL first and its message is the answer's body.

The table that maps the test images to these is `IMAGES`.
"""

from __future__ import annotations

import argparse
import hashlib
import http.server
import json
import os
import random
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ECHO, CRASH, JOB = "example/echo", "example/crash", "example/job"
ARM_HEADER = "x-modelrollout-arm"  # domain/cohorts.py's, not imported: this file must start fast
MODEL = "example/model"  # the model server of the test manifests (manifests.rollout): an echo
OPERATOR = "ghcr.io/modelrollout/modelrollout"  # settings.COMPARATOR_IMAGE's repository


def images() -> dict[str, Any]:
    """The test images, for LocalCluster(images=...)."""
    from modelrollout.testing.kubelet import Image  # noqa: PLC0415 (this file must start fast)

    run = (sys.executable, "-m", "modelrollout.testing.podserver")
    # the operator's image, whose modelrollout-comparator command a shadow step runs
    operator = Image(
        (sys.executable, "-m", "modelrollout.controller"),
        commands={
            "modelrollout-comparator": (sys.executable, "-m", "modelrollout.shadow.comparator")
        },
    )
    return {ECHO: Image((*run, "serve")), MODEL: Image((*run, "serve")),
            CRASH: Image((*run, "crash")), JOB: Image((*run, "job")),
            OPERATOR: operator}  # fmt: skip


def uniform(request_id: str, salt: str = "") -> float:
    """A number in [0, 1) that the request id fixes (the same in every process)."""
    digest = hashlib.sha256(f"{salt}{request_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def truth(request_id: str) -> int:
    """The label of the request with this id (a test posts it to the comparator)."""
    return int(uniform(request_id, "label") < 0.5)


def predict(request_id: str, accuracy: float, noise: float) -> int:
    right = uniform(request_id) < accuracy
    guess = truth(request_id) if right else 1 - truth(request_id)
    return 1 - guess if noise > 0 and random.random() < noise else guess  # noqa: S311


def _terminate_with(message: str, code: int) -> None:
    path = os.environ.get("TERMINATION_MESSAGE_PATH")
    if path:
        Path(path).write_text(message)
    sys.exit(code)


def serve() -> None:
    pod, version = os.environ.get("HOSTNAME", "?"), os.environ.get("MODEL_VERSION", "")
    model = os.environ.get("MODEL_NAME", "")
    switch = Path(os.environ["FAIL_DIR"], version) if os.environ.get("FAIL_DIR") else None
    accuracy = float(os.environ.get("ACCURACY") or 0.9)
    noise, fail_rate = float(os.environ.get("NOISE") or 0), float(os.environ.get("FAIL_RATE") or 0)
    served = {("200", ""): 0, ("500", ""): 0}  # by code and the arm stamped on the request
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # headers and body are two writes: without this, Nagle's algorithm and the peer's delayed
        # ACK hold every kept-alive answer ~40 ms
        disable_nagle_algorithm = True

        def do_GET(self) -> None:
            if self.path == "/metrics":
                with lock:
                    lines = [
                        f'model_requests_total{{model="{model}",version="{version}",'
                        f'code="{code}",arm="{arm}"}} {count}\n'
                        for (code, arm), count in served.items()
                    ]
                self._send("".join(lines), "text/plain; version=0.0.4")
                return
            code, arm = 200, self.headers.get(ARM_HEADER, "")
            request_id = self.headers.get("x-request-id") or ""
            if self.path not in ("/healthz", "/ready"):
                failing = switch is not None and switch.exists()
                failing = failing or (bool(request_id) and uniform(request_id, "fail") < fail_rate)
                code = 500 if failing else 200
                with lock:
                    served[(str(code), arm)] = served.get((str(code), arm), 0) + 1
            answer = {"pod": pod, "version": version, "path": self.path, "arm": arm,
                      "prediction": predict(request_id, accuracy, noise)}  # fmt: skip
            self._send(json.dumps(answer), "application/json", code)

        def _send(self, body: str, kind: str, code: int = 200) -> None:
            data = body.encode()
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.send_header("X-Served-By", pod)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per request would drown the pod's log

    server = http.server.ThreadingHTTPServer(
        (os.environ["POD_IP"], int(os.environ.get("PORT", "8080"))), Handler
    )
    print(f"serving {version} as {pod} on {server.server_address}", flush=True)
    if os.environ.get("EXIT_AFTER"):
        seconds = float(os.environ["EXIT_AFTER"])
        threading.Thread(target=server.serve_forever, daemon=True).start()
        time.sleep(seconds)
        print(f"error: out of memory after serving {seconds:g} s", file=sys.stderr, flush=True)
        _terminate_with(f"out of memory after serving {seconds:g} s", 1)
    server.serve_forever()


def crash() -> None:
    print("loading model weights from /models/fraud/model.bin", flush=True)
    print("error: /models/fraud/model.bin: no such file", file=sys.stderr, flush=True)
    _terminate_with("model weights not found: /models/fraud/model.bin", 3)


def job(seconds: float, message: str, code: int, url: str | None = None) -> None:
    print(f"working for {seconds:g} s", flush=True)
    time.sleep(seconds)
    if url:
        with urllib.request.urlopen(url, timeout=10) as answer:  # noqa: S310 (a test's URL)
            message = answer.read().decode()
    print(f"done: {message} (exit {code})", flush=True)
    _terminate_with(message, code)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["serve", "crash", "job"])
    parser.add_argument("--seconds", type=float, default=0.0)
    parser.add_argument("--message", default="")
    parser.add_argument("--exit", type=int, default=0)
    parser.add_argument("--url")
    args = parser.parse_args(argv)
    if args.mode == "serve":
        serve()
    elif args.mode == "crash":
        crash()
    else:
        job(args.seconds, args.message, args.exit, args.url)


if __name__ == "__main__":
    main()
