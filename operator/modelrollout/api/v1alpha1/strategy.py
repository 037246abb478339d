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


class Strategy(Model):
    steps: list[Step] = Field(min_length=1, max_length=64)
