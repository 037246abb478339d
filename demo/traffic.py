"""The demo's users and their labels.

Users send `rate` transactions a second to the gateway (Traefik, over HTTP, with the route's
hostname), from a few kept-alive connections, and never know which model version answers: the
HTTPRoute decides. Each answer names the pod that made it; the true label is sent back to that
pod's /feedback in batches twice a second, as a label-joining service inside the cluster would
(so it goes through the data plane's network, not through the gateway).
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
from models import World, draw

from modelrollout.testing.netns import Network


class GatewayTraffic:
    def __init__(self, gateway: str, host: str, network: Network, *, rate: int = 150,
                 connections: int = 3, seed: int = 2026,
                 labelled: Path | None = None) -> None:  # fmt: skip
        self.world, self.epoch = World(), 0
        # the label-joining service also keeps the labelled transactions (features, label and
        # the world's epoch): the retraining Job's stand-in for a feature store
        self.labelled = labelled.open("a") if labelled is not None else None
        self.address = gateway.removeprefix("http://")
        self.host, self.network, self.rate = host, network, rate
        self.connections, self.seed = connections, seed
        self.answered: Counter[tuple[str, int]] = Counter()  # (version, HTTP status)
        self.failures: Counter[str] = Counter()  # requests that got no answer, by why
        self.labels_lost = 0  # label batches for a pod that was gone
        self._labels: dict[str, list[tuple[int, int]]] = defaultdict(list)
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._threads = [threading.Thread(target=self._user, args=(i,), daemon=True)
                         for i in range(connections)]  # fmt: skip
        self._threads.append(threading.Thread(target=self._label, daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopped.set()
        for thread in self._threads:
            thread.join(timeout=10)
        if self.labelled is not None:
            self.labelled.close()

    def shift(self) -> None:
        """The world moves: from now on transactions are drawn from World.shifted()."""
        self.world, self.epoch = self.world.shifted(), self.epoch + 1

    def _user(self, index: int) -> None:
        rng = np.random.default_rng(self.seed + index)
        every = self.connections / self.rate
        connection = http.client.HTTPConnection(self.address, timeout=10)
        due = time.monotonic()
        while not self._stopped.is_set():
            sample = draw(rng, 1, self.world)
            body = json.dumps({"features": sample.x[0].tolist()})
            if self.labelled is not None:
                with self._lock:
                    row = {"features": sample.x[0].tolist(), "epoch": self.epoch,
                           "label": int(sample.y[0])}  # fmt: skip
                    self.labelled.write(json.dumps(row) + "\n")
            try:
                connection.request("POST", "/predict", body=body, headers={
                    "Host": self.host, "Content-Type": "application/json"})  # fmt: skip
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException) as error:
                self.failures[type(error).__name__] += 1
                connection.close()
                connection = http.client.HTTPConnection(self.address, timeout=10)
                time.sleep(0.1)
                continue
            self._record(answer, data, int(sample.y[0]))
            due += every
            time.sleep(max(0.0, due - time.monotonic()))
        connection.close()

    def _record(self, answer: http.client.HTTPResponse, data: bytes, label: int) -> None:
        try:
            parsed: dict[str, Any] = json.loads(data)
        except ValueError:
            parsed = {}
        with self._lock:
            self.answered[(str(parsed.get("version", "-")), answer.status)] += 1
            pod = answer.getheader("X-Pod-Address")
            if answer.status == 200 and pod and "id" in parsed:
                self._labels[pod].append((parsed["id"], label))

    def _label(self) -> None:
        while not self._stopped.wait(0.5):
            with self._lock:
                batches, self._labels = self._labels, defaultdict(list)
                if self.labelled is not None:
                    self.labelled.flush()
            for pod, labels in batches.items():
                host, port = pod.rsplit(":", 1)
                try:
                    connection = http.client.HTTPConnection(host, int(port), timeout=5)
                    connection.sock = self.network.connect(host, int(port))
                    connection.request("POST", "/feedback", body=json.dumps({"labels": labels}),
                                       headers={"Content-Type": "application/json"})  # fmt: skip
                    connection.getresponse().read()
                    connection.close()
                except (OSError, http.client.HTTPException):
                    self.labels_lost += 1  # the pod is gone: its predictions with it
