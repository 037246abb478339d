"""The demo's model service and its users, in one process.

Every request is routed as the HTTPRoute says right now (weights read from the API server each
second, each Service followed to the model version its revision serves), answered by that
version's model, scored against the true label, and recorded with `modelrollout.telemetry` (the
helper a real Python model server would use), which Prometheus scrapes.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from kubernetes import client
from models import Model, ServingError, draw
from prometheus_client import CollectorRegistry

from modelrollout.telemetry import Telemetry
from modelrollout.testing.processes import free_ports
from modelrollout.testing.traffic import RoutedTraffic


def telemetry() -> tuple[Telemetry, int]:
    """The model servers' metrics, served for Prometheus on a free port."""
    t = Telemetry(features={"amount": AMOUNT_EDGES}, latency_buckets=LATENCY_BUCKETS,
                  registry=CollectorRegistry())  # fmt: skip
    (port,) = free_ports(1)
    t.serve(port, addr="127.0.0.1")
    return t, port


MODEL = "fraud-detector"
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
AMOUNT_EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500)


class TrafficGenerator(RoutedTraffic):
    """`rate` requests a second, split as routed, until stopped."""

    def __init__(self, api: client.ApiClient, namespace: str, models: dict[str, Model],
                 telemetry: Telemetry, rate: int = 200) -> None:  # fmt: skip
        super().__init__(api, namespace, MODEL, rate=rate, seed=2026, every=1.0)
        self.models, self.telemetry = models, telemetry

    def answer(self, version: str, n: int) -> None:
        batch = draw(self.rng, n)
        for row in range(n):
            self._answer(version, batch.x[row : row + 1], int(batch.y[row]))

    def _answer(self, version: str, x: Any, truth: int) -> None:
        model = self.models[version]
        served = self.telemetry.model(MODEL, version)
        x = x * np.array([model.input_scale, 1, 1, 1])  # what this version's pipeline feeds it
        served.inputs({"amount": float(x[0, 0])})
        started = time.perf_counter()
        try:
            score = float(model.score(x)[0])
        except ServingError:
            served.request("500")
            return
        # the model's own time, plus the network and framework time a real server adds
        served.request("200", seconds=time.perf_counter() - started + self.rng.gamma(2.0, 0.01))
        predicted = int(score >= 0.5)
        served.prediction(score, predicted, segment="foreign" if x[0, 3] else "domestic")
        served.feedback(correct=predicted == truth)
