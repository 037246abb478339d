"""The operator's /metrics series: what a tick records, and that a deleted rollout's go."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from modelrollout.api.v1alpha1 import SignalResult
from modelrollout.controller import metrics
from modelrollout.domain.machine import Event


def series(rollout: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = generate_latest(metrics.REGISTRY).decode()
    return {
        (s.name, frozenset((k, v) for k, v in s.labels.items()
                           if k not in ("namespace", "rollout"))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("rollout") == rollout and s.labels.get("namespace") == "ns"
    }  # fmt: skip


def test_a_tick_records_state_decisions_and_signals_and_deletion_forgets_them() -> None:
    metrics.state("ns", "fraud", phase="Progressing", weight=20, step=1, steps=4, stable="v1",
                  canary="v2")  # fmt: skip
    metrics.decided("ns", "fraud", [Event("Normal", "StepAdvanced", "x")] * 2)
    metrics.record("ns", "fraud", [SignalResult(name="acc", kind="compare", verdict="Pass",
                                                value=-0.01, lower=-0.02, upper=0.0, bound=-0.03,
                                                at="t")])  # fmt: skip
    seen = series("fraud")
    assert seen[("modelrollout_canary_weight", frozenset())] == 20
    assert seen[("modelrollout_rollout_step", frozenset())] == 1
    assert seen[("modelrollout_rollout_steps", frozenset())] == 4
    assert seen[("modelrollout_rollout_phase", frozenset({("phase", "Progressing")}))] == 1
    assert seen[("modelrollout_rollout_phase", frozenset({("phase", "Promoted")}))] == 0
    info = frozenset({("stable_version", "v1"), ("canary_version", "v2")})
    assert seen[("modelrollout_rollout_info", info)] == 1
    assert seen[("modelrollout_decisions_total", frozenset({("outcome", "StepAdvanced")}))] == 2
    signal = {("signal", "acc"), ("kind", "compare")}
    assert seen[("modelrollout_signal_bound", frozenset(signal))] == -0.03
    assert seen[("modelrollout_signal_verdict", frozenset({*signal, ("verdict", "Pass")}))] == 1

    # promoted: one info series, with the new versions
    metrics.state("ns", "fraud", phase="Promoted", weight=0, step=4, steps=4, stable="v2",
                  canary="")  # fmt: skip
    infos = [k for k in series("fraud") if k[0] == "modelrollout_rollout_info"]
    assert infos == [("modelrollout_rollout_info",
                      frozenset({("stable_version", "v2"), ("canary_version", "")}))]  # fmt: skip

    metrics.state("ns", "other", phase="Progressing", weight=5, step=0, steps=1, stable="a",
                  canary="b")  # fmt: skip
    metrics.forget("ns", "fraud")
    assert series("fraud") == {}
    assert series("other")[("modelrollout_canary_weight", frozenset())] == 5
    metrics.forget("ns", "other")


def test_a_number_a_verdict_did_not_have_is_absent_not_nan() -> None:
    metrics.record("ns", "nan", [SignalResult(name="d", kind="drift", verdict="NoData", at="t")])
    names = {name for name, _ in series("nan")}
    assert "modelrollout_signal_value" not in names
    assert "modelrollout_signal_verdict" in names
    metrics.forget("ns", "nan")
    assert series("nan") == {}
