"""One evaluation (analysis/evaluate.py) over a fake Prometheus of our own: what it asks per arm,
and how it tells "nothing counted yet" from "nothing there"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from modelrollout.analysis.evaluate import Context, Evaluation
from modelrollout.analysis.prometheus import Increases, PrometheusSource
from modelrollout.api.v1alpha1 import Analysis, ConfigMapKeyRef

NOW = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
ARM = 'model="{{ model }}",version="{{ version }}"'
ACCURACY = {
    "name": "accuracy",
    "compare": {"successes": f'model_feedback_total{{{ARM},outcome="correct"}}',
                "total": f"model_feedback_total{{{ARM}}}", "margin": 0.01},
}  # fmt: skip


class FakeSource:
    """Counter increases by rendered selector; a selector it does not know matches no series."""

    def __init__(self, series: dict[str, dict[str, float]]) -> None:
        self.series = series
        self.asked: list[str] = []

    def increases(self, selector: str, since: datetime, now: datetime,
                  by: str | None = None) -> Increases:  # fmt: skip
        self.asked.append(selector)
        return Increases(dict(self.series.get(selector, {})))


def evaluate(series: dict[str, dict[str, float]], canary: str = "v2") -> tuple[Any, FakeSource]:
    source = FakeSource(series)
    context = Context(values={"model": "fraud"}, canary_version=canary, stable_version="v1",
                      canary_since=NOW - timedelta(seconds=5), now=NOW, weight=50,
                      weight_since=None, at="t")  # fmt: skip

    def no_reference(ref: ConfigMapKeyRef) -> str:
        raise AssertionError("no reference here")

    analysis = Analysis.model_validate({"prometheus": {"address": "http://p"},
                                        "signals": [ACCURACY]})  # fmt: skip
    results = Evaluation(cast(PrometheusSource, source), context, no_reference).run(analysis)
    return results[0], source


def selector(version: str, correct: bool) -> str:
    outcome = ',outcome="correct"' if correct else ""
    return f'model_feedback_total{{model="fraud",version="{version}"{outcome}}}'


def test_each_arm_is_asked_with_its_own_version() -> None:
    _, source = evaluate({})
    assert source.asked == [selector("v2", True), selector("v1", True),
                            selector("v2", False), selector("v1", False)]  # fmt: skip


def test_series_that_exist_but_counted_nothing_yet_are_inconclusive_not_no_data() -> None:
    # just after the canary started: the stable's counters exist, nothing scraped since the start
    result, _ = evaluate({selector("v1", True): {"": 0.0}, selector("v1", False): {"": 0.0}})
    assert result.verdict == "Inconclusive"
    assert "series exist" in (result.message or "")


def test_selectors_that_match_no_series_are_no_data() -> None:
    result, _ = evaluate({})
    assert result.verdict == "NoData"


def test_arms_with_one_version_are_an_error() -> None:
    result, _ = evaluate({}, canary="v1")
    assert result.verdict == "Error"
    assert "cannot tell the arms apart" in (result.message or "")
