"""The shadow step's comparator: the mirror's target. For each mirrored request it asks the
candidate once and the champion twice, at the same moment, and counts what the paired signals
judge (shadow/metrics.py): pairs and disagreements of the candidate against the champion, and of
the champion against itself (the noise floor: a model server that is not deterministic disagrees
with itself); requests that failed on one side only; the candidate's latency over the
champion's. Each pair waits for its label (POST /labels, joined by the request id header) until
the label delay has passed; then it is counted right or wrong on each side. A label that comes
before its pair (the comparison still queued) waits for it as long. docs/arms.md says why
a comparator and not a join of prediction logs.

A mirrored request is counted and acknowledged at once (Traefik holds a goroutine per mirror
until it is answered, and the mirror check compares what arrived with the users' requests), then
compared by a pool of workers; when QUEUE requests already wait, it is shed, and counted so.

Memory is bounded: at most QUEUE requests wait to be compared, at most MAX_PENDING pairs wait
for labels (the oldest go first, counted as unlabelled) and the last KEPT disagreements are kept
for a human (GET /disagreements).

Its own calls carry x-modelrollout-arm: shadow, so that the model servers' request counters can
tell them from the users' (the mirror check and the sample-ratio check count unstamped ones).

Settings, from the environment: CANDIDATE_URL, CHAMPION_URL (base URLs), ROLLOUT
("namespace/name"), VERSION (the candidate's), FIELD (the JSON answer's member compared),
REQUEST_ID (the header), LABEL_DELAY (seconds), PORT (8080), TIMEOUT (seconds per call).
"""

from __future__ import annotations

import collections
import http.client
import http.server
import json
import math
import os
import queue
import socket
import threading
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from modelrollout.shadow import metrics
from modelrollout.shadow.metrics import SHADOW_ARM

ARM_HEADER = "x-modelrollout-arm"  # domain/cohorts.py's; this package stands alone
MAX_PENDING = 100_000
KEPT = 20
QUEUE = 2_000
WORKERS = 16
MAX_BODY = 1 << 20
# Headers not forwarded: hop-by-hop ones, and those the comparator sets itself.
DROPPED = frozenset({"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te",
                     "trailer", "upgrade", "host", "content-length", ARM_HEADER})  # fmt: skip


@dataclass(frozen=True)
class Settings:
    candidate: str
    champion: str
    rollout: str
    version: str
    field: str = "prediction"
    request_id: str = "x-request-id"
    label_delay: float = 600.0
    timeout: float = 10.0
    max_pending: int = MAX_PENDING

    @classmethod
    def from_environment(cls, env: dict[str, str]) -> Settings:
        missing = [
            k for k in ("CANDIDATE_URL", "CHAMPION_URL", "ROLLOUT", "VERSION") if not env.get(k)
        ]
        if missing:
            raise SystemExit(f"the comparator needs {', '.join(missing)} in its environment")
        return cls(candidate=env["CANDIDATE_URL"], champion=env["CHAMPION_URL"],
                   rollout=env["ROLLOUT"], version=env["VERSION"],
                   field=env.get("FIELD") or "prediction",
                   request_id=(env.get("REQUEST_ID") or "x-request-id").lower(),
                   label_delay=float(env.get("LABEL_DELAY") or 600),
                   timeout=float(env.get("TIMEOUT") or 10))  # fmt: skip


@dataclass(frozen=True)
class Answer:
    """One side's answer: the compared value (None: that side failed) and its latency."""

    value: Any
    seconds: float
    failure: str | None = None

    @property
    def ok(self) -> bool:
        return self.failure is None


@dataclass
class Pending:
    champion: Any
    candidate: Any
    deadline: float


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes = b""
    request_id: str | None = None


def same(a: Any, b: Any) -> bool:
    """Two answers agree: equal, numbers within a relative 1e-9 (a float's last digits)."""
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return bool(a == b)


