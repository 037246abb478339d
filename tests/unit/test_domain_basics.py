"""Durations and revisions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from modelrollout.api.v1alpha1 import ModelRolloutSpec
from modelrollout.domain.durations import parse_duration
from modelrollout.domain.revision import revision_of
from modelrollout.testing.manifests import rollout


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1.5h", 5400), ("250ms", 0.25), ("0s", 0)],
)
def test_durations_parse_as_kubernetes_users_write_them(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "5", "5 m", "m5", "5x", "1h 30m", "-5s"])
def test_a_malformed_duration_is_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@given(
    st.integers(min_value=0, max_value=240),
    st.integers(min_value=0, max_value=59),
    st.integers(min_value=0, max_value=59),
)
def test_composite_durations_add_their_parts(hours: int, minutes: int, seconds: int) -> None:
    assert parse_duration(f"{hours}h{minutes}m{seconds}s") == hours * 3600 + minutes * 60 + seconds


def spec(**changes: object) -> ModelRolloutSpec:
    raw = rollout()["spec"]
    raw.update(changes)
    return ModelRolloutSpec.model_validate(raw)


def test_revision_changes_with_the_model_version_or_template_only() -> None:
    base = revision_of(spec())
    assert revision_of(spec()) == base
    assert revision_of(spec(replicas=7, progressDeadline="1h")) == base
    assert revision_of(spec(model={"name": "fraud-detector", "version": "v9"})) != base
    template = rollout()["spec"]["template"]
    template["spec"]["containers"][0]["image"] = "example/model:2"
    assert revision_of(spec(template=template)) != base
    assert len(base) == 10
