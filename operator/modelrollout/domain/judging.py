"""Judging: measurements in, verdicts out; verdicts in, counters and a decision out.

Adapters only measure (PromQL in, numbers out). These pure functions judge, and every verdict
carries the numbers that produced it, so a decision can be explained from status alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from modelrollout.api.v1alpha1 import Analysis, Counters, SignalResult


@dataclass(frozen=True)
class Measurement:
    """What an adapter measured for one signal: a number, no number, or an error."""

    value: float | None = None
    error: str | None = None


class Outcome(Enum):
    CONTINUE = "Continue"
    ROLLBACK = "Rollback"
    PAUSE = "Pause"


@dataclass(frozen=True)
class Judgement:
    counters: Counters
    outcome: Outcome
    reason: str = ""


def tally(
    counters: Counters,
    results: list[SignalResult],
    analysis: Analysis,
) -> Judgement:
    """Fold one evaluation's verdicts into the counters and decide.

    Counters count evaluations, not signals, so a limit means the same whatever the number of
    signals:
    - an evaluation with a Fail (or NoData under `noData: fail`) adds one to `failed`;
      `failed > failureLimit` rolls back;
    - one with no failure but a NoData (under `noData: inconclusive`) adds one to `inconclusive`;
      `inconclusive > inconclusiveLimit` pauses for a human, never promotes; an Inconclusive
      verdict (evidence still too thin) never counts: the promotion gate waits for it to decide
      up to its budget (machine._gate, issue 20);
    - an evaluation with an Error adds one to `consecutiveErrors`, one without resets it; past
      `consecutiveErrorLimit` the errors count as one Fail. An unreachable Prometheus therefore
      never promotes, and only rolls back after a sustained outage, by the user's limit.
    """
    no_data_fails = analysis.no_data == "fail"
    failing = [
        r for r in results if r.verdict == "Fail" or (r.verdict == "NoData" and no_data_fails)
    ]
    # A statistical signal that is still gathering evidence says Inconclusive at every look; that
    # is not a problem to count but the normal state of a young canary. The promotion gate
    # (machine.py) waits for those to reach Pass. What counts is a signal with no data at all.
    unsure = [r for r in results if r.verdict == "NoData" and not no_data_fails]
    errors = [r for r in results if r.verdict == "Error"]

    failed = counters.failed + (1 if failing else 0)
    consecutive = counters.consecutive_errors + 1 if errors else 0
    reasons = [f"signal {r.name}: {r.message or r.verdict}" for r in failing]
    if consecutive > analysis.consecutive_error_limit:
        failed += 1
        reasons.append(
            f"{consecutive} evaluations in a row failed to measure "
            f"(limit {analysis.consecutive_error_limit}): {errors[0].name}: {errors[0].message}"
        )
        consecutive = 0
    updated = Counters(
        failed=failed,
        inconclusive=counters.inconclusive + (1 if unsure and not failing else 0),
        consecutive_errors=consecutive,
    )
    if updated.failed > analysis.failure_limit:
        return Judgement(updated, Outcome.ROLLBACK, "; ".join(reasons))
    if updated.inconclusive > analysis.inconclusive_limit:
        names = "; ".join(f"{r.name} ({r.verdict}: {r.message or 'no data'})" for r in unsure)
        reason = (
            f"{updated.inconclusive} inconclusive results (limit {analysis.inconclusive_limit}), "
            f"latest: {names}"
        )
        return Judgement(updated, Outcome.PAUSE, reason)
    return Judgement(updated, Outcome.CONTINUE)
