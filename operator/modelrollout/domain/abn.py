"""A/B/n: a champion and K challengers on live traffic at once; who, if anyone, wins (issue 21).

Pure: each look gets every challenger's evidence against the champion on the objective (the
first compare signal: its advantage, estimated within periods so that a drift all arms share
cancels) and what else was said of it (a guardrail's Fail, a compare signal not yet
non-inferior), and says who is eliminated, who won, or that the evidence is not there yet.

The error it controls (docs/analysis.md, "A/B/n"): naming a winner that is not better than the
champion by `margin` happens in at most `alpha` of rollouts, across all K challengers and every
look. Each challenger's p-value for "not better by margin" is always valid (from the confidence
sequence, stats.always_valid_p) and so is its running minimum, which status keeps; Holm's
step-down over the K running minima (Holm 1979) controls the family-wise error under any
dependence, at every look at once. The family stays all K challengers, eliminated ones with
the p-value they had: dropping them would choose the family from the data. Other compare signals
must each be non-inferior (Pass) for their arm to win: an intersection-union test, which adds no
error to the winner's claim.

A winner is also not worse than any other challenger still running, by the same margin: its
advantage over each, with the standard errors added (conservative: both share the champion's
noise, which cancels in the difference), has its lower bound at alpha / (K - 1) above -margin.
Until then the rollout waits; at the end of the stated duration without a winner it pauses for a
human with the ranked table.

A candidate is also eliminated for futility, once its advantage's upper bound (at FUTILITY_ALPHA,
or alpha if larger) is below `margin`: it cannot win, and its share serves the others better.
An elimination names no winner, so it adds nothing to the error above; wrong ones cost power.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from modelrollout.domain import stats

ArmState = Literal["Running", "Eliminated", "Won"]
# Futility is judged at this level (or the phase's alpha, if larger): an elimination names no
# winner, so its errors cost power, not the winner's error rate; 0.2 cut the worst arm's
# exposure below that of canaries one after the other, and kept a 2-point winner's power
# (docs/analysis.md, "How A/B/n does").
FUTILITY_ALPHA = 0.2
Outcome = Literal["Winner", "Waiting", "NoWinner", "ChampionStays"]


@dataclass(frozen=True)
class Evidence:
    """One challenger at one look. `advantage`: its objective's advantage over the champion
    (None: not enough to estimate yet); `worse`: why it must go (a guardrail failed, or a compare
    signal found it worse than tolerated), None if nothing did; `unproven`: a compare signal
    other than the objective that is not yet non-inferior (it cannot win yet); `p_before`: the
    running minimum of its p-value so far (1 at first); `eliminated`: gone at an earlier look."""

    arm: str
    advantage: stats.Estimate | None
    worse: str | None = None
    unproven: str | None = None
    p_before: float = 1.0
    eliminated: str | None = None


@dataclass(frozen=True)
class Standing:
    """One challenger in the ranked table: its advantage over the champion with bounds that hold
    for all K at once (each at alpha / K), its running p-value, and its state with the reason."""

    arm: str
    state: ArmState
    p_value: float
    estimate: float | None = None
    lower: float | None = None
    upper: float | None = None
    reason: str = ""


@dataclass(frozen=True)
class Verdict:
    outcome: Outcome
    standings: list[Standing]  # best first; eliminated ones last
    winner: str | None = None
    eliminated: tuple[str, ...] = ()  # at this look
    message: str = ""


def judge(evidence: Sequence[Evidence], *, alpha: float, margin: float = 0.0,
          ending: bool = False) -> Verdict:  # fmt: skip
    """This look's verdict. `margin`: how much better than the champion a winner must be (0:
    better at all); `ending`: the stated duration is over, so a look without a winner pauses."""
    k = len(evidence)
    if k == 0:
        return Verdict("ChampionStays", [], message="no challenger")
    p_values: dict[str, float] = {}
    gone: dict[str, str] = {}
    reasons: dict[str, str] = {}
    for e in evidence:
        p_now = stats.always_valid_p(e.advantage, margin) if e.advantage is not None else 1.0
        p_values[e.arm] = min(e.p_before, p_now)
        if e.eliminated is not None:
            gone[e.arm] = e.eliminated
        elif e.worse is not None:
            gone[e.arm] = e.worse
        elif e.advantage is not None:
            upper = e.advantage.interval(max(alpha, FUTILITY_ALPHA)).upper
            if upper < margin:  # futile: it cannot be better than the champion by the margin
                gone[e.arm] = (f"cannot be better than the champion by {margin:g}: advantage "
                               f"{e.advantage.value:+.4g}, at most {upper:+.4g}")  # fmt: skip
    newly = tuple(e.arm for e in evidence if e.arm in gone and e.eliminated is None)
    running = [e for e in evidence if e.arm not in gone]
    better = stats.holm(p_values, alpha)
    candidates = [e for e in running if e.arm in better and e.unproven is None
                  and e.advantage is not None]  # fmt: skip
    winner = _best(candidates, running, alpha=alpha, margin=margin, k=k, reasons=reasons)
    for e in running:
        if e.arm in better and e.unproven is not None:
            reasons[e.arm] = f"better than the champion, but {e.unproven}"
    standings = _table(evidence, p_values, gone, reasons, winner, alpha=alpha / k)
    if winner is not None:
        w = next(s for s in standings if s.arm == winner)
        return Verdict("Winner", standings, winner, newly, f"{winner} wins: advantage "
                       f"{w.estimate:+.4g} in [{w.lower:+.4g}, {w.upper:+.4g}] over the champion "
                       f"(p={w.p_value:.2g}, Holm over {k})")  # fmt: skip
    if not running:
        return Verdict("ChampionStays", standings, None, newly,
                       "every challenger was eliminated: the champion stays")  # fmt: skip
    if ending:
        return Verdict("NoWinner", standings, None, newly,
                       f"no challenger is better than the champion with confidence after the "
                       f"stated duration; {len(running)} still running")  # fmt: skip
    return Verdict("Waiting", standings, None, newly, "no winner yet")


def _best(candidates: list[Evidence], running: list[Evidence], *, alpha: float, margin: float,
          k: int, reasons: dict[str, str]) -> str | None:  # fmt: skip
    """The candidate with the highest estimate, if it is not worse than any other running
    challenger by margin, with confidence; None otherwise (and why, in `reasons`)."""
    if not candidates:
        return None
    top = max(candidates, key=lambda e: (_value(e), e.arm))
    multiplier_alpha = alpha / max(1, k - 1)
    for other in running:
        if other.arm == top.arm or other.advantage is None:
            continue
        a, b = top.advantage, other.advantage
        if a is None:
            return None
        gap = stats.Estimate(a.value - b.value, math.hypot(a.se, b.se), min(a.n, b.n))
        lower = gap.interval(multiplier_alpha).lower
        if lower <= -margin:
            reasons[top.arm] = (f"better than the champion, not yet shown not worse than "
                                f"{other.arm} (difference {gap.value:+.4g}, lower bound "
                                f"{lower:+.4g})")  # fmt: skip
            return None
    return top.arm


def _value(e: Evidence) -> float:
    return e.advantage.value if e.advantage is not None else -math.inf


def _table(evidence: Sequence[Evidence], p_values: dict[str, float], gone: dict[str, str],
           reasons: dict[str, str], winner: str | None, *,
           alpha: float) -> list[Standing]:  # fmt: skip
    rows = []
    for e in evidence:
        state: ArmState = "Won" if e.arm == winner else "Eliminated" if e.arm in gone else "Running"
        reason = gone.get(e.arm) or reasons.get(e.arm, "")
        if e.advantage is None:
            rows.append(Standing(e.arm, state, p_values[e.arm], reason=reason or "no estimate yet"))
            continue
        bounds = e.advantage.interval(alpha)
        rows.append(Standing(e.arm, state, p_values[e.arm], bounds.estimate, bounds.lower,
                             bounds.upper, reason))  # fmt: skip
    order = {"Won": 0, "Running": 1, "Eliminated": 2}
    return sorted(rows, key=lambda s: (order[s.state], -(s.estimate if s.estimate is not None
                                                         else -math.inf), s.arm))  # fmt: skip


__all__ = ["ArmState", "Evidence", "Outcome", "Standing", "Verdict", "judge"]
