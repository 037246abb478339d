"""The story vocabulary (testing/vocabulary.py) on the ticker over fakes: the very stories that
the e2e suite tells on the real control plane, here in milliseconds; and a Then that does not
hold fails, naming what it saw."""

from __future__ import annotations

import pytest

from modelrollout.testing.stories import model_rollout
from modelrollout.testing.vocabulary import (
    TickerDriver,
    aborted_at_once,
    given,
    promoted_through_its_steps,
)

PROMETHEUS = "http://prometheus.invalid:9090"  # the fake source answers every query with 0
LONG = [{"setWeight": 50}, {"analyze": {"duration": "10m"}}]


def test_a_healthy_version_is_promoted_through_its_steps() -> None:
    promoted_through_its_steps(TickerDriver(), model_rollout(PROMETHEUS, "v1"),
                               model_rollout(PROMETHEUS, "v2"))  # fmt: skip


def test_an_abort_takes_the_canary_off_traffic_at_once() -> None:
    driver = TickerDriver()
    aborted_at_once(
        driver, model_rollout(PROMETHEUS, "v1", LONG), model_rollout(PROMETHEUS, "v2", LONG)
    )
    assert driver.status()["message"] == "aborted by story"


def test_a_then_that_does_not_hold_fails() -> None:
    driver = TickerDriver()
    then = given(driver).rollout(model_rollout(PROMETHEUS, "v1")).stable("v1").when().then()
    with pytest.raises(AssertionError):
        then.phase("Paused")
    with pytest.raises(AssertionError, match="never, in 5 simulated s: the canary takes 50%"):
        then.when().wait_for_weight(50, timeout=5)
