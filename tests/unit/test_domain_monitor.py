"""The watch's detectors: calibrated to a mean time between false alarms, with hysteresis."""

from __future__ import annotations

import math

import numpy as np
import pytest

from modelrollout.domain.detectors import (
    baseline_ready,
    confirmed,
    cusum_threshold,
    fallen,
    healthy_floor,
    kpi_look,
    look_alpha,
)


def test_the_budget_is_split_over_the_signals_and_set_in_looks() -> None:
    # 30 days at one look a minute, over 3 signals: each may false-alarm once in 14,400 looks
    assert cusum_threshold(30 * 86400, 60, 3) == pytest.approx(math.log(14_400))
    assert look_alpha(30 * 86400, 60, 3) == pytest.approx(1 / 14_400)
    assert look_alpha(600, 60, 1) == 0.05  # never looser than 5% a look


def test_the_floor_is_below_the_baseline_and_above_it_when_lower_is_better() -> None:
    floor = healthy_floor(9_000, 10_000)
    assert 0.89 < floor < 0.9
    assert fallen(floor, 0.02) == pytest.approx(floor - 0.02)
    ceiling = healthy_floor(100, 10_000, higher_is_better=False)
    assert 0.01 < ceiling < 0.013
    assert fallen(ceiling, 0.01, higher_is_better=False) == pytest.approx(ceiling + 0.01)
    both = healthy_floor(np.array([9_000.0, 90.0]), np.array([10_000.0, 100.0]))
    assert both[0] == pytest.approx(floor)
    assert both[1] < both[0]  # fewer labels, a lower floor
    with pytest.raises(ValueError, match="labelled"):
        healthy_floor(0, 0)


def test_a_baseline_is_ready_once_its_floor_is_within_a_quarter_of_the_drop() -> None:
    assert not baseline_ready(900, 1_000, 0.02)  # +-2 points: a 2-point fall would hide in it
    assert baseline_ready(27_000, 30_000, 0.02)
    assert list(baseline_ready(np.array([900.0, 27_000.0, 0.0]), np.array([1_000.0, 30_000.0, 0.0]),
                               0.02)) == [False, True, False]  # fmt: skip


def test_hysteresis_needs_alarming_looks_in_a_row() -> None:
    above, alarm = confirmed(True, 0, 2)
    assert (above, alarm) == (1, False)
    above, alarm = confirmed(False, above, 2)
    assert (above, alarm) == (0, False)
    above, alarm = confirmed(True, confirmed(True, 0, 2)[0], 2)
    assert (above, alarm) == (2, True)


def test_a_fall_of_the_drop_alarms_and_starts_the_detector_again() -> None:
    floor, h = 0.89, cusum_threshold(30 * 86400, 60, 1)
    statistic, above, looks = 0.0, 0, 0
    alarm = False
    while not alarm and looks < 1_000:
        # 200 labels a minute at 0.85: five points under the baseline
        statistic, above, alarm = kpi_look(statistic, above, 170.0, 200.0, floor=floor,
                                           degraded=fallen(floor, 0.02), threshold=h,
                                           confirm=2)  # fmt: skip
        looks += 1
    assert alarm
    assert looks < 30
    assert (statistic, above) == (0.0, 0)


def test_healthy_streams_false_alarm_no_more_often_than_the_budget_says() -> None:
    """Lorden's bound, measured: at a budget of 200 looks, healthy streams at or above the floor
    (with traffic that swings from 5 to 400 a look) run at least 200 looks between alarms."""
    rng = np.random.default_rng(11)
    streams, looks, floor = 400, 4_000, 0.9
    h = cusum_threshold(200 * 60, 60, 1)
    statistic, above = np.zeros(streams), np.zeros(streams, dtype=np.int64)
    rates = np.where(np.arange(streams) % 2 == 0, floor, floor + 0.01)  # at the floor, or above
    alarms = 0
    for t in range(looks):
        n = rng.poisson(5 + 395 * (t % 100) / 100, streams)
        s = rng.binomial(n, rates)
        statistic, above, alarm = kpi_look(statistic, above, s, n, floor=floor,
                                           degraded=fallen(floor, 0.02), threshold=h,
                                           confirm=1)  # fmt: skip
        alarms += int(alarm.sum())
    assert alarms > 0  # the bound is measured, not vacuous
    assert streams * looks / alarms >= 200
