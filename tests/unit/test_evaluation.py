"""One evaluation (analysis/evaluate.py) over a fake Prometheus of our own: what it asks per arm,
and how it tells "nothing counted yet" from "nothing there"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from modelrollout.analysis.counting import Context
from modelrollout.analysis.evaluate import Evaluation, failed_everywhere
from modelrollout.analysis.prometheus import Increases, Prometheus
from modelrollout.api.v1alpha1 import Analysis, ConfigMapKeyRef
from modelrollout.domain.judging import Measurement

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

    def increases(self, selector: str, since: datetime, now: datetime, by: str | None = None,
                  *, every: float | None = None) -> Increases:  # fmt: skip
        self.asked.append(selector)
        counted = dict(self.series.get(selector, {}))
        return Increases(counted, periods={k: [v] for k, v in counted.items()})


def evaluate(series: dict[str, dict[str, float]], canary: str = "v2") -> tuple[Any, FakeSource]:
    source = FakeSource(series)
    context = Context(values={"model": "fraud"}, canary_version=canary, stable_version="v1",
                      canary_since=NOW - timedelta(seconds=5), now=NOW, weight=50,
                      weight_since=None, at="t")  # fmt: skip

    def no_reference(ref: ConfigMapKeyRef) -> str:
        raise AssertionError("no reference here")

    analysis = Analysis.model_validate({"prometheus": {"address": "http://p"},
                                        "signals": [ACCURACY]})  # fmt: skip
    results = Evaluation(cast(Prometheus, source), context, no_reference).run(analysis)
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


class BrokenSource(FakeSource):
    """A source whose counting fails the way no one planned for."""

    def increases(self, selector: str, since: datetime, now: datetime, by: str | None = None,
                  *, every: float | None = None) -> Increases:  # fmt: skip
        raise ZeroDivisionError("float division by zero")


def test_an_unexpected_error_in_one_signal_is_its_error_verdict_not_a_stalled_tick() -> None:
    context = Context(values={"model": "fraud"}, canary_version="v2", stable_version="v1",
                      canary_since=NOW - timedelta(seconds=5), now=NOW, weight=50,
                      weight_since=NOW - timedelta(seconds=60), at="t")  # fmt: skip
    threshold = {"name": "errors", "threshold": {"query": "up", "max": 1}}
    analysis = Analysis.model_validate({"prometheus": {"address": "http://p"},
                                        "signals": [ACCURACY, threshold]})  # fmt: skip

    class Half(BrokenSource):
        def measure(self, query: str) -> Measurement:
            return Measurement(value=0.5)

    results = Evaluation(cast(Prometheus, Half({})), context, lambda _ref: "").run(analysis)
    by_name = {r.name: r for r in results}
    # The broken signal and the sample ratio check say so, readably; the other is still judged
    assert by_name["accuracy"].verdict == "Error"
    assert by_name["accuracy"].message == (
        "could not measure or judge: float division by zero (ZeroDivisionError)"
    )
    assert by_name["sample-ratio"].verdict == "Error"
    assert by_name["errors"].verdict == "Pass"


def test_failed_everywhere_gives_every_signal_the_same_error() -> None:
    analysis = Analysis.model_validate({"prometheus": {"address": "http://p"},
                                        "signals": [ACCURACY]})  # fmt: skip
    results = failed_everywhere(analysis, "Prometheus credentials: Secret ns/x: not found", "t")
    assert [(r.name, r.verdict, r.message) for r in results] == [
        ("accuracy", "Error", "Prometheus credentials: Secret ns/x: not found")
    ]


def requests(version: str) -> str:
    return f'model_requests_total{{model="fraud",version="{version}"}}'


def served(series: dict[str, dict[str, float]], **check: Any) -> float | None:
    context = Context(values={"model": "fraud"}, canary_version="v2", stable_version="v1",
                      canary_since=NOW - timedelta(seconds=60), now=NOW, weight=50,
                      weight_since=None, at="t",
                      step_since=NOW - timedelta(seconds=30))  # fmt: skip
    analysis = Analysis.model_validate({"prometheus": {"address": "http://p"},
                                        "signals": [ACCURACY], "sampleRatio": check})  # fmt: skip
    return Evaluation(cast(Prometheus, FakeSource(series)), context, lambda _: "").served(analysis)


def test_the_canarys_requests_in_the_step_are_counted_by_the_sample_ratio_selector() -> None:
    assert served({requests("v2"): {"": 42.0}, requests("v1"): {"": 40.0}}) == 42.0
    # only the stable's series: the canary served nobody
    assert served({requests("v1"): {"": 40.0}}) == 0.0
    # no series for either arm, or the check disabled: not counted, as the sample ratio check
    assert served({}) is None
    assert served({requests("v2"): {"": 42.0}}, enabled=False) is None
