"""The statistics against scipy and hand-computed references, their properties, and the
sequential test's error rate in simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats as sp
from scipy.spatial.distance import jensenshannon

from modelrollout.domain import stats

counts = st.lists(st.integers(0, 10_000), min_size=2, max_size=12).filter(lambda c: sum(c) > 0)


def paired(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    a = draw(counts)
    b = draw(st.lists(st.integers(0, 10_000), min_size=len(a), max_size=len(a)))
    if sum(b) == 0:
        b[0] = 1
    return a, b


pairs = st.composite(paired)()


def _binned(sample: np.ndarray, values: int) -> np.ndarray:
    """Counts of integer values 0..values-1: bins that cut no information."""
    return np.bincount(sample, minlength=values).astype(float)


# --- against references -----------------------------------------------------------------------


def test_jensen_shannon_matches_scipy() -> None:
    p, q = [10, 20, 30, 0, 5], [12, 8, 30, 4, 0]
    assert stats.jensen_shannon(p, q) == pytest.approx(jensenshannon(p, q, base=2), rel=1e-12)


def test_psi_matches_a_hand_computed_value() -> None:
    # p = (.5, .5), q = (.25, .75): (-.25) ln(.5) + (.25) ln(1.5)
    expected = -0.25 * math.log(0.5) + 0.25 * math.log(1.5)
    assert stats.psi([50, 50], [25, 75]) == pytest.approx(expected, rel=1e-12)
    # an empty canary bucket is floored at 1e-4, not infinite
    floored = (1e-4 - 0.5) * math.log(1e-4 / 0.5) + 0.5 * math.log(1 / 0.5)
    assert stats.psi([1, 1], [0, 1]) == pytest.approx(floored, rel=1e-12)


def test_hellinger_matches_a_hand_computed_value() -> None:
    # BC = sqrt(.5 * .25) + sqrt(.5 * .75)
    expected = math.sqrt(1 - (math.sqrt(0.125) + math.sqrt(0.375)))
    assert stats.hellinger([1, 1], [1, 3]) == pytest.approx(expected, rel=1e-12)
    assert stats.hellinger([1, 0], [0, 1]) == pytest.approx(1.0)


def test_ks_matches_scipy_when_buckets_cut_no_information() -> None:
    rng = np.random.default_rng(7)
    a, b = rng.binomial(9, 0.45, 800), rng.binomial(9, 0.5, 600)
    result = stats.ks(_binned(a, 10), _binned(b, 10))
    reference = sp.ks_2samp(a, b, method="asymp")
    assert result.statistic == pytest.approx(reference.statistic, abs=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)


def test_mann_whitney_matches_scipy_with_ties() -> None:
    rng = np.random.default_rng(11)
    ref, can = rng.integers(0, 6, 300), rng.integers(0, 7, 250)
    result = stats.mann_whitney(_binned(ref, 7), _binned(can, 7))
    reference = sp.mannwhitneyu(can, ref, use_continuity=False, method="asymptotic")
    assert result.u == pytest.approx(reference.statistic, rel=1e-12)
    assert result.p_value == pytest.approx(reference.pvalue, rel=1e-9)
    assert result.effect == pytest.approx(reference.statistic / (300 * 250) - 0.5)


def test_chi_square_matches_scipy_when_no_cell_is_sparse() -> None:
    ref, can = [120, 340, 95, 60], [100, 300, 140, 70]
    result = stats.chi_square(ref, can)
    chi2, p, _, _ = sp.chi2_contingency([ref, can], correction=False)
    assert result.p_value == pytest.approx(p, rel=1e-9)
    assert result.statistic == pytest.approx(math.sqrt(chi2 / sum(ref + can)), rel=1e-12)


def test_chi_square_pools_sparse_cells() -> None:
    # the last two cells expect fewer than 5 each: they are tested as one pooled cell
    ref, can = [200, 300, 1, 2], [210, 290, 3, 1]
    pooled = [[200, 300, 3], [210, 290, 4]]
    _, p, _, _ = sp.chi2_contingency(pooled, correction=False)
    assert stats.chi_square(ref, can).p_value == pytest.approx(p, rel=1e-9)


def test_wasserstein_matches_scipy_for_values_at_the_edges() -> None:
    rng = np.random.default_rng(3)
    edges = np.array([1.0, 2.0, 4.0, 8.0, 16.0])
    a, b = rng.choice(edges, 500), rng.choice(edges, 400, p=[0.1, 0.1, 0.2, 0.3, 0.3])
    ra = [(a == e).sum() for e in edges] + [0]
    rb = [(b == e).sum() for e in edges] + [0]
    expected = sp.wasserstein_distance(a, b) / np.std(a)
    assert stats.wasserstein(ra, rb, edges) == pytest.approx(expected, rel=1e-9)


def test_sample_ratio_flags_a_split_that_does_not_match_the_weight() -> None:
    assert stats.sample_ratio(2000, 8000, 0.2).p_value > 0.5
    mismatch = stats.sample_ratio(1000, 9000, 0.2)
    assert mismatch.statistic == pytest.approx(0.1)
    assert mismatch.p_value < 1e-9
    assert mismatch.p_value == pytest.approx(sp.chisquare([1000, 9000], [2000, 8000]).pvalue)


def test_parity_gap_and_impact_ratio() -> None:
    selected, total = {"a": 30.0, "b": 60.0, "c": 50.0}, {"a": 100.0, "b": 100.0, "c": 100.0}
    gap = stats.gap_of(stats.binomial_rates(selected, total))
    assert gap.value == pytest.approx(0.3)
    assert (gap.lowest, gap.highest) == ("a", "b")
    assert gap.se == pytest.approx(math.sqrt(0.3 * 0.7 / 100 + 0.6 * 0.4 / 100))
    assert stats.ratio_of(stats.binomial_rates(selected, total)).value == pytest.approx(0.5)


def test_bad_counts_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="same buckets"):
        stats.mann_whitney([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="not negative"):
        stats.jensen_shannon([1, -1], [1, 1])
    with pytest.raises(ValueError, match="no observations"):
        stats.hellinger([0, 0], [1, 1])


# --- properties ---------------------------------------------------------------------------------

DISTANCES = [stats.jensen_shannon, stats.hellinger, stats.psi]


@settings(max_examples=200, deadline=None)
@given(counts)
def test_distances_are_zero_for_identical_inputs(c: list[int]) -> None:
    for distance in DISTANCES:
        assert distance(c, c) == pytest.approx(0.0, abs=1e-7)
    assert stats.ks(c, c).statistic == pytest.approx(0.0, abs=1e-12)
    assert stats.chi_square(c, c).statistic == pytest.approx(0.0, abs=1e-7)


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_distances_are_symmetric_and_bounded(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    for distance in DISTANCES:
        assert distance(a, b) == pytest.approx(distance(b, a), abs=1e-9)
        assert distance(a, b) >= 0
    for bounded in (stats.jensen_shannon, stats.hellinger):
        assert bounded(a, b) <= 1 + 1e-12
    test = stats.ks(a, b)
    assert 0 <= test.statistic <= 1
    assert 0 <= test.p_value <= 1
    assert test.statistic == pytest.approx(stats.ks(b, a).statistic)
    chi = stats.chi_square(a, b)
    assert 0 <= chi.statistic <= 1 + 1e-9
    assert 0 <= chi.p_value <= 1


@settings(max_examples=200, deadline=None)
@given(pairs)
def test_mann_whitney_is_antisymmetric(pair: tuple[list[int], list[int]]) -> None:
    a, b = pair
    forward, backward = stats.mann_whitney(a, b), stats.mann_whitney(b, a)
    assert forward.effect == pytest.approx(-backward.effect, abs=1e-9)
    assert -0.5 <= forward.effect <= 0.5
    assert forward.p_value == pytest.approx(backward.p_value, abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.floats(10, 1e7), st.floats(1e-4, 0.3))
def test_confidence_sequence_is_wider_than_one_fixed_look(n: float, alpha: float) -> None:
    assert stats.cs_multiplier(n, alpha) > sp.norm.isf(alpha)


# --- the sequential test in simulation -----------------------------------------------------------


def test_sequential_false_rollback_rate_stays_below_alpha_under_peeking() -> None:
    """A/A with no margin, the hardest case for a false Fail: the canary is judged after every
    interval, 20 looks, while its share of traffic grows as a rollout's does. Fixed seed; the
    tolerance is three standard errors of the estimated rate."""
    rng = np.random.default_rng(2026)
    runs, alpha, p = 4000, 0.05, 0.9
    shares = [0.05] * 5 + [0.2] * 5 + [0.5] * 10
    per_interval = 600
    n_can = rng.binomial(per_interval, np.array(shares), size=(runs, len(shares)))
    n_sta = per_interval - n_can
    x_can, x_sta = rng.binomial(n_can, p), rng.binomial(n_sta, p)
    nc, ns = n_can.cumsum(1), n_sta.cumsum(1)
    xc, xs = x_can.cumsum(1), x_sta.cumsum(1)
    failed = np.zeros(runs, dtype=bool)
    naive = np.zeros(runs, dtype=bool)
    for run in range(runs):
        for look in range(len(shares)):
            arms = (xc[run, look], nc[run, look]), (xs[run, look], ns[run, look])
            if stats.too_few_events(*arms):
                continue
            (x1, n1), (x2, n2) = arms
            interval = stats.stratified_difference([[x1, n1, x2, n2]]).interval(alpha)
            failed[run] |= interval.upper < 0
            half = interval.upper - interval.estimate
            z_half = half / stats.cs_multiplier(nc[run, look] + ns[run, look], 2 * alpha)
            naive[run] |= interval.estimate + sp.norm.isf(alpha) * z_half < 0
    rate, naive_rate = failed.mean(), naive.mean()
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs), rate
    # the same data judged by a one-look z-test at every interval fails far more often
    assert naive_rate > 2 * alpha, naive_rate


# --- like with like: periods as strata (issue 10) ------------------------------------------------


def test_one_period_gives_the_pooled_difference_with_the_unbiased_variance() -> None:
    xc, nc, xs, ns = 880.0, 1000.0, 1800.0, 2000.0
    interval = stats.stratified_difference([[xc, nc, xs, ns]]).interval(0.05)
    pc, ps = xc / nc, xs / ns
    se = math.sqrt(pc * (1 - pc) / (nc - 1) + ps * (1 - ps) / (ns - 1))
    assert interval.estimate == pytest.approx(pc - ps)
    half = stats.cs_multiplier(nc + ns, 0.1) * se
    assert interval.upper - interval.estimate == pytest.approx(half, rel=1e-12)


def test_mantel_haenszel_weights_by_hand() -> None:
    rows = [[90, 100, 80, 100], [40, 50, 400, 500]]
    # w = n_c n_s / N: 50 and 50 * 500 / 550; differences 0.10 and 0.0
    w1, w2 = 50.0, 50 * 500 / 550
    expected = (w1 * 0.10 + w2 * 0.0) / (w1 + w2)
    assert stats.stratified_difference(rows).interval(0.05).estimate == pytest.approx(expected)
    assert stats.stratified_difference(rows, higher_is_better=False).interval(0.05).estimate == (
        pytest.approx(-expected)
    )


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 0.99), st.integers(1, 500), st.integers(1, 500)),
                min_size=1, max_size=30))  # fmt: skip
def test_equal_rates_in_every_period_are_no_difference_whatever_the_weights(
    periods: list[tuple[float, int, int]],
) -> None:
    rows = [[p * nc, nc, p * ns, ns] for p, nc, ns in periods]
    interval = stats.stratified_difference(rows).interval(0.05)
    assert interval.estimate == pytest.approx(0.0, abs=1e-9)
    assert interval.lower <= 0.0 <= interval.upper


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2000), st.integers(1, 2000), st.floats(0.001, 0.2))
def test_bernoulli_bounds_hold_the_estimate_and_widen_with_confidence(
    x: int, n: int, alpha: float
) -> None:
    x = min(x, n)
    low, high = stats.bernoulli_bounds(x, n, alpha)
    assert 0.0 <= low <= x / n <= high <= 1.0
    wider = stats.bernoulli_bounds(x, n, alpha / 2)
    assert wider[0] <= low + 1e-12
    assert wider[1] >= high - 1e-12


def test_bernoulli_bounds_cover_a_rare_rate_at_every_look() -> None:
    """Time-uniform coverage at a rare rate, where the normal approximation fails: 2,000
    sequences of 5,000 draws at p = 0.002, looked at every 100 draws."""
    rng = np.random.default_rng(7)
    p, alpha, runs = 0.002, 0.05, 2000
    draws = rng.random((runs, 5000)) < p
    counts = draws.cumsum(axis=1)[:, 99::100]
    missed = 0
    for run in range(runs):
        for look, x in enumerate(counts[run]):
            low, high = stats.bernoulli_bounds(float(x), 100.0 * (look + 1), alpha)
            if not low <= p <= high:
                missed += 1
                break
    assert missed / runs <= alpha, missed / runs


def _drifting_aa(rng: np.random.Generator, runs: int, slope: float, per_minute: int) -> float:
    """False rollback rate at margin 0 for identical arms whose base accuracy moves by `slope`
    over a 40-minute rollout while the canary's weight ramps 2 -> 5 -> 20 -> 50%."""
    weights = np.repeat([0.02, 0.05, 0.20, 0.50], 10)
    base = 0.90 + slope * np.linspace(0, 1, weights.size)
    total = rng.poisson(per_minute, size=(runs, weights.size))
    n_c = rng.binomial(total, weights)
    n_s = total - n_c
    x_c, x_s = rng.binomial(n_c, base), rng.binomial(n_s, base)
    failed = 0
    for run in range(runs):
        for look in range(weights.size):
            rows = np.stack([x_c[run, : look + 1], n_c[run, : look + 1],
                             x_s[run, : look + 1], n_s[run, : look + 1]], axis=1)  # fmt: skip
            arms = (rows[:, 0].sum(), rows[:, 1].sum()), (rows[:, 2].sum(), rows[:, 3].sum())
            if stats.too_few_events(*arms) or min(arms[0][1], arms[1][1]) < 200:
                continue
            if stats.stratified_difference(rows).interval(0.05).upper < 0:
                failed += 1
                break
    return failed / runs


