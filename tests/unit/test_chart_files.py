"""The Helm chart's files that must agree with the code: the CRD and the Grafana dashboard."""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.api.v1alpha1 import SignalResult
from modelrollout.controller import metrics
from modelrollout.domain.machine import Event

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "modelrollout"
CRD = "modelrollout.io_modelrollouts.yaml"
# PromQL words that are not metric names: functions, aggregations, keywords, Grafana's.
PROMQL = {
    "sum", "max", "min", "avg", "count", "by", "without", "on", "ignoring", "group_left",
    "group_right", "rate", "increase", "irate", "histogram_quantile", "label_values", "and", "or",
    "unless", "offset", "bool", "topk", "bottomk", "clamp_min", "clamp_max", "abs", "vector",
}  # fmt: skip


def test_the_chart_crd_is_byte_identical_to_crds() -> None:
    assert (CHART / "crds" / CRD).read_bytes() == (ROOT / "crds" / CRD).read_bytes(), (
        "charts/modelrollout/crds/ is stale: run `make crds`"
    )


def exported_names() -> set[str]:
    """Every sample name the operator exports, once each of its metrics has a series."""
    metrics.state("ns", "names", phase="Progressing", weight=1, step=0, steps=1, stable="a",
                  canary="b")  # fmt: skip
    metrics.decided("ns", "names", [Event("Normal", "Promoted", "")])
    metrics.record("ns", "names", [SignalResult(
        name="s", kind="compare", verdict="Pass", value=0.0, lower=-1.0, upper=1.0, bound=-0.1,
        canary=0.9, stable=0.9, samples={"canary": 1, "stable": 1}, at="t")])  # fmt: skip
    metrics.TICK_SECONDS.observe(0.1)
    metrics.INFO.labels("0", "3").set(1)
    text = generate_latest(metrics.REGISTRY).decode()
    names = {s.name for f in text_string_to_metric_families(text) for s in f.samples}
    metrics.forget("ns", "names")
    return names


def expressions(dashboard: dict[str, object]) -> list[str]:
    found: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("expr", "definition") and isinstance(value, str):
                    found.append(value)
                else:
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(dashboard)
    return found


def metric_names(expr: str) -> set[str]:
    """The identifiers of a PromQL expression that name metrics: label matchers, grouping
    labels, durations and strings removed first."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\{[^}]*\}", "", text)
    text = re.sub(r"\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", text)
    text = re.sub(r",\s*[a-zA-Z_]+\s*\)", ")", text)  # label_values(metric, label)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", text))
    return words - PROMQL


def test_every_promql_expression_of_the_dashboard_uses_only_metrics_the_operator_exports() -> None:
    dashboard = json.loads((CHART / "dashboards" / "modelrollout.json").read_text())
    exprs = expressions(dashboard)
    assert len(exprs) >= 15
    exported = exported_names()
    used = set().union(*(metric_names(e) for e in exprs))
    assert used, "no metric found in the dashboard"
    assert used <= exported, f"not exported by the operator: {sorted(used - exported)}"
    # and the dashboard shows what the issue asks for
    for needed in ("modelrollout_rollout_phase", "modelrollout_canary_weight",
                   "modelrollout_rollout_step", "modelrollout_signal_value",
                   "modelrollout_signal_bound", "modelrollout_signal_verdict",
                   "modelrollout_decisions_total", "modelrollout_reconcile_duration_seconds_bucket",
                   "modelrollout_build_info"):  # fmt: skip
        assert needed in used, needed


def test_the_name_check_catches_a_metric_nobody_exports() -> None:
    assert metric_names('sum by (le) (rate(up{job="x"}[5m]))') == {"up"}
    assert metric_names("label_values(modelrollout_rollout_info, namespace)") == {
        "modelrollout_rollout_info"
    }
