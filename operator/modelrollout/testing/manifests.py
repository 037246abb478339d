"""ModelRollout manifests for tests: a valid one to start from, and a catalogue of invalid ones.

The same catalogue is checked against the pydantic models (unit tests) and against the real API
server with the generated CRD (admission tests), so the two cannot drift apart.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Manifest = dict[str, Any]


def rollout(name: str = "fraud-detector", version: str = "2026-11-20") -> Manifest:
    """A valid ModelRollout with a Gateway API router and one threshold signal."""
    labels = {"app": name}
    return {
        "apiVersion": "modelrollout.io/v1alpha1",
        "kind": "ModelRollout",
        "metadata": {"name": name},
        "spec": {
            "replicas": 2,
            "model": {"name": name, "version": version},
            "selector": {"matchLabels": dict(labels)},
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {"containers": [{"name": "server", "image": "example/model:1"}]},
            },
            "traffic": {"gatewayAPI": {"parentRefs": [{"name": "public"}]}},
            "strategy": {
                "steps": [{"setWeight": 20}, {"analyze": {"duration": "1m"}}, {"pause": {}}]
            },
            "analysis": {
                "interval": "30s",
                "prometheus": {"address": "http://127.0.0.1:9090"},
                "signals": [
                    {
                        "name": "error-rate",
                        "threshold": {
                            "query": 'sum(rate(model_requests_total{version="{{ canary.version }}",'
                            'code=~"5.."}[{{ interval }}]))',
                            "max": 0.01,
                        },
                    }
                ],
            },
        },
    }


# Every ModelRollout under examples/, at any depth: the tests that check them all say how many.
EXAMPLE_ROLLOUTS = 3


def examples(root: Path) -> list[tuple[Path, Manifest]]:
    """(file, ModelRollout) for every ModelRollout document under `root`/examples."""
    found = []
    for path in sorted((root / "examples").rglob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            if document and document.get("kind") == "ModelRollout":
                found.append((path, document))
    return found


@dataclass(frozen=True)
class Invalid:
    """A manifest the API must refuse, and the field its error must name."""

    why: str
    change: Callable[[Manifest], None]
    field: str  # as the API server names it, e.g. spec.strategy.steps[0].setWeight

    def manifest(self) -> Manifest:
        m = rollout(name="invalid")
        self.change(m)
        return m

    @property
    def location(self) -> tuple[str | int, ...]:
        """`field` below spec, as a pydantic error location: spec.a.b[1].c -> ("a", "b", 1, "c")."""
        parts: list[str | int] = []
        for part in self.field.removeprefix("spec.").split("."):
            name, *indexes = part.replace("]", "").split("[")
            parts.append(name)
            parts.extend(int(i) for i in indexes)
        return tuple(parts)


def _spec(m: Manifest) -> Manifest:
    spec: Manifest = m["spec"]
    return spec


def _set(path: str, value: Any) -> Callable[[Manifest], None]:
    def change(m: Manifest) -> None:
        node: Any = m
        *parents, last = path.split(".")
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        if last.isdigit():
            node[int(last)] = copy.deepcopy(value)
        else:
            node[last] = copy.deepcopy(value)

    return change


def _delete(path: str) -> Callable[[Manifest], None]:
    def change(m: Manifest) -> None:
        *parents, last = path.split(".")
        node: Any = m
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        del node[last]

    return change


MONITOR: Manifest = {
    "interval": "5m",
    "signals": [{"name": "errors", "threshold": {"query": "errors", "max": 0.01}}],
    "onAlarm": [{"signals": ["errors"], "retrain": {"job": {"template": {"spec": {"template": {
        "spec": {"containers": [{"name": "train", "image": "example/train:1"}]}}}}}}}],
}  # fmt: skip


def _monitored(change: Callable[[Manifest], None]) -> Callable[[Manifest], None]:
    """`change` applied to a rollout that has a valid monitor."""

    def both(m: Manifest) -> None:
        _spec(m)["monitor"] = copy.deepcopy(MONITOR)
        change(m)

    return both


def _duplicate_signal(m: Manifest) -> None:
    signals = _spec(m)["analysis"]["signals"]
    signals.append(copy.deepcopy(signals[0]))


def _full_weight_with_compare(m: Manifest) -> None:
    _spec(m)["strategy"]["steps"] = [
        {"setWeight": 50},
        {"analyze": {"duration": "5m"}},
        {"setWeight": 100},
        {"analyze": {"duration": "5m"}},
    ]
    _spec(m)["analysis"]["signals"].append(
        {
            "name": "accuracy",
            "compare": {
                "successes": "model_correct_total",
                "total": "model_feedback_total",
                "margin": 0.01,
            },
        }
    )


def _unmatched_selector(m: Manifest) -> None:
    _spec(m)["selector"]["matchLabels"] = {"app": "something-else"}


def abn_rollout(name: str = "fraud-detector") -> Manifest:
    """A valid A/B/n ModelRollout: spec.model and two challengers judged on a compare signal."""
    m = rollout(name=name)
    _abn(lambda _: None)(m)
    return m


def _abn(then: Callable[[Manifest], None]) -> Callable[[Manifest], None]:
    """A valid A/B/n rollout (a compare objective, two challengers, the phase) before `then`."""

    def change(m: Manifest) -> None:
        m["spec"]["analysis"]["signals"] = [
            {
                "name": "accuracy",
                "compare": {"successes": "ok_total", "total": "all_total", "margin": 0.01},
            }
        ]
        m["spec"]["challengers"] = [{"version": "v3"}, {"version": "v4"}]
        m["spec"]["strategy"]["abn"] = {"duration": "2h"}
        then(m)

    return change


INVALID: list[Invalid] = [
    Invalid("a step with two actions", _set("spec.strategy.steps.0", {"setWeight": 5, "pause": {}}),
            "spec.strategy.steps[0]"),
    Invalid("a step with no action", _set("spec.strategy.steps.0", {}), "spec.strategy.steps[0]"),
    Invalid("a weight above 100", _set("spec.strategy.steps.0.setWeight", 101),
            "spec.strategy.steps[0].setWeight"),
    Invalid("a negative weight", _set("spec.strategy.steps.0.setWeight", -1),
            "spec.strategy.steps[0].setWeight"),
    Invalid("no steps at all", _set("spec.strategy.steps", []), "spec.strategy.steps"),
    Invalid("no traffic router", _set("spec.traffic", {}), "spec.traffic"),
    Invalid("a router the operator does not implement",
            _set("spec.traffic.istio", {"hosts": ["a"]}), "spec.traffic.istio"),
    Invalid("a Gateway API route with no parent", _set("spec.traffic.gatewayAPI.parentRefs", []),
            "spec.traffic.gatewayAPI.parentRefs"),
    Invalid("a malformed progressDeadline", _set("spec.progressDeadline", "10 minutes"),
            "spec.progressDeadline"),
    Invalid("a restartLimit past what the pod watch keeps", _set("spec.restartLimit", 31),
            "spec.restartLimit"),
    Invalid("a malformed analyze duration", _set("spec.strategy.steps.1.analyze.duration", "5x"),
            "spec.strategy.steps[1].analyze.duration"),
    Invalid("a malformed pause duration", _set("spec.strategy.steps.2.pause.duration", "soon"),
            "spec.strategy.steps[2].pause.duration"),
    Invalid("an unknown template variable",
            _set("spec.analysis.signals.0.threshold.query", 'up{v="{{ canary.verison }}"}'),
            "spec.analysis.signals[0].threshold.query"),
    Invalid("a threshold with no bound", _delete("spec.analysis.signals.0.threshold.max"),
            "spec.analysis.signals[0].threshold"),
    Invalid("a threshold whose min exceeds its max",
            _set("spec.analysis.signals.0.threshold", {"query": "up", "min": 2, "max": 1}),
            "spec.analysis.signals[0].threshold"),
    Invalid("a signal of no kind", _delete("spec.analysis.signals.0.threshold"),
            "spec.analysis.signals[0]"),
    Invalid("two signals with one name", _duplicate_signal, "spec.analysis.signals[1]"),
    Invalid("a signal name that is not a DNS label",
            _set("spec.analysis.signals.0.name", "Error Rate"), "spec.analysis.signals[0].name"),
    Invalid("a model version that cannot be a label value", _set("spec.model.version", "v1/beta"),
            "spec.model.version"),
    Invalid("no model", _delete("spec.model"), "spec.model"),
    Invalid("a selector that does not match the template", _unmatched_selector, "spec.selector"),
    Invalid("setWeight: 100 before an analyze step, with a compare signal",
            _full_weight_with_compare, "spec.strategy.steps"),
    Invalid("zero replicas", _set("spec.replicas", 0), "spec.replicas"),
    Invalid("noData neither inconclusive nor fail", _set("spec.analysis.noData", "pass"),
            "spec.analysis.noData"),
    Invalid("a Prometheus address that is not a URL",
            _set("spec.analysis.prometheus.address", "prometheus:9090"),
            "spec.analysis.prometheus.address"),
    Invalid("a negative failureLimit", _set("spec.analysis.failureLimit", -1),
            "spec.analysis.failureLimit"),
    Invalid("a misspelt field", _set("spec.strategy.stepz", []), "spec.strategy.stepz"),
    Invalid("a compare on a sum instead of a series selector",
            _set("spec.analysis.signals.0", {"name": "acc", "compare": {
                "successes": "sum(model_feedback_total)", "total": "model_feedback_total",
                "margin": 0.01}}),
            "spec.analysis.signals[0].compare.successes"),
    Invalid("a compare with both a rate and a histogram",
            _set("spec.analysis.signals.0", {"name": "acc", "compare": {
                "successes": "a", "total": "b", "histogram": "c_bucket", "margin": 0.01}}),
            "spec.analysis.signals[0].compare"),
    Invalid("a compare with an alpha of zero",
            _set("spec.analysis.signals.0", {"name": "acc", "compare": {
                "histogram": "c_bucket", "alpha": 0, "margin": 0.01}}),
            "spec.analysis.signals[0].compare.alpha"),
    Invalid("a compare with an alpha of one half, where its bound divides by zero",
            _set("spec.analysis.signals.0", {"name": "acc", "compare": {
                "histogram": "c_bucket", "alpha": 0.5, "margin": 0.01}}),
            "spec.analysis.signals[0].compare.alpha"),
    Invalid("a compare without a margin",
            _set("spec.analysis.signals.0", {"name": "acc", "compare": {
                "successes": "ok_total", "total": "all_total"}}),
            "spec.analysis.signals[0].compare.margin"),
    Invalid("a fairness with an alpha of one half",
            _set("spec.analysis.signals.0", {"name": "f", "fairness": {
                "selected": "s", "total": "t", "alpha": 0.5}}),
            "spec.analysis.signals[0].fairness.alpha"),
    Invalid("an analysis interval of 0s", _set("spec.analysis.interval", "0s"),
            "spec.analysis.interval"),
    Invalid("an analysis interval below a second", _set("spec.analysis.interval", "500ms"),
            "spec.analysis.interval"),
    Invalid("a sample ratio p-value of one half",
            _set("spec.analysis.sampleRatio", {"pValue": 0.5}),
            "spec.analysis.sampleRatio.pValue"),
    Invalid("a drift against a reference it does not name",
            _set("spec.analysis.signals.0", {"name": "d", "drift": {
                "histogram": "h_bucket", "against": "reference"}}),
            "spec.analysis.signals[0].drift.reference"),
    Invalid("a drift with an unknown statistic",
            _set("spec.analysis.signals.0", {"name": "d", "drift": {
                "histogram": "h_bucket", "statistic": "kl"}}),
            "spec.analysis.signals[0].drift.statistic"),
    Invalid("a fairness with an unknown metric",
            _set("spec.analysis.signals.0", {"name": "f", "fairness": {
                "selected": "s", "total": "t", "metric": "parity"}}),
            "spec.analysis.signals[0].fairness.metric"),
    Invalid("a signal of two kinds",
            _set("spec.analysis.signals.0.compare", {"histogram": "c_bucket", "margin": 0.01}),
            "spec.analysis.signals[0]"),
    Invalid("a sample ratio check with a rate",
            _set("spec.analysis.sampleRatio", {"requests": "rate(model_requests_total[1m])"}),
            "spec.analysis.sampleRatio.requests"),
    Invalid("a malformed bake duration", _set("spec.bake", {"duration": "2 hours"}),
            "spec.bake.duration"),
    Invalid("a bake without a duration", _set("spec.bake", {"holdback": {"percent": 5}}),
            "spec.bake.duration"),
    Invalid("a holdback above half the traffic",
            _set("spec.bake", {"duration": "1h", "holdback": {"percent": 60}}),
            "spec.bake.holdback.percent"),
    Invalid("a monitor without analysis.prometheus", _monitored(_delete("spec.analysis")),
            "spec.monitor"),
    Invalid("a malformed monitor interval", _monitored(_set("spec.monitor.interval", "often")),
            "spec.monitor.interval"),
    Invalid("a malformed false-alarm budget",
            _monitored(_set("spec.monitor.falseAlarms", {"meanTimeBetween": "30 days"})),
            "spec.monitor.falseAlarms.meanTimeBetween"),
    Invalid("a monitor drift against the stable arm",
            _monitored(_set("spec.monitor.signals.0", {"name": "d", "drift": {
                "histogram": "h_bucket", "against": "stable"}})),
            "spec.monitor.signals[0].drift.against"),
    Invalid("a kpi without its drop",
            _monitored(_set("spec.monitor.signals.0", {"name": "acc", "kpi": {
                "successes": "ok_total", "total": "all_total"}})),
            "spec.monitor.signals[0].kpi.drop"),
    Invalid("an alarm action naming no monitor signal",
            _monitored(_set("spec.monitor.onAlarm.0.signals", ["nope"])), "spec.monitor.onAlarm"),
    Invalid("a retraining Job with no container",
            _monitored(_set("spec.monitor.onAlarm.0.retrain.job.template.spec.template.spec",
                            {"containers": []})),
            "spec.monitor.onAlarm[0].retrain.job.template.spec.template.spec.containers"),
    Invalid("a retraining Job that restarts Always",
            _monitored(_set("spec.monitor.onAlarm.0.retrain.job.template.spec.template.spec."
                            "restartPolicy", "Always")),
            "spec.monitor.onAlarm[0].retrain.job.template.spec.template.spec.restartPolicy"),
    Invalid("a retraining Job container without an image",
            _monitored(_delete("spec.monitor.onAlarm.0.retrain.job.template.spec.template.spec."
                               "containers.0.image")),
            "spec.monitor.onAlarm[0].retrain.job.template.spec.template.spec.containers[0].image"),
    Invalid("a malformed retraining cooldown",
            _monitored(_set("spec.monitor.onAlarm.0.retrain.cooldown", "a day")),
            "spec.monitor.onAlarm[0].retrain.cooldown"),
    Invalid("outliers with a tail of a quarter or more",
            _set("spec.analysis.signals.0", {"name": "o", "outliers": {
                "histogram": "h_bucket", "reference": {"name": "r", "key": "k"}, "tail": 0.3}}),
            "spec.analysis.signals[0].outliers.tail"),
    Invalid("a canary's drift against the monitor's baseline",
            _set("spec.analysis.signals.0", {"name": "d", "drift": {
                "histogram": "h_bucket", "against": "baseline"}}),
            "spec.analysis.signals"),
    Invalid("a retraining both by Job and by webhook",
            _monitored(_set("spec.monitor.onAlarm.0.retrain.webhook",
                            {"url": "https://events.example/retrain"})),
            "spec.monitor.onAlarm[0].retrain"),
    Invalid("a fallback to a heuristic there is none of",
            _monitored(_set("spec.monitor.onAlarm.0.fallback", "heuristic")),
            "spec.monitor.onAlarm"),
    Invalid("a fallback version that cannot be a label value",
            _set("spec.fallback", {"version": "rules/v1", "template": {
                "spec": {"containers": [{"name": "r", "image": "rules:1"}]}}}),
            "spec.fallback.version"),
    Invalid("a webhook format nobody reads", _set("spec.notifications", {"webhooks": [
                {"url": "http://hooks.example/x", "format": "xml"}]}),
            "spec.notifications.webhooks[0].format"),
    Invalid("a webhook URL that is not http", _set("spec.notifications", {"webhooks": [
                {"url": "ftp://hooks.example/x"}]}),
            "spec.notifications.webhooks[0].url"),
    Invalid("an approval neither none nor required",
            _monitored(_set("spec.monitor.onAlarm.0.retrain.approval", "maybe")),
            "spec.monitor.onAlarm[0].retrain.approval"),
    Invalid("challengers without an A/B/n phase",
            _set("spec.challengers", [{"version": "v3"}]), "spec.challengers"),
    Invalid("an A/B/n phase without challengers",
            _set("spec.strategy.abn", {"duration": "1h"}), "spec.challengers"),
    Invalid("a challenger with the model's own version", _abn(_set("spec.challengers.0.version",
            "2026-11-20")), "spec.challengers"),
    Invalid("two challengers with one version",
            _abn(_set("spec.challengers.1", {"version": "v3"})), "spec.challengers"),
    Invalid("challengers with no compare signal to win on",
            _abn(_set("spec.analysis.signals.0", {"name": "e", "threshold": {
                "query": "errors", "max": 0.01}})), "spec.challengers"),
    Invalid("more than five candidates",
            _abn(_set("spec.challengers", [{"version": f"v{n}"} for n in range(3, 8)])),
            "spec.challengers"),
    Invalid("an A/B/n margin above 1", _abn(_set("spec.strategy.abn.margin", 2)),
            "spec.strategy.abn.margin"),
    Invalid("an A/B/n phase without a duration", _abn(_set("spec.strategy.abn", {})),
            "spec.strategy.abn.duration"),
    Invalid("a cohort with nothing to match", _set("spec.strategy.steps.0", {"cohort": {
                "match": [{}]}}), "spec.strategy.steps[0].cohort.match[0]"),
    Invalid("a cohort that matches the Cookie header by name",
            _set("spec.strategy.steps.0", {"cohort": {"match": [{"headers": [
                {"name": "Cookie", "exact": "beta=1"}]}]}}),
            "spec.strategy.steps[0].cohort.match[0].headers"),
    Invalid("a cohort header with a value and a regex",
            _set("spec.strategy.steps.0", {"cohort": {"match": [{"headers": [
                {"name": "x-group", "exact": "a", "regex": "a"}]}]}}),
            "spec.strategy.steps[0].cohort.match[0].headers[0]"),
    Invalid("a cohort header name that is not a token",
            _set("spec.strategy.steps.0", {"cohort": {"match": [{"headers": [
                {"name": "x group", "exact": "a"}]}]}}),
            "spec.strategy.steps[0].cohort.match[0].headers[0].name"),
    Invalid("a cohort with both a match and buckets",
            _set("spec.strategy.steps.0", {"cohort": {
                "match": [{"headers": [{"name": "x-group", "exact": "a"}]}],
                "buckets": {"key": "x-user-id", "treatment": 10, "control": 10}}}),
            "spec.strategy.steps[0].cohort"),
    Invalid("treatment buckets above half of them",
            _set("spec.strategy.steps.0", {"cohort": {
                "buckets": {"key": "x-user-id", "treatment": 60, "control": 10}}}),
            "spec.strategy.steps[0].cohort.buckets.treatment"),
]  # fmt: skip