class Counts:
    """The comparator's counters, on a registry of its own."""

    def __init__(self, rollout: str, version: str) -> None:
        self.registry = CollectorRegistry()
        common = ("rollout", "version")
        self.base = {"rollout": rollout, "version": version}

        def counter(name: str, words: str, *labels: str) -> Counter:
            return Counter(name.removesuffix("_total"), words, (*common, *labels),
                           registry=self.registry)  # fmt: skip

        self.mirrored = counter(metrics.MIRRORED, "mirrored requests received")
        self.pairs = counter(metrics.PAIRS, "pairs where both sides answered", "pair")
        self.disagreements = counter(metrics.DISAGREEMENTS, "pairs whose answers differ", "pair")
        self.one_sided = counter(metrics.ONE_SIDED, "requests failed on one side only", "failed")
        self.labelled = counter(metrics.LABELLED, "pairs joined with their label", "right")
        self.unlabelled = counter(metrics.UNLABELLED, "pairs whose label did not come in time")
        self.shed = counter(metrics.SHED, "mirrored requests not compared: the queue was full")
        self.ratio = Histogram(metrics.LATENCY_RATIO, "candidate over champion latency", common,
                               buckets=metrics.RATIO_EDGES, registry=self.registry)  # fmt: skip
        self.pending = Gauge(metrics.PENDING, "pairs waiting for a label", common,
                             registry=self.registry)  # fmt: skip
        # every series exists from the start, at 0: a measure sees the series before the counts
        for pair in ("candidate", "noise"):
            self.pairs.labels(**self.base, pair=pair)
            self.disagreements.labels(**self.base, pair=pair)
        for side in ("candidate", "champion"):
            self.one_sided.labels(**self.base, failed=side)
        for right in ("both", "champion", "candidate", "neither"):
            self.labelled.labels(**self.base, right=right)
        self.mirrored.labels(**self.base)
        self.unlabelled.labels(**self.base)
        self.shed.labels(**self.base)
        self.ratio.labels(**self.base)
        self.pending.labels(**self.base)


