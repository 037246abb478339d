"""Judging thresholds and tallying verdicts into decisions."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelrollout.api.v1alpha1 import Analysis, Counters, SignalResult, ThresholdSignal
from modelrollout.domain.judging import Measurement, Outcome, tally
from modelrollout.domain.kinds.threshold import judge_threshold

AT = "2026-11-24T10:00:00Z"
MAX_1PCT = ThresholdSignal(query="up", max=0.01)


def analysis(**limits: object) -> Analysis:
    return Analysis.model_validate({"prometheus": {"address": "http://p:9090"}, **limits})


def result(verdict: str, name: str = "error-rate") -> SignalResult:
    return SignalResult.model_validate({"name": name, "verdict": verdict, "at": AT})


@pytest.mark.parametrize(
    ("value", "verdict"),
    [(0.0, "Pass"), (0.01, "Pass"), (0.0100001, "Fail"), (5.0, "Fail"), (None, "NoData"),
     (math.nan, "NoData")],
)  # fmt: skip
def test_threshold_bounds_are_inclusive(value: float | None, verdict: str) -> None:
    judged = judge_threshold("error-rate", MAX_1PCT, Measurement(value=value), AT)
    assert judged.verdict == verdict
    assert judged.max == 0.01


def test_a_failed_threshold_says_which_value_broke_which_bound() -> None:
    judged = judge_threshold("p95", ThresholdSignal(query="q", min=0.5), Measurement(0.25), AT)
    assert (judged.verdict, judged.value, judged.message) == ("Fail", 0.25, "0.25 below min 0.5")


def test_a_measurement_error_is_an_error_not_a_pass() -> None:
    judged = judge_threshold("p95", MAX_1PCT, Measurement(error="connection refused"), AT)
    assert (judged.verdict, judged.message) == ("Error", "connection refused")


def test_first_failure_rolls_back_with_the_default_limit_of_zero() -> None:
    judged = tally(Counters(), [result("Pass", "a"), result("Fail", "b")], analysis())
    assert judged.outcome is Outcome.ROLLBACK
    assert judged.counters.failed == 1
    assert "signal b" in judged.reason


def test_failures_within_the_limit_continue() -> None:
    judged = tally(Counters(), [result("Fail")], analysis(failureLimit=1))
    assert (judged.outcome, judged.counters.failed) == (Outcome.CONTINUE, 1)
    judged = tally(judged.counters, [result("Fail")], analysis(failureLimit=1))
    assert judged.outcome is Outcome.ROLLBACK


def test_no_data_counts_as_inconclusive_by_default_and_pauses_past_the_limit() -> None:
    counters = Counters()
    for _ in range(3):
        judged = tally(counters, [result("NoData")], analysis())
        assert judged.outcome is Outcome.CONTINUE
        counters = judged.counters
    judged = tally(counters, [result("NoData")], analysis())
    assert (judged.outcome, judged.counters.inconclusive) == (Outcome.PAUSE, 4)


def test_no_data_fails_when_the_user_says_so() -> None:
    judged = tally(Counters(), [result("NoData")], analysis(noData="fail"))
    assert judged.outcome is Outcome.ROLLBACK


def test_errors_never_promote_and_count_as_one_failure_past_the_limit() -> None:
    spec = analysis(consecutiveErrorLimit=2, failureLimit=0)
    counters = Counters()
    for expected in (1, 2):
        judged = tally(counters, [result("Error")], spec)
        assert (judged.outcome, judged.counters.consecutive_errors) == (Outcome.CONTINUE, expected)
        counters = judged.counters
    judged = tally(counters, [result("Error")], spec)
    assert judged.outcome is Outcome.ROLLBACK
    assert "3 evaluations in a row failed to measure" in judged.reason


def test_a_successful_measurement_resets_the_error_streak() -> None:
    judged = tally(Counters(consecutive_errors=3), [result("Pass")], analysis())
    assert judged.counters.consecutive_errors == 0


@given(st.lists(st.sampled_from(["Pass", "Fail", "Inconclusive", "NoData", "Error"]), max_size=8))
def test_counters_never_decrease_and_pass_never_rolls_back(verdicts: list[str]) -> None:
    before = Counters(failed=0, inconclusive=1, consecutive_errors=0)
    judged = tally(before, [result(v, f"s{i}") for i, v in enumerate(verdicts)], analysis())
    assert judged.counters.failed >= before.failed
    assert judged.counters.inconclusive >= before.inconclusive
    if all(v == "Pass" for v in verdicts):
        assert judged.outcome is Outcome.CONTINUE


def test_counters_count_evaluations_not_signals() -> None:
    # Three signals without data in one evaluation are one inconclusive evaluation, and two
    # failing signals one failure, so a limit means the same whatever the number of signals.
    three = [result("NoData", "a"), result("NoData", "b"), result("NoData", "c")]
    assert tally(Counters(), three, analysis()).counters.inconclusive == 1
    two_fail = [result("Fail", "a"), result("Fail", "b"), result("Inconclusive", "c")]
    judged = tally(Counters(), two_fail, analysis(failureLimit=5))
    assert (judged.counters.failed, judged.counters.inconclusive) == (1, 0)


@pytest.mark.parametrize(
    ("threshold", "value", "verdict"),
    [(MAX_1PCT, math.inf, "Fail"), (ThresholdSignal(query="up", min=0.9), -math.inf, "Fail"),
     (ThresholdSignal(query="up", min=0.9), math.inf, "Error")],
)  # fmt: skip
def test_an_infinite_value_never_passes_and_never_reaches_status_as_a_number(
    threshold: ThresholdSignal, value: float, verdict: str
) -> None:
    # Given a query that divides by zero (a 5xx ratio over a stable side with no errors)
    judged = judge_threshold("ratio", threshold, Measurement(value=value), AT)
    # Then its verdict is never a Pass, and its wire form is valid JSON for the API server
    assert judged.verdict == verdict
    assert "Inf" in (judged.message or "")
    wire = json.dumps(judged.model_dump(mode="json", by_alias=True), allow_nan=False)
    assert "Infinity" not in wire


def test_a_result_holds_no_number_that_json_cannot_carry() -> None:
    raw = {"name": "s", "verdict": "Fail", "value": math.inf, "lower": -math.inf,
           "upper": math.nan, "bound": 0.1, "at": AT}  # fmt: skip
    judged = SignalResult.model_validate(raw)
    assert (judged.value, judged.lower, judged.upper, judged.bound) == (None, None, None, 0.1)
