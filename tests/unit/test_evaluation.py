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


class ArmSource(FakeSource):
    """Counter increases by rendered selector and by the `arm` label a bucket rule stamps
    ("" for requests no rule stamped), summed as Prometheus sums them when `by` is not asked."""

    def increases(self, selector: str, since: datetime, now: datetime, by: str | None = None,
                  *, every: float | None = None) -> Increases:  # fmt: skip
        self.asked.append(selector)
        by_arm = self.series.get(selector)
        if by_arm is None:
            return Increases({}, periods={})
        counted = dict(by_arm) if by == "arm" else {"": sum(by_arm.values())}
        return Increases(counted, periods={k: [v] for k, v in counted.items()})


def split_checks(series: dict[str, dict[str, float]], *, weight: int = 40,
                 buckets: tuple[int, int] | None = (64, 64)) -> dict[str, Any]:  # fmt: skip
    context = Context(values={"model": "fraud"}, canary_version="v2", stable_version="v1",
                      canary_since=NOW - timedelta(seconds=600), now=NOW, weight=weight,
                      weight_since=NOW - timedelta(seconds=300), at="t",
                      buckets=buckets)  # fmt: skip
    check = {"requests": requests_selector()}
    analysis = Analysis.model_validate({"prometheus": {"address": "http://p"}, "signals": [],
                                        "sampleRatio": check})  # fmt: skip
    results = Evaluation(cast(Prometheus, ArmSource(series)), context, lambda _: "").run(analysis)
    return {r.name: r for r in results}


def requests_selector() -> str:
    return 'model_requests_total{model="{{ model }}",version="{{ version }}"}'


def test_sticky_buckets_get_their_own_sample_ratio_check_on_stamped_requests() -> None:
    # Treatment and control buckets of equal size, stamped with their arm's version
    judged = split_checks({requests("v2"): {"v2": 500.0, "": 400.0},
                           requests("v1"): {"v1": 520.0, "": 600.0}})  # fmt: skip
    assert judged["sample-ratio-buckets"].verdict == "Pass"
    assert judged["sample-ratio-buckets"].samples is not None
    assert judged["sample-ratio-buckets"].samples.canary == 500
    # the weighted check counts only the requests no bucket rule took: 400 against 600 at 40%
    assert judged["sample-ratio"].verdict == "Pass"
    assert judged["sample-ratio"].samples is not None
    assert (judged["sample-ratio"].samples.canary, judged["sample-ratio"].samples.stable) == (
        400, 600)  # fmt: skip


def test_a_bucket_pair_whose_split_disagrees_with_its_sizes_fails_its_check() -> None:
    judged = split_checks({requests("v2"): {"v2": 800.0, "": 400.0},
                           requests("v1"): {"v1": 200.0, "": 600.0}})  # fmt: skip
    assert judged["sample-ratio-buckets"].verdict == "Error"
    assert "treatment buckets got 80.00% of 1000 stamped requests" in str(
        judged["sample-ratio-buckets"].message)  # fmt: skip
    assert judged["sample-ratio"].verdict == "Pass"  # the weighted split is still right


def test_buckets_of_unequal_sizes_are_judged_by_their_sizes_whatever_the_weight() -> None:
    # 10% treatment (26 buckets) against 30% control (77), while the weight is 0
    judged = split_checks({requests("v2"): {"v2": 252.0}, requests("v1"): {"v1": 748.0, "": 9e3}},
                          weight=0, buckets=(26, 77))  # fmt: skip
    assert judged["sample-ratio-buckets"].verdict == "Pass"
    assert judged["sample-ratio-buckets"].bound == 26 / 103
    assert "sample-ratio" not in judged  # a weight of 0 splits nothing
    # without buckets in effect, no bucket check, and the weighted check counts every request
    judged = split_checks({requests("v2"): {"v2": 500.0, "": 400.0},
                           requests("v1"): {"v1": 500.0, "": 600.0}}, buckets=None)  # fmt: skip
    assert "sample-ratio-buckets" not in judged
    assert judged["sample-ratio"].samples is not None
    assert judged["sample-ratio"].samples.canary == 900
