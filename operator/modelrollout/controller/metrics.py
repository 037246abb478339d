"""The operator's own Prometheus metrics on /metrics: each rollout's state, every evaluation's
numbers, the decisions taken, and how long ticks take.

Served on MODELROLLOUT_METRICS_PORT (default 8080; 0 turns it off). One registry of our own, so
only these series are exported (no process or GC collectors to mistake for a rollout's). A deleted
rollout's series are removed (`forget`), so dashboards do not show it forever.
"""

from __future__ import annotations

import contextlib
import platform
import threading
from importlib import metadata
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from modelrollout.api.v1alpha1 import PHASES, VERDICTS, SignalResult
from modelrollout.domain.machine import Event

REGISTRY = CollectorRegistry()
_ROLLOUT = ["namespace", "rollout"]
_SIGNAL = [*_ROLLOUT, "signal", "kind"]

INFO = Gauge("modelrollout_build_info", "the operator's version, 1", ["version", "python"],
             registry=REGISTRY)  # fmt: skip
ROLLOUT_INFO = Gauge(
    "modelrollout_rollout_info",
    "1 per rollout, with its stable and canary model versions",
    [*_ROLLOUT, "stable_version", "canary_version"],
    registry=REGISTRY,
)
PHASE = Gauge("modelrollout_rollout_phase", "1 for the rollout's phase, 0 for the others",
              [*_ROLLOUT, "phase"], registry=REGISTRY)  # fmt: skip
WEIGHT = Gauge("modelrollout_canary_weight", "percent of traffic routed to the canary",
               _ROLLOUT, registry=REGISTRY)  # fmt: skip
STEP = Gauge("modelrollout_rollout_step", "the current step (0-based; = steps once all are done)",
             _ROLLOUT, registry=REGISTRY)  # fmt: skip
STEPS = Gauge("modelrollout_rollout_steps", "the number of steps in the strategy", _ROLLOUT,
              registry=REGISTRY)  # fmt: skip
DECISIONS = Counter(
    "modelrollout_decisions",
    "decisions taken, by outcome (the Event reason: Promoted, RolledBack, Paused, StepAdvanced...)",
    [*_ROLLOUT, "outcome"],
    registry=REGISTRY,
)
TICK_SECONDS = Histogram(
    "modelrollout_reconcile_duration_seconds",
    "time to read, measure, decide and converge one rollout once",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
LATENESS = Histogram(
    "modelrollout_tick_lateness_seconds",
    "how long after it was due each tick started (the scheduler's backlog)",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
    registry=REGISTRY,
)
QUEUED = Gauge("modelrollout_rollouts_scheduled", "rollouts queued or being ticked",
               registry=REGISTRY)  # fmt: skip

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
EVALUATIONS = Counter("modelrollout_evaluations", "evaluations, by rollout", _ROLLOUT,
                      registry=REGISTRY)  # fmt: skip
FAULTY_TICKS = Gauge(
    "modelrollout_tick_faults",
    "ticks in a row that could not complete (0 once one does); past the limit the canary is "
    "rolled back",
    _ROLLOUT,
    registry=REGISTRY,
)
FAULTS = Counter("modelrollout_tick_faults_by_stage", "ticks that failed, by the stage they "
                 "failed at", [*_ROLLOUT, "stage"], registry=REGISTRY)  # fmt: skip
NOTIFICATION_FAILURES = Counter(
    "modelrollout_notification_failures", "webhook notifications that raised", _ROLLOUT,
    registry=REGISTRY,
)  # fmt: skip

M = TypeVar("M", Gauge, Counter)
# Every label set written, per rollout, so that `forget` can remove exactly those.
_written: dict[tuple[str, str], set[tuple[object, tuple[str, ...]]]] = {}
_lock = threading.Lock()


def _labels(metric: M, labels: tuple[str, ...]) -> M:
    with _lock:
        _written.setdefault((labels[0], labels[1]), set()).add((metric, labels))
    return metric.labels(*labels)


def state(namespace: str, rollout: str, *, phase: str, weight: int, step: int, steps: int,
          stable: str, canary: str) -> None:  # fmt: skip
    """The rollout as its status now says."""
    key = (namespace, rollout)
    with _lock:
        stale = [(m, labels) for m, labels in _written.get(key, set()) if m is ROLLOUT_INFO]
    for metric, labels in stale:  # the versions changed: one info series per rollout
        if labels[2:] != (stable, canary):
            _remove(metric, labels)
    _labels(ROLLOUT_INFO, (*key, stable, canary)).set(1)
    for p in PHASES:
        _labels(PHASE, (*key, p)).set(1 if p == phase else 0)
    _labels(WEIGHT, key).set(weight)
    _labels(STEP, key).set(step)
    _labels(STEPS, key).set(steps)


def decided(namespace: str, rollout: str, events: list[Event]) -> None:
    for event in events:
        _labels(DECISIONS, (namespace, rollout, event.reason)).inc()


def faulty(namespace: str, rollout: str, in_a_row: int, stage: str | None = None) -> None:
    """A tick that could not complete (its stage), or 0 once one does."""
    _labels(FAULTY_TICKS, (namespace, rollout)).set(in_a_row)
    if stage is not None:
        _labels(FAULTS, (namespace, rollout, stage)).inc()


def notification_failed(namespace: str, rollout: str) -> None:
    _labels(NOTIFICATION_FAILURES, (namespace, rollout)).inc()


NOTIFICATIONS = Counter(
    "modelrollout_notifications", "notification deliveries, by receiver, event and outcome",
    [*_ROLLOUT, "sink", "event", "outcome"], registry=REGISTRY,
)  # fmt: skip
PENDING = Gauge("modelrollout_notifications_pending", "notices a receiver has not had yet",
                [*_ROLLOUT, "sink"], registry=REGISTRY)  # fmt: skip
DELIVERY_SECONDS = Histogram(
    "modelrollout_notification_delivery_seconds", "from a decision to its delivery",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800), registry=REGISTRY,
)  # fmt: skip


