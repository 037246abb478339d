"""The steps of a rollout."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from modelrollout.api.v1alpha1.rules import DURATION_PATTERN, Model, Ruled, exactly_one, ruled


class Duration(Model):
    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)


class Pause(Model):
    duration: str | None = Field(default=None, pattern=DURATION_PATTERN, max_length=32)


class Step(Ruled):
    RULES = (exactly_one("a step", "setWeight", "analyze", "pause"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    set_weight: int | None = Field(default=None, ge=0, le=100)
    analyze: Duration | None = None
    pause: Pause | None = None


class Abn(Model):
    """The A/B/n phase, before the steps (docs/arms.md): the champion (the stable revision),
    spec.model and every spec.challengers entry take equal shares of the traffic, each candidate
    is judged against the champion on the objective (analysis's first compare signal), and the
    winner, named only with confidence (better by `margin`, error at most `alpha` across all
    candidates and looks: docs/analysis.md, "A/B/n"), goes on through the steps. Past `duration`
    without a winner the rollout pauses for a human with the ranked table.

    `startShare`: each candidate's share of the requests in the phase's first period; it doubles
    at every period boundary until the candidates and the champion share equally (50 or more:
    equal from the start). A candidate much worse than the champion is eliminated while it
    serves few (bench/abn.py)."""

    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)
    start_share: int = Field(default=5, ge=1, le=50)
    margin: float = Field(default=0.0, ge=0, le=1)
    alpha: float = Field(default=0.05, gt=0, lt=0.5)


class Strategy(Model):
    steps: list[Step] = Field(min_length=1, max_length=64)
    abn: Abn | None = None
