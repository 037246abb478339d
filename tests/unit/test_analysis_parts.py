"""Template substitution and reading one number out of a PromQL result."""

from __future__ import annotations

import math

import pytest

from modelrollout.analysis.prometheus import (
    Credentials,
    _one_number,
    period_boundaries,
    period_increases,
)
from modelrollout.domain.templating import TemplateError, render

VALUES = {"model": "fraud", "canary.version": "2026-11-20", "interval": "1m"}


def test_known_variables_are_substituted_with_or_without_spaces() -> None:
    query = 'rate(x{model="{{ model }}",version="{{canary.version}}"}[{{ interval }}])'
    assert render(query, VALUES) == 'rate(x{model="fraud",version="2026-11-20"}[1m])'


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({**VALUES, "model": 'a"}) or vector(1) #'}, "not allowed in a query"),
        ({**VALUES, "interval": "1m] or vector(1)"}, "not allowed in a query"),
    ],
)
def test_a_value_cannot_change_the_shape_of_the_query(values: dict[str, str], message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        render('x{model="{{ model }}"}[{{ interval }}]', values)


def test_unknown_and_missing_variables_are_named() -> None:
    with pytest.raises(TemplateError, match="unknown template variable"):
        render("{{ secret }}", VALUES)
    with pytest.raises(TemplateError, match=r"no value for \{\{ stable.version \}\}"):
        render("{{ stable.version }}", VALUES)


def test_one_number_from_a_vector_or_a_scalar() -> None:
    assert _one_number([{"metric": {}, "value": [1.0, "0.25"]}]).value == 0.25
    assert _one_number([1.0, "3"]).value == 3.0
    nan = _one_number([{"metric": {}, "value": [1.0, "NaN"]}]).value
    assert nan is not None
    assert math.isnan(nan)


def test_no_series_is_no_data_and_several_series_is_an_error() -> None:
    empty = _one_number([])
    assert (empty.value, empty.error) == (None, None)
    several = _one_number([{"value": [1, "1"]}, {"value": [1, "2"]}])
    assert several.error is not None
    assert "2 series" in several.error


def test_credentials_come_from_a_token_or_a_user_and_password() -> None:
    assert Credentials.from_secret_data({"token": "t"}).token == "t"
    basic = Credentials.from_secret_data({"username": "u", "password": "p"})
    assert (basic.username, basic.password) == ("u", "p")
    with pytest.raises(ValueError, match="token"):
        Credentials.from_secret_data({"user": "u"})


def counter_increase(samples: list[tuple[float, float]], since: float) -> float:
    """A counter's whole increase after `since`: one period without an end."""
    return sum(period_increases(samples, [since, math.inf]))


def test_counter_increase_adds_growth_across_resets_and_ignores_what_came_before() -> None:
    samples = [(1.0, 5.0), (2.0, 7.0), (3.0, 12.0), (4.0, 2.0), (5.0, 6.0)]
    assert counter_increase(samples, since=2.0) == pytest.approx(5 + 2 + 4)
    assert counter_increase(samples, since=0.0) == pytest.approx(12 + 6)  # born after `since`
    assert counter_increase(samples, since=9.0) == 0.0


def test_period_increases_put_each_increase_in_the_period_of_its_sample() -> None:
    samples = [(0.0, 10.0), (5.0, 12.0), (15.0, 20.0), (25.0, 3.0), (35.0, 9.0)]
    cuts = period_boundaries(0.0, 40.0, 10.0)
    assert cuts == [0.0, 10.0, 20.0, 30.0, 40.0]
    # 2 in (0, 10]; 8 in (10, 20]; a reset to 3 in (20, 30]; 6 in (30, 40]
    assert period_increases(samples, cuts) == [2.0, 8.0, 3.0, 6.0]
    assert sum(period_increases(samples, cuts)) == counter_increase(samples, since=0.0)
    assert period_boundaries(0.0, 5.0, 10.0) == [0.0, 5.0]
    assert period_boundaries(0.0, 25.0, None) == [0.0, 25.0]