@pytest.mark.parametrize("slope", [-0.04, 0.04])
def test_a_drift_shared_by_both_arms_does_not_roll_back_identical_canaries(slope: float) -> None:
    """Seeded: 1,000 A/A rollouts at 1,200 requests a minute with the base rate drifting four
    points; pooling per arm rolled back nearly all of them (issue 10). The tolerance is three
    standard errors above alpha."""
    rate = _drifting_aa(np.random.default_rng(10), 1000, slope, 1200)
    assert rate <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 1000), rate


# --- planned looks: alpha spending over the plan (issue 10) ------------------------------------


def test_the_planned_boundary_spends_what_it_says_at_unequal_information() -> None:
    """Monte Carlo over 400,000 Brownian paths seen at ten looks with unequal information
    (a ramp), spending 4% linearly: the chance of any crossing is 4%."""
    informations = np.array([1, 2, 4, 8, 16, 30, 50, 80, 120, 160.0])
    fractions = np.linspace(0.1, 1.0, 10)
    bounds: list[float] = []
    for k in range(10):
        spend = 0.04 * (fractions[k] - (fractions[k - 1] if k else 0.0))
        bounds.append(stats.planned_boundary(list(informations[:k]), bounds, informations[k],
                                             spend, spent=0.04 * fractions[k]))  # fmt: skip
    assert bounds[0] == pytest.approx(sp.norm.isf(0.004))
    rng = np.random.default_rng(3)
    steps = np.sqrt(np.diff(np.concatenate([[0.0], informations])))
    z = np.cumsum(rng.normal(size=(400_000, 10)) * steps, axis=1) / np.sqrt(informations)
    crossed = float((z >= np.array(bounds)).any(axis=1).mean())
    assert crossed == pytest.approx(0.04, abs=0.002)
    # spending nothing, or no new information, sets no boundary
    assert stats.planned_boundary([1.0], [3.0], 2.0, 0.0, spent=0.01) == math.inf
    assert stats.planned_boundary([2.0], [3.0], 2.0, 0.01, spent=0.02) == math.inf


