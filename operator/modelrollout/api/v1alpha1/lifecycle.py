"""A model's life after its steps: the bake, in which the previous revision stays warm (and may
keep a small holdback share of traffic as a concurrent control) while the new one is watched."""

from __future__ import annotations

from pydantic import Field

from modelrollout.api.v1alpha1.rules import DURATION_PATTERN, Model

MAX_HOLDBACK_PERCENT = 50


class Holdback(Model):
    """The share of traffic the previous revision keeps during the bake: with it, the compare
    signals go on judging new against previous on the same minutes; without it a check after
    promotion can only compare before with after, confounded by the time of day."""

    percent: int = Field(ge=0, le=MAX_HOLDBACK_PERCENT)


class Bake(Model):
    """After the last step the new revision takes the traffic (all of it, or all but the
    holdback) while the previous revision stays at full size: a failing signal in `duration`
    sends every request back to it at once, with nothing to scale up. After a clean bake the
    previous revision is scaled down as after any promotion."""

    duration: str = Field(pattern=DURATION_PATTERN, max_length=32)
    holdback: Holdback | None = None
