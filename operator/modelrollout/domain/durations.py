"""Go-style durations; the parser lives in the API layer, which validates them at admission.
And the length of the periods within which arms are compared like with like."""

from __future__ import annotations

from modelrollout.api import settings
from modelrollout.api.durations import parse_duration
from modelrollout.api.v1alpha1 import Analysis

# The shortest period within which canary and stable are compared (docs/analysis.md): several
# scrape intervals, so that every period holds samples of both arms' series.
PERIOD_SECONDS = settings.PERIOD_SECONDS.number()


def period_of(analysis: Analysis) -> float:
    """How long each period compared like with like is: the interval, at least PERIOD_SECONDS.
    The evaluation's strata and the A/B/n phase's share changes both count periods by it."""
    return max(parse_duration(analysis.interval), PERIOD_SECONDS)


__all__ = ["PERIOD_SECONDS", "parse_duration", "period_of"]
