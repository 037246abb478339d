"""How much evidence an undecided compare signal still needs, and when it is expected: what the
promotion gate tells a person before and when it asks them (issue 20: the gate gave up after a
fixed number of looks, whatever the evidence still needed, and said nothing beforehand).

At the current estimate v of the advantage, its interval [lower, upper] and the bound b (minus the
margin), the interval leaves the bound once its half-width on the side of the bound is below the
gap |v - b|. The half-width shrinks as one over the square root of the labelled requests n (both
arms, at the same split), so the requests a decision needs are n (half / gap)^2: a projection at
today's estimate, which later evidence moves, and a little short of the truth (the confidence
sequence's width also grows with the log of n). The rate is the labelled requests per minute since
the canary started.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from modelrollout.api.v1alpha1 import SignalResult

# Past this, "expected" is no time a rollout will see: none is given.
HORIZON = timedelta(days=365)


def still_needed(result: SignalResult) -> int | None:
    """Labelled requests (both arms) still needed for an undecided compare signal to decide at
    its current estimate; 0 when its interval has left the bound; None when it cannot say (no
    interval yet, no samples, an estimate exactly at the bound)."""
    if result.kind != "compare" or result.verdict != "Inconclusive" or result.samples is None:
        return None
    v, lower, upper, bound = result.value, result.lower, result.upper, result.bound
    n = result.samples.canary + result.samples.stable
    if v is None or lower is None or upper is None or bound is None or n <= 0:
        return None
    gap, half = (v - bound, v - lower) if v > bound else (bound - v, upper - v)
    if gap <= 0:
        return None
    if half <= gap:
        return 0
    more = n * ((half / gap) ** 2 - 1)
    return math.ceil(more) if math.isfinite(more) and more < 1e15 else None


def with_evidence(result: SignalResult, since: datetime, now: datetime) -> SignalResult:
    """`result` with the requests still needed and when they are expected at the rate so far."""
    more = still_needed(result)
    if more is None or result.samples is None:
        return result
    n = result.samples.canary + result.samples.stable
    minutes = (now - since).total_seconds() / 60
    expected = None
    if more == 0:
        expected = now
    elif minutes > 0 and n > 0:
        wait = more / (n / minutes)  # minutes, at the labelled rate so far
        expected = now + timedelta(minutes=wait) if wait < HORIZON.total_seconds() / 60 else None
    at = expected.strftime("%Y-%m-%dT%H:%M:%SZ") if expected is not None else None
    return result.model_copy(update={"needed": more, "expected_at": at})


def said(result: SignalResult, now: datetime) -> str:
    """One line for a person: how much more, and when (or that nobody can say when)."""
    if result.needed is None:
        return ""
    if result.expected_at is None:
        return (
            f"{result.name} needs about {result.needed:,} more labelled requests; at the rate "
            "so far not within a year"
        )
    wait = (datetime.fromisoformat(result.expected_at) - now).total_seconds() / 60
    return (f"{result.name} needs about {result.needed:,} more labelled requests, expected by "
            f"{result.expected_at} (in {max(wait, 0):.0f} min at the rate so far)")  # fmt: skip


__all__ = ["said", "still_needed", "with_evidence"]