def notified(namespace: str, rollout: str, sink: str, event: str, outcome: str) -> None:
    _labels(NOTIFICATIONS, (namespace, rollout, sink, event, outcome)).inc()


def pending(backlog: dict[tuple[str, str, str], int]) -> None:
    for labels, count in backlog.items():
        _labels(PENDING, labels).set(count)


def delivery_latency(seconds: float) -> None:
    DELIVERY_SECONDS.observe(seconds)


def forget(namespace: str, rollout: str) -> None:
    """Remove every series of a rollout that is gone."""
    with _lock:
        written = _written.pop((namespace, rollout), set())
    for metric, labels in written:
        _remove(metric, labels)


def _remove(metric: object, labels: tuple[str, ...]) -> None:
    with contextlib.suppress(KeyError):
        metric.remove(*labels)  # type: ignore[attr-defined]
    with _lock:
        _written.get((labels[0], labels[1]), set()).discard((metric, labels))


def record(namespace: str, rollout: str, results: list[SignalResult]) -> None:
    """Export one evaluation's results; a number a verdict did not have is left out (no NaN)."""
    _labels(EVALUATIONS, (namespace, rollout)).inc()
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
            _labels(SIGNAL_SAMPLES, (*labels, "canary")).set(r.samples.canary)
            _labels(SIGNAL_SAMPLES, (*labels, "stable")).set(r.samples.stable)
        for verdict in VERDICTS:
            _labels(SIGNAL_VERDICT, (*labels, verdict)).set(1 if r.verdict == verdict else 0)


def _set(gauge: Gauge, labels: tuple[str, ...], value: float | None) -> None:
    if value is None:
        _remove(gauge, labels)
        return
    _labels(gauge, labels).set(value)


def serve(port: int) -> None:
    INFO.labels(_version(), platform.python_version()).set(1)
    if port > 0:
        start_http_server(port, registry=REGISTRY)


def _version() -> str:
    try:
        return metadata.version("modelrollout")
    except metadata.PackageNotFoundError:
        return "unknown"