def _planned(gains: list[float], alpha: float = 0.04) -> tuple[list[float], list[float], float]:
    """Boundaries along a sequence of information gains (each a share of the information so
    far; the first look at information 1), as the compare judge records looks: a look counts only
    when it adds stats.MIN_GAIN, and spends alpha by (planned time)^2 over evenly spaced times."""
    informations, boundaries, last, spent = [], [], 0.0, 0.0
    information = 1.0
    times = np.linspace(1 / (len(gains) + 1), 1.0, len(gains) + 1)
    for k, gain in enumerate([0.0, *gains]):
        information *= 1 + gain
        previous = informations[-1] if informations else 0.0
        if not stats.counts_as_look(previous, information):
            continue
        spend = alpha * (times[k] ** 2 - last**2)
        spent = alpha * times[k] ** 2
        boundaries.append(stats.planned_boundary(informations, boundaries, information, spend,
                                                 spent=spent))  # fmt: skip
        informations.append(information)
        last = times[k]
    return informations, boundaries, spent


def test_a_look_that_gained_nothing_but_rounding_does_not_collapse_the_plan() -> None:
    """Issue 20: a period without labels made the information grow by 1e-12; that look was
    recorded, the recursion lost all its mass, and every later boundary was 0 (an interval of
    zero width, a point estimate deciding). Now it is no look, and every later boundary keeps
    above the least any valid boundary can be."""
    first = stats.planned_boundary([], [], 100.0, 0.001, spent=0.001)
    second = stats.planned_boundary([100.0], [first], 200.0, 0.002, spent=0.003)
    tiny = stats.planned_boundary([100.0, 200.0], [first, second], 200.0 * (1 + 1e-12), 0.001,
                                  spent=0.004)  # fmt: skip
    assert tiny == math.inf  # not a look
    after = stats.planned_boundary([100.0, 200.0], [first, second], 300.0, 0.001, spent=0.004)
    assert stats.floor_boundary(0.004) <= after < stats.MAX_BOUNDARY
    # a look recorded by an older operator with such a gain no longer empties the recursion
    old = stats.planned_boundary([100.0, 200.0, 200.0 * (1 + 1e-12)], [first, second, 2.7],
                                 300.0, 0.001, spent=0.005)  # fmt: skip
    assert old >= stats.floor_boundary(0.005) > 2.0


