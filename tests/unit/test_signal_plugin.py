"""A signal kind plugs in by its own file plus a registry line for its measure and one for its
judge: a test-only kind, `floor` (a query's number must be at least `atLeast`), declared in this
file only, is measured and judged through the real Evaluation, beside a shipped kind."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import Field, ValidationError

from modelrollout.analysis.counting import Context, Counting
from modelrollout.analysis.evaluate import Evaluation
from modelrollout.analysis.kinds import MEASURES
from modelrollout.api.v1alpha1 import (
    Analysis,
    ConfigMapKeyRef,
    Model,
    PrometheusSource,
    Signal,
    SignalResult,
)
from modelrollout.domain.judging import Measurement
from modelrollout.domain.kinds import JUDGES
from modelrollout.domain.signals import Plan
from modelrollout.testing.fakes import FakeSource

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


# -- the test-only kind: its API model, its measure, its judge ---------------------------------


class FloorSignal(Model):
    query: str = Field(min_length=1)
    at_least: float


class PluggedSignal(Signal):
    """The API's Signal with the new kind's one field line."""

    floor: FloorSignal | None = None


def measure(counting: Counting, signal: FloorSignal) -> Measurement:
    return counting.source.measure(signal.query)


def judge(name: str, signal: FloorSignal, measured: Measurement, at: str,
          _plan: Plan | None) -> SignalResult:  # fmt: skip
    value = measured.value
    if value is None:
        return SignalResult(name=name, kind="floor", verdict="NoData", at=at)
    verdict = "Pass" if value >= signal.at_least else "Fail"
    return SignalResult(name=name, kind="floor", verdict=verdict, value=value,
                        min=signal.at_least, at=at)  # fmt: skip


# -- the stories -------------------------------------------------------------------------------


def _evaluate(values: dict[str, float]) -> list[SignalResult]:
    source = FakeSource(answer=lambda query: Measurement(value=values.get(query)))
    context = Context(values={"model": "fraud"}, canary_version="v2", stable_version="v1",
                      canary_since=NOW - timedelta(minutes=5), now=NOW, weight=20,
                      weight_since=None, at="t")  # fmt: skip

    def no_reference(_ref: ConfigMapKeyRef) -> str:
        raise AssertionError("no reference here")

    analysis = Analysis(
        prometheus=PrometheusSource(address="http://prometheus:9090"),
        signals=[
            PluggedSignal.model_validate({"name": "auc",
                                          "floor": {"query": "auc", "atLeast": 0.8}}),
            Signal.model_validate({"name": "errors",
                                   "threshold": {"query": "errors", "max": 0.01}}),
        ],
    )  # fmt: skip
    return Evaluation(source, context, no_reference).run(analysis)


def test_a_kind_registered_by_one_line_each_is_measured_and_judged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the test-only kind's measure and judge, each plugged in by one registry line
    monkeypatch.setitem(MEASURES, "floor", measure)
    monkeypatch.setitem(JUDGES, "floor", judge)
    # When a rollout's signals of both kinds are evaluated
    good = _evaluate({"auc": 0.91, "errors": 0.001})
    bad = _evaluate({"auc": 0.72, "errors": 0.001})
    # Then the new kind's verdict is its judge's, and the shipped kind is judged as ever
    assert [(r.name, r.kind, r.verdict) for r in good] == [
        ("auc", "floor", "Pass"), ("errors", "threshold", "Pass")]  # fmt: skip
    assert (bad[0].name, bad[0].verdict, bad[0].value) == ("auc", "Fail", 0.72)


def test_the_one_of_rule_is_made_from_the_kinds_including_a_new_one() -> None:
    assert PluggedSignal.kinds() == (
        "threshold",
        "compare",
        "drift",
        "fairness",
        "outliers",
        "paired",
        "floor",
    )
    with pytest.raises(ValidationError, match=r"a signal needs exactly one of .* or floor"):
        PluggedSignal.model_validate({"name": "auc"})


def test_a_kind_without_a_measure_or_judge_is_an_error_verdict_not_a_crash() -> None:
    # Given the kind in the API but not registered
    results = _evaluate({"auc": 0.91, "errors": 0.001})
    # Then that signal is an Error that says so, and the others are judged
    assert results[0].verdict == "Error"
    assert results[0].message == "no measure or judge for kind floor"
    assert results[1].verdict == "Pass"


def test_every_shipped_kind_has_exactly_a_measure_and_a_judge() -> None:
    assert set(MEASURES) == set(JUDGES) == set(Signal.kinds())
