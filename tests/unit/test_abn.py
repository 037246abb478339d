"""A/B/n's verdict at one look (domain/abn.py): Holm over the challengers' always-valid p-values,
elimination on a guardrail, a winner only when it is also not worse than the others, the
running minimum kept, and a ranked table."""

from __future__ import annotations

import math

import numpy as np

from modelrollout.api.v1alpha1 import CompareSignal
from modelrollout.domain import abn, stats
from modelrollout.domain.abn import Evidence
from modelrollout.domain.kinds import compare


def est(value: float, se: float = 0.004, n: float = 30000) -> stats.Estimate:
    return stats.Estimate(value, se, n)


def test_the_better_challenger_wins_the_worse_is_eliminated_and_the_table_is_ranked() -> None:
    verdict = abn.judge([Evidence("v2", est(0.0)), Evidence("v3", est(0.03)),
                         Evidence("v4", est(-0.03), worse="accuracy: worse than tolerated")],
                        alpha=0.05)  # fmt: skip
    assert (verdict.outcome, verdict.winner, verdict.eliminated) == ("Winner", "v3", ("v4",))
    assert [(s.arm, s.state) for s in verdict.standings] == [
        ("v3", "Won"), ("v2", "Running"), ("v4", "Eliminated")]  # fmt: skip
    top = verdict.standings[0]
    assert top.lower is not None
    assert top.upper is not None
    assert 0 < top.lower < 0.03 < top.upper
    assert "v3 wins" in verdict.message
    assert "Holm over 3" in verdict.message
    assert verdict.standings[2].reason == "accuracy: worse than tolerated"


def test_equal_challengers_wait_and_at_the_end_pause_without_a_winner() -> None:
    arms = [Evidence("v2", est(0.001)), Evidence("v3", est(-0.002)), Evidence("v4", est(0.0))]
    assert abn.judge(arms, alpha=0.05).outcome == "Waiting"
    ending = abn.judge(arms, alpha=0.05, ending=True)
    assert (ending.outcome, ending.winner) == ("NoWinner", None)
    assert "3 still running" in ending.message
    assert [s.arm for s in ending.standings] == ["v2", "v4", "v3"]  # by estimate


def test_holm_asks_more_of_one_challenger_among_three_than_of_one_alone() -> None:
    p = 0.03  # below alpha, above alpha / 3
    alone = abn.judge([Evidence("v2", None, p_before=p)], alpha=0.05)
    assert alone.winner is None  # no estimate now: the running minimum alone cannot name it
    alone = abn.judge([Evidence("v2", est(0.0), p_before=p)], alpha=0.05)
    assert alone.winner == "v2"
    among = abn.judge([Evidence("v2", est(0.0), p_before=p), Evidence("v3", est(0.0)),
                       Evidence("v4", est(0.0))], alpha=0.05)  # fmt: skip
    assert among.winner is None


def test_the_running_minimum_is_kept_so_a_later_dip_does_not_take_back_what_was_shown() -> None:
    strong = abn.judge([Evidence("v2", est(0.03))], alpha=0.05)
    p = strong.standings[0].p_value
    assert p < 1e-3
    later = abn.judge([Evidence("v2", est(0.004), p_before=p)], alpha=0.05)
    assert later.standings[0].p_value == p


def test_a_winner_must_not_be_worse_than_the_next_best_and_waits_until_it_is_shown() -> None:
    close = abn.judge([Evidence("v2", est(0.030)), Evidence("v3", est(0.028))], alpha=0.05)
    assert close.outcome == "Waiting"
    assert "not yet shown not worse than v3" in close.standings[0].reason
    apart = abn.judge([Evidence("v2", est(0.030, se=0.002)), Evidence("v3", est(0.012, se=0.002))],
                      alpha=0.05, margin=0.0)  # fmt: skip
    assert apart.winner == "v2"


def test_a_challenger_with_another_compare_not_yet_proven_cannot_win() -> None:
    verdict = abn.judge([Evidence("v2", est(0.03), unproven="latency (Inconclusive)")], alpha=0.05)
    assert verdict.outcome == "Waiting"
    assert verdict.standings[0].reason == "better than the champion, but latency (Inconclusive)"


def test_when_every_challenger_is_eliminated_the_champion_stays() -> None:
    verdict = abn.judge([Evidence("v2", est(-0.05), worse="errors above 1%"),
                         Evidence("v3", est(0.0), eliminated="drift")], alpha=0.05)  # fmt: skip
    assert (verdict.outcome, verdict.eliminated) == ("ChampionStays", ("v2",))


def test_the_always_valid_p_value_is_the_level_at_which_the_bound_touches() -> None:
    e = est(0.02, se=0.005, n=20000)
    p = stats.always_valid_p(e, 0.0)
    assert math.isclose(e.interval(p).lower, 0.0, abs_tol=1e-9)
    assert stats.always_valid_p(e, 0.01) > p  # a higher bar is harder to clear
    assert stats.always_valid_p(est(-0.01), 0.0) == 1.0
    assert stats.always_valid_p(stats.Estimate(0.1, 0.0, 0), 0.0) == 1.0


def test_under_the_null_the_running_minimum_p_value_stays_valid_over_many_looks() -> None:
    """Cumulative means of a null stream looked at 40 times: the share of streams whose running
    minimum ever falls to alpha is at most alpha (far below it, as the sequence is uniform)."""
    rng = np.random.default_rng(20261204)
    alpha, streams, looks, per_look = 0.05, 2000, 40, 250
    crossed = 0
    for _ in range(streams):
        total, n, low = 0.0, 0, 1.0
        for _ in range(looks):
            total += float(rng.normal(0.0, math.sqrt(per_look)))
            n += per_look
            estimate = stats.Estimate(total / n, 1 / math.sqrt(n), n)
            low = min(low, stats.always_valid_p(estimate, 0.0))
        crossed += low <= alpha
    assert crossed / streams <= alpha


def test_holm_rejects_in_order_and_stops_at_the_first_that_fails() -> None:
    assert stats.holm({"a": 0.01, "b": 0.02, "c": 0.5}, 0.05) == {"a", "b"}
    assert stats.holm({"a": 0.02, "b": 0.02, "c": 0.02}, 0.05) == set()  # 0.02 > 0.05 / 3
    assert stats.holm({}, 0.05) == set()


def test_a_candidate_that_cannot_beat_the_champion_by_the_margin_is_eliminated_as_futile() -> None:
    verdict = abn.judge([Evidence("v2", est(0.03)), Evidence("v3", est(-0.02))], alpha=0.05,
                        margin=0.01)  # fmt: skip
    assert verdict.eliminated == ("v3",)
    gone = next(s for s in verdict.standings if s.arm == "v3")
    assert gone.reason.startswith("cannot be better than the champion by 0.01")


def test_the_objective_is_estimated_only_where_the_judge_uses_the_normal_approximation() -> None:
    signal = CompareSignal.model_validate({"successes": "s", "total": "t", "margin": 0.01,
                                           "minSamples": 100})  # fmt: skip
    perfect_handful = compare.Rates([(40.0, 40.0, 36.0, 40.0)])
    assert compare.advantage(signal, perfect_handful) is None  # below minSamples
    no_errors = compare.Rates([(400.0, 400.0, 360.0, 400.0)])
    assert compare.advantage(signal, no_errors) is None  # no failure in one arm: exact bounds
    enough = compare.advantage(signal, compare.Rates([(380.0, 400.0, 360.0, 400.0)]))
    assert enough is not None
    assert math.isclose(enough.value, 0.05)
    assert enough.se > 0