tiny_gains = st.sampled_from([0.0, 1e-12, 1e-6, 1e-3])
real_gains = st.one_of(st.floats(0.005, 0.05), st.floats(0.05, 2.0), st.floats(2.0, 200.0))
gains = st.lists(
    st.one_of(tiny_gains, real_gains),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(gains)
def test_planned_boundaries_never_collapse_and_spend_what_they_say(steps: list[float]) -> None:
    """Over any sequence of gains (zeros, rounding, tiny and huge jumps): every boundary is
    finite, at or above the floor the alpha spent so far allows, and the recursion's mass left
    without a crossing is 1 minus the alpha spent, to 1e-4."""
    informations, boundaries, spent = _planned(steps)
    for boundary in boundaries:
        assert math.isfinite(boundary)
        assert boundary <= stats.MAX_BOUNDARY
        assert boundary >= stats.floor_boundary(0.04) - 1e-9
    _, mass = stats._continuation(tuple(zip(informations, boundaries, strict=True)))
    assert 1.0 - float(mass.sum()) == pytest.approx(spent, abs=1e-4)


@pytest.mark.parametrize("steps", [
    [1e-12, 1e-3, 0.005, 0.5, 0.02, 1e-12, 0.3, 1.0, 0.0, 0.1],
    [50.0, 0.0, 0.01, 0.01, 100.0, 1e-6, 0.2],
])  # fmt: skip
def test_the_alpha_spent_over_uneven_gains_matches_monte_carlo(steps: list[float]) -> None:
    """The chance that a Brownian score crosses some boundary, over 400,000 paths seen at the
    looks that counted, is the alpha the plan says it spent, within three standard errors."""
    informations, boundaries, spent = _planned(steps)
    rng = np.random.default_rng(20)
    info = np.array(informations)
    increments = np.sqrt(np.diff(np.concatenate([[0.0], info])))
    z = np.cumsum(rng.normal(size=(400_000, info.size)) * increments, axis=1) / np.sqrt(info)
    crossed = float((z >= np.array(boundaries)).any(axis=1).mean())
    assert crossed == pytest.approx(spent, abs=3 * math.sqrt(spent * (1 - spent) / 400_000))
