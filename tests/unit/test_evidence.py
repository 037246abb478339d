"""How much evidence an undecided compare still needs, and when (domain/evidence.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from modelrollout.api.v1alpha1 import Samples, SignalResult
from modelrollout.domain.evidence import said, still_needed, with_evidence

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def compare(value: float, lower: float, upper: float, n: int = 10_000,
            verdict: str = "Inconclusive") -> SignalResult:  # fmt: skip
    return SignalResult.model_validate({
        "name": "accuracy", "kind": "compare", "verdict": verdict, "at": "x", "value": value,
        "lower": lower, "upper": upper, "bound": -0.01,
        "samples": Samples(canary=n // 2, stable=n // 2)})  # fmt: skip


def test_an_identical_canary_needs_the_half_width_to_shrink_to_the_margin() -> None:
    # estimate 0, half-width 0.02 against a margin of 0.01: four times the information
    assert still_needed(compare(0.0, -0.02, 0.02)) == 30_000


def test_a_canary_worse_than_the_margin_needs_its_upper_bound_below_it() -> None:
    # estimate -0.03, upper -0.005: a gap of 0.02 against a half-width of 0.025
    assert still_needed(compare(-0.03, -0.055, -0.005)) == 5_625


def test_what_cannot_be_estimated_says_none_and_a_decided_interval_needs_nothing() -> None:
    assert still_needed(compare(-0.01, -0.03, 0.01)) is None  # exactly at the bound
    assert still_needed(compare(0.0, -0.02, 0.02, verdict="Pass")) is None
    no_interval = compare(0.0, -0.02, 0.02).model_copy(update={"lower": None})
    assert still_needed(no_interval) is None
    assert still_needed(compare(0.0, -0.005, 0.005)) == 0


def test_the_expected_time_is_at_the_labelled_rate_since_the_canary_started() -> None:
    # 10,000 labelled in 10 minutes: 1,000 a minute; 30,000 more: 30 minutes from now
    result = with_evidence(compare(0.0, -0.02, 0.02), NOW - timedelta(minutes=10), NOW)
    assert (result.needed, result.expected_at) == (30_000, "2026-12-03T12:30:00Z")
    assert said(result, NOW) == (
        "accuracy needs about 30,000 more labelled requests, expected "
        "by 2026-12-03T12:30:00Z (in 30 min at the rate so far)"
    )
    # an estimate a hair off the bound: more than anybody will wait for, and said so
    far = with_evidence(compare(-0.00998, -0.03, 0.01), NOW - timedelta(minutes=10), NOW)
    assert far.needed is not None
    assert far.expected_at is None
    assert "not within a year" in said(far, NOW)
