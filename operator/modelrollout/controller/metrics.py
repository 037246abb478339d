"""The operator's own Prometheus metrics: every evaluation's numbers, on /metrics.

Served on MODELROLLOUT_METRICS_PORT (default 8080; 0 turns it off). One registry of our own, so
only these series are exported (no process or GC collectors to mistake for a rollout's).
"""

from __future__ import annotations

import contextlib

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

from modelrollout.api.v1alpha1 import SignalResult

VERDICTS = ("Pass", "Fail", "Inconclusive", "NoData", "Error")
REGISTRY = CollectorRegistry()
_SIGNAL = ["namespace", "rollout", "signal", "kind"]

SIGNAL_VALUE = Gauge("modelrollout_signal_value", "the number each signal's latest verdict judged",
                     _SIGNAL, registry=REGISTRY)  # fmt: skip
SIGNAL_BOUND = Gauge("modelrollout_signal_bound", "the limit the value was judged against",
                     _SIGNAL, registry=REGISTRY)  # fmt: skip
SIGNAL_INTERVAL = Gauge(
    "modelrollout_signal_confidence_bound",
    "always-valid confidence bounds of the value (compare, fairness)",
    [*_SIGNAL, "side"],
    registry=REGISTRY,
)
SIGNAL_ARM = Gauge("modelrollout_signal_arm_value", "the value per arm (compare, fairness)",
                   [*_SIGNAL, "arm"], registry=REGISTRY)  # fmt: skip
SIGNAL_SAMPLES = Gauge("modelrollout_signal_samples", "observations behind the verdict, per arm",
                       [*_SIGNAL, "arm"], registry=REGISTRY)  # fmt: skip
SIGNAL_VERDICT = Gauge(
    "modelrollout_signal_verdict",
    "1 for each signal's latest verdict, 0 for the others",
    [*_SIGNAL, "verdict"],
    registry=REGISTRY,
)
EVALUATIONS = Counter("modelrollout_evaluations", "evaluations, by rollout",
                      ["namespace", "rollout"], registry=REGISTRY)  # fmt: skip


def record(namespace: str, rollout: str, results: list[SignalResult]) -> None:
    """Export one evaluation's results; a number a verdict did not have is left out (no NaN)."""
    EVALUATIONS.labels(namespace, rollout).inc()
    for r in results:
        labels = (namespace, rollout, r.name, r.kind)
        bound = r.bound if r.bound is not None else (r.max if r.max is not None else r.min)
        for gauge, value in ((SIGNAL_VALUE, r.value), (SIGNAL_BOUND, bound)):
            _set(gauge, labels, value)
        for side, value in (("lower", r.lower), ("upper", r.upper)):
            _set(SIGNAL_INTERVAL, (*labels, side), value)
        for arm, value in (("canary", r.canary), ("stable", r.stable)):
            _set(SIGNAL_ARM, (*labels, arm), value)
        if r.samples is not None:
            SIGNAL_SAMPLES.labels(*labels, "canary").set(r.samples.canary)
            SIGNAL_SAMPLES.labels(*labels, "stable").set(r.samples.stable)
        for verdict in VERDICTS:
            SIGNAL_VERDICT.labels(*labels, verdict).set(1 if r.verdict == verdict else 0)


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is None:
        with contextlib.suppress(KeyError):
            gauge.remove(*labels)
        return
    gauge.labels(*labels).set(value)


def serve(port: int) -> None:
    if port > 0:
        start_http_server(port, registry=REGISTRY)