class Comparator:
    """Compares and joins; the HTTP server (serve) only feeds it."""

    def __init__(self, settings: Settings, ask: Any = None) -> None:
        self.s = settings
        self.counts = Counts(settings.rollout, settings.version)
        self.lock = threading.Lock()
        self.waiting: collections.OrderedDict[str, Pending] = collections.OrderedDict()
        # labels that came before their pair: request id -> (label, deadline)
        self.early: collections.OrderedDict[str, tuple[Any, float]] = collections.OrderedDict()
        self.kept: collections.deque[dict[str, Any]] = collections.deque(maxlen=KEPT)
        self.ask = ask or self._ask
        self.pool = ThreadPoolExecutor(max_workers=3 * WORKERS, thread_name_prefix="ask")
        self.queue: queue.Queue[Request] = queue.Queue(maxsize=QUEUE)
        self._local = threading.local()
        self._opened: list[http.client.HTTPConnection] = []
        self.workers: list[threading.Thread] = []

    def _c(self, metric: Counter | Histogram | Gauge, **labels: str) -> Any:
        return metric.labels(**self.counts.base, **labels)

    def start(self) -> None:
        """The workers that compare what `received` queued."""
        for i in range(WORKERS):
            worker = threading.Thread(target=self._work, name=f"compare-{i}", daemon=True)
            worker.start()
            self.workers.append(worker)

    def _work(self) -> None:
        while True:
            self.mirrored(self.queue.get())

    def received(self, request: Request) -> None:
        """A mirrored request arrived: counted at once, compared when a worker is free, or
        shed when QUEUE wait already."""
        self._c(self.counts.mirrored).inc()
        try:
            self.queue.put_nowait(request)
        except queue.Full:
            self._c(self.counts.shed).inc()

    def mirrored(self, request: Request) -> None:
        """One mirrored request compared: ask both models, count, keep the pair for its label."""
        futures = [self.pool.submit(self.ask, base, request)
                   for base in (self.s.candidate, self.s.champion, self.s.champion)]  # fmt: skip
        candidate, primary, secondary = (f.result() for f in futures)
        if primary.ok and secondary.ok:
            self._c(self.counts.pairs, pair="noise").inc()
            if not same(primary.value, secondary.value):
                self._c(self.counts.disagreements, pair="noise").inc()
        if candidate.ok != primary.ok:
            failed = "candidate" if primary.ok else "champion"
            self._c(self.counts.one_sided, failed=failed).inc()
        if not (candidate.ok and primary.ok):
            return
        self._c(self.counts.pairs, pair="candidate").inc()
        if primary.seconds > 0:
            self._c(self.counts.ratio).observe(candidate.seconds / primary.seconds)
        if not same(candidate.value, primary.value):
            self._c(self.counts.disagreements, pair="candidate").inc()
            with self.lock:
                self.kept.append({"path": request.path, "id": request.request_id,
                                  "champion": primary.value, "candidate": candidate.value,
                                  "at": time.time()})  # fmt: skip
        if request.request_id:
            pending = Pending(primary.value, candidate.value, time.monotonic() + self.s.label_delay)
            with self.lock:
                early = self.early.pop(request.request_id, None)
            if early is not None:
                self._count(pending, early[0])
            else:
                self._wait_for_label(request.request_id, pending)

    def _wait_for_label(self, request_id: str, pending: Pending) -> None:
        with self.lock:
            self._expire(time.monotonic())
            if request_id in self.waiting:  # a retried request: the first pair stands
                return
            while len(self.waiting) >= self.s.max_pending:
                self.waiting.popitem(last=False)
                self._c(self.counts.unlabelled).inc()
            self.waiting[request_id] = pending
            self._c(self.counts.pending).set(len(self.waiting))

    def _expire(self, now: float) -> None:
        """Drop the pairs past their label delay, and the labels that waited as long for their
        pair (held under the lock; oldest first)."""
        while self.waiting:
            key, first = next(iter(self.waiting.items()))
            if first.deadline > now:
                break
            del self.waiting[key]
            self._c(self.counts.unlabelled).inc()
        while self.early and next(iter(self.early.values()))[1] <= now:
            self.early.popitem(last=False)

    def label(self, request_id: str, truth: Any) -> bool:
        """A label arrived: count who was right on its pair. False: no pair waits for it yet
        (the label waits for it, within the label delay)."""
        now = time.monotonic()
        with self.lock:
            self._expire(now)
            pending = self.waiting.pop(request_id, None)
            self._c(self.counts.pending).set(len(self.waiting))
            if pending is None:
                while len(self.early) >= self.s.max_pending:
                    self.early.popitem(last=False)
                self.early[request_id] = (truth, now + self.s.label_delay)
                return False
        self._count(pending, truth)
        return True

    def _count(self, pending: Pending, truth: Any) -> None:
        champion, candidate = same(pending.champion, truth), same(pending.candidate, truth)
        right = {(True, True): "both", (True, False): "champion", (False, True): "candidate",
                 (False, False): "neither"}[(champion, candidate)]  # fmt: skip
        self._c(self.counts.labelled, right=right).inc()

    def disagreements(self) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.kept)

    def _connection(self, base: str, *, fresh: bool) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's kept-alive connection to `base` (a new one when `fresh`, or none yet);
        whether it was reused. A connection per call would cost a handshake per answer, and
        through a Service proxy a proxied connection too."""
        kept: dict[str, http.client.HTTPConnection] = self._local.__dict__.setdefault("kept", {})
        connection = kept.get(base)
        if connection is not None and not fresh:
            return connection, True
        if connection is not None:
            connection.close()
        url = urllib.parse.urlsplit(base)
        kept[base] = _Connection(url.hostname or "", url.port or 80, timeout=self.s.timeout)
        with self.lock:
            self._opened.append(kept[base])
        return kept[base], False

    def close(self) -> None:
        """Stop asking: the pool's threads, and every kept-alive connection."""
        self.pool.shutdown(wait=True)
        with self.lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def _ask(self, base: str, request: Request) -> Answer:
        """Send the request to one side and read its answer's field; once more on a new
        connection when a kept-alive one turns out closed before it answered."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in DROPPED}
        headers[ARM_HEADER] = SHADOW_ARM
        fresh = False
        while True:
            connection, reused = self._connection(base, fresh=fresh)
            started = time.perf_counter()
            try:
                connection.request(request.method, request.path, body=request.body or None,
                                   headers=headers)  # fmt: skip
                response = connection.getresponse()
                body = response.read(MAX_BODY)
                seconds = time.perf_counter() - started
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError) as e:
                if reused:
                    fresh = True
                    continue
                return self._failed(base, started, e)
            except (OSError, http.client.HTTPException) as error:
                return self._failed(base, started, error)
            if not response.isclosed():  # a body longer than MAX_BODY: not reusable
                self._connection(base, fresh=True)
            break
        if not 200 <= response.status < 300:
            return Answer(None, seconds, f"HTTP {response.status}")
        try:
            answer = json.loads(body)
            return Answer(answer[self.s.field], seconds)
        except (ValueError, KeyError, TypeError):
            return Answer(None, seconds, f"no {self.s.field!r} in the answer")

    def _failed(self, base: str, started: float, error: BaseException) -> Answer:
        self._connection(base, fresh=True)  # whatever state it was left in
        return Answer(None, time.perf_counter() - started, f"{type(error).__name__}: {error}")


class _Connection(http.client.HTTPConnection):
    """Without Nagle's algorithm: a request's headers and body are two writes, and on a kept-alive
    connection the second would wait for the peer's delayed ACK (40 ms)."""

    def connect(self) -> None:
        super().connect()
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _labels(body: bytes) -> list[tuple[str, Any]]:
    """POST /labels takes {"id": ..., "label": ...} or a list of them."""
    given = json.loads(body)
    items = given if isinstance(given, list) else [given]
    return [(str(item["id"]), item["label"]) for item in items]


def handler(comparator: Comparator) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            return

        def _send(self, code: int, body: bytes = b"", kind: str = "application/json") -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(min(length, MAX_BODY)) if length > 0 else b""

        def _handle(self) -> None:
            path = self.path.split("?", 1)[0]
            if path == "/metrics" and self.command == "GET":
                self._send(200, generate_latest(comparator.counts.registry),
                           "text/plain; version=0.0.4")  # fmt: skip
            elif path in ("/healthz", "/ready") and self.command == "GET":
                self._send(200, b"ok", "text/plain")
            elif path == "/disagreements" and self.command == "GET":
                self._send(200, json.dumps(comparator.disagreements()).encode())
            elif path == "/labels" and self.command == "POST":
                try:
                    joined = sum(comparator.label(i, v) for i, v in _labels(self._body()))
                except (ValueError, KeyError, TypeError) as error:
                    self._send(400, json.dumps({"error": str(error)}).encode())
                    return
                self._send(200, json.dumps({"joined": joined}).encode())
            else:
                headers = {k.lower(): v for k, v in self.headers.items()}
                comparator.received(Request(self.command, self.path, headers, self._body(),
                                            headers.get(comparator.s.request_id)))  # fmt: skip
                self._send(204)

        do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _handle

    return Handler


@dataclass
class Server:
    comparator: Comparator
    httpd: http.server.ThreadingHTTPServer = field(init=False)

    def serve(self, host: str, port: int) -> None:
        self.comparator.start()
        self.httpd = http.server.ThreadingHTTPServer((host, port), handler(self.comparator))
        self.httpd.daemon_threads = True
        self.httpd.serve_forever()


def main() -> None:
    settings = Settings.from_environment(dict(os.environ))
    host = os.environ.get("POD_IP") or "0.0.0.0"  # noqa: S104 (a pod listens on its address)
    Server(Comparator(settings)).serve(host, int(os.environ.get("PORT") or 8080))


if __name__ == "__main__":
    main()
