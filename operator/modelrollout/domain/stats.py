"""The statistics behind compare, drift, fairness and sample-ratio verdicts: counts in, numbers out.

Pure functions on numpy arrays. Bucket counts are per bucket (not cumulative), in the order of
their upper edges, the last one being +Inf. See docs/analysis.md for the formulas and the reasons
for each choice.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from modelrollout.domain.lazy import Lazy

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import ArrayLike, NDArray
    from scipy import optimize, special
    from scipy import stats as sp

    Floats = NDArray[np.float64]
else:  # imported on first use (domain/lazy.py)
    np = Lazy("numpy")
    optimize, special, sp = (Lazy(f"scipy.{name}") for name in ("optimize", "special", "stats"))

# The sample size (both arms) at which the confidence sequence is tightest. Rollouts judge
# thousands to tens of thousands of labelled outcomes; docs/analysis.md shows why 10,000.
TUNING_SAMPLES = 10000.0
PSI_FLOOR = 1e-4
MIN_EXPECTED = 5.0


def _counts(values: ArrayLike) -> Floats:
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError("bucket counts must be a non-empty list")
    if not np.all(np.isfinite(array)) or np.any(array < 0):
        raise ValueError("bucket counts must be finite and not negative")
    return array


def _shares(values: ArrayLike) -> Floats:
    counts = _counts(values)
    total = counts.sum()
    if total <= 0:
        raise ValueError("no observations")
    shares: Floats = counts / total
    return shares


# --- always-valid comparison ------------------------------------------------------------------


def cs_multiplier(n: float, alpha: float, tuning: float = TUNING_SAMPLES) -> float:
    """Half-width of the asymptotic confidence sequence in standard errors, after n observations.

    Waudby-Smith et al. (2023), Theorem 2.2: with rho^2 = (-2 ln a + ln(-2 ln a + 1)) / N*,
    half-width = sigma * sqrt(2 (n rho^2 + 1) / (n^2 rho^2) * ln(sqrt(n rho^2 + 1) / a)), and
    sigma = sqrt(n) * SE. The bound holds at every n at once, so looking every interval is safe.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be strictly between 0 and 0.5, got {alpha / 2:g}")
    if n <= 0:
        return math.inf
    log_a = -2.0 * math.log(alpha)
    rho2 = (log_a + math.log(log_a + 1.0)) / tuning
    nr = n * rho2
    return math.sqrt(2.0 * (nr + 1.0) / nr * math.log(math.sqrt(nr + 1.0) / alpha))


@dataclass(frozen=True)
class Interval:
    """An estimate of the canary's advantage (positive: canary better) and its one-sided bounds,
    each valid at level alpha uniformly over time."""

    estimate: float
    lower: float
    upper: float


@dataclass(frozen=True)
class Estimate:
    """An estimate (the canary's advantage), its standard error, and the observations behind it,
    from which bounds are drawn."""

    value: float
    se: float
    n: float

    def within(self, multiplier: float) -> Interval:
        half = multiplier * self.se
        return Interval(self.value, self.value - half, self.value + half)

    def interval(self, alpha: float) -> Interval:
        """Each bound one-sided at level alpha, uniformly over time (the sequence at 2 alpha)."""
        return self.within(cs_multiplier(self.n, 2 * alpha))

    def flipped(self) -> Estimate:
        return Estimate(-self.value, self.se, self.n)


def always_valid_p(estimate: Estimate, bound: float) -> float:
    """A p-value for "the advantage is at most `bound`", valid at any stopping time: the least
    alpha whose one-sided confidence sequence (as `Estimate.interval`) has its lower bound above
    `bound`. As the sequence holds at every n at once, so does the p-value, and so does its
    running minimum over looks (P(some look has p <= a) <= a under the null): A/B/n keeps that
    minimum per challenger and runs Holm on it (docs/analysis.md, "A/B/n"). 1.0 when even
    alpha 0.5 does not put the bound below the estimate."""
    if estimate.se <= 0 or estimate.n <= 0 or not math.isfinite(estimate.value):
        return 1.0
    z = (estimate.value - bound) / estimate.se
    if z <= 0 or cs_multiplier(estimate.n, 2 * AV_P_CEILING) >= z:
        return 1.0
    low, high = math.log(AV_P_FLOOR), math.log(AV_P_CEILING)
    if cs_multiplier(estimate.n, 2 * AV_P_FLOOR) < z:
        return AV_P_FLOOR
    for _ in range(60):  # the multiplier falls as alpha grows: bisect on log alpha
        middle = (low + high) / 2
        if cs_multiplier(estimate.n, 2 * math.exp(middle)) < z:
            high = middle
        else:
            low = middle
    return math.exp(high)


AV_P_FLOOR = 1e-12
AV_P_CEILING = 0.4999


def holm(p_values: dict[str, float], alpha: float) -> set[str]:
    """Holm's step-down: the hypotheses rejected at family-wise level alpha, whatever the
    dependence between the p-values (Holm 1979). Sorted ascending, the i-th (from 0) of m is
    rejected when it and every one before it is at most alpha / (m - i)."""
    ordered = sorted(p_values.items(), key=lambda item: (item[1], item[0]))
    rejected: set[str] = set()
    for i, (name, p) in enumerate(ordered):
        if p > alpha / (len(ordered) - i):
            break
        rejected.add(name)
    return rejected


def too_few_events(*arms: tuple[float, float]) -> bool:
    """True when some arm has fewer than 5 successes or 5 failures: no normal approximation."""
    return any(min(x, n - x) < MIN_EXPECTED for x, n in arms)


# --- comparing like with like: periods of time as strata ----------------------------------------
#
# Each arm's counts come per period (a minute, say). A drift shared by both arms, or a change of
# weight, moves both arms' rates within a period alike, so a contrast taken within each period and
# then pooled cancels it, where pooling each arm over the whole canary first does not (Simpson).


def _rows(values: ArrayLike, columns: int | None = None) -> Floats:
    """Counts per period (one row each; a single row may be given flat), validated."""
    table = np.atleast_2d(np.asarray(values, dtype=np.float64))
    wrong_width = columns is not None and table.shape[1] != columns
    if table.ndim != 2 or table.size == 0 or wrong_width:
        width = f"{columns} " if columns is not None else ""
        raise ValueError(f"counts must be a non-empty list of {width}counts per period")
    if not np.all(np.isfinite(table)) or np.any(table < 0):
        raise ValueError("counts per period must be finite and not negative")
    return table


def _mh_weights(n_c: Floats, n_s: Floats) -> Floats:
    """Mantel-Haenszel weights n_c n_s / (n_c + n_s): 0 for a period one arm did not see."""
    total = n_c + n_s
    weights: Floats = np.where((n_c > 0) & (n_s > 0), n_c * n_s / np.maximum(total, 1.0), 0.0)
    return weights


def _rate_variance(x: Floats, n: Floats, pooled: float) -> Floats:
    """Var(p-hat) per period, unbiased: p(1-p)/(n-1); a period with one observation borrows the
    arm's pooled rate (it has no spread of its own)."""
    p = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
    own = np.divide(p * (1 - p), n - 1, out=np.zeros_like(x), where=n > 1)
    borrowed = np.divide(pooled * (1 - pooled), n, out=np.zeros_like(x), where=n > 0)
    variance: Floats = np.where(n > 1, own, borrowed)
    return variance


def stratified_difference(strata: ArrayLike, *, higher_is_better: bool = True) -> Estimate:
    """Canary minus stable, compared within each period: rows of (successes_canary,
    total_canary, successes_stable, total_stable), one per period.

    The Mantel-Haenszel risk difference sum_k w_k (p_ck - p_sk) / sum_k w_k, w_k = n_ck n_sk /
    N_k: the difference of the arms' stratified rates, with the design variance (the sum of
    theirs, unbiased per period), at n = every observation in a period both arms saw."""
    table = _rows(strata, 4)
    if np.any(table[:, 0] > table[:, 1]) or np.any(table[:, 2] > table[:, 3]):
        raise ValueError("successes cannot exceed the total")
    canary, stable, n = _stratified(table)
    estimate = Estimate(
        canary.value - stable.value, math.sqrt(canary.variance + stable.variance), n
    )
    return estimate if higher_is_better else estimate.flipped()


def bernoulli_bounds(successes: float, total: float, alpha: float) -> tuple[float, float]:
    """Always-valid bounds for a Bernoulli mean that hold at any count, however small.

    Robbins' beta-binomial mixture: M_n(p) = B(x + 1/2, n - x + 1/2) / B(1/2, 1/2) /
    (p^x (1-p)^(n-x)) is a nonnegative martingale with mean 1 under p, so by Ville's inequality
    {p : M_n(p) < 1/alpha} covers the true p at every n at once with probability >= 1 - alpha."""
    if not 0 < alpha < 1:
        raise ValueError("alpha must be strictly between 0 and 1")
    if total <= 0:
        return 0.0, 1.0
    x, n = successes, total
    mixture = special.betaln(x + 0.5, n - x + 0.5) - special.betaln(0.5, 0.5)
    cut = math.log(1 / alpha)

    def excess(p: float) -> float:
        return float(mixture - special.xlogy(x, p) - special.xlog1py(n - x, -p) - cut)

    mle, tiny = x / n, 1e-15
    lower = 0.0 if x <= 0 or excess(tiny) <= 0 else optimize.brentq(excess, tiny, mle)
    upper = 1.0 if x >= n or excess(1 - tiny) <= 0 else optimize.brentq(excess, mle, 1 - tiny)
    return float(lower), float(upper)


def exact_difference(
    canary: tuple[float, float],
    stable: tuple[float, float],
    alpha: float,
    *,
    higher_is_better: bool = True,
) -> Interval:
    """Canary minus stable from each arm's always-valid Bernoulli bounds at alpha / 2, for when
    events are too few for the normal approximation (a perfect canary, a rare error)."""
    (xc, nc), (xs, ns) = canary, stable
    if nc <= 0 or ns <= 0:
        raise ValueError("both arms need observations")
    lc, uc = bernoulli_bounds(xc, nc, alpha / 2)
    ls, us = bernoulli_bounds(xs, ns, alpha / 2)
    d = xc / nc - xs / ns
    if higher_is_better:
        return Interval(d, lc - us, uc - ls)
    return Interval(-d, ls - uc, us - lc)


def stratified_mann_whitney(canary: list[ArrayLike], stable: list[ArrayLike]) -> Estimate:
    """The Mann-Whitney effect P(canary > stable) + P(tie)/2 - 1/2 within each period, pooled
    with Mantel-Haenszel weights (van Elteren's idea)."""
    tests, n_c, n_s = [], [], []
    for c, r in zip(canary, stable, strict=True):
        cc, rr = _counts(c), _counts(r)
        if cc.sum() > 0 and rr.sum() > 0:
            tests.append(mann_whitney(rr, cc))
            n_c.append(cc.sum())
            n_s.append(rr.sum())
    if not tests:
        raise ValueError("no period has observations in both arms")
    w = _mh_weights(np.array(n_c), np.array(n_s))
    theta = float(np.sum(w * np.array([t.effect for t in tests])) / w.sum())
    variance = float(np.sum(w**2 * np.array([t.se_effect**2 for t in tests]))) / w.sum() ** 2
    return Estimate(theta, math.sqrt(variance), float(sum(n_c) + sum(n_s)))


@dataclass(frozen=True)
class Rate:
    """A rate and the variance of its estimate."""

    value: float
    variance: float


def stratified_rates(strata: ArrayLike) -> tuple[Rate, Rate]:
    """Each arm's rate over the periods both arms saw, with the same Mantel-Haenszel weights for
    both, so that a drift shared by the arms moves both alike (fairness per segment)."""
    canary, stable, _ = _stratified(_rows(strata, 4))
    return canary, stable


def _stratified(table: Floats) -> tuple[Rate, Rate, float]:
    """Both arms' rates with common Mantel-Haenszel weights per period, and how many
    observations are in the periods both arms saw."""
    xc, nc, xs, ns = table.T
    w = _mh_weights(nc, ns)
    total_w = float(w.sum())
    if total_w <= 0:
        raise ValueError("no period has observations in both arms")
    seen = w > 0
    arms = []
    for x, n in ((xc, nc), (xs, ns)):
        p = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
        variance = _rate_variance(x, n, float(x[seen].sum() / n[seen].sum()))
        arms.append(Rate(float(np.sum(w * p) / total_w),
                         float(np.sum(w**2 * variance)) / total_w**2))  # fmt: skip
    return arms[0], arms[1], float(nc[seen].sum() + ns[seen].sum())


@dataclass(frozen=True)
class MannWhitney:
    u: float
    effect: float  # P(canary > reference) + P(tie) / 2 - 1/2, in [-1/2, 1/2]
    se_effect: float
    z: float
    p_value: float  # two-sided, normal approximation with the tie correction


def mann_whitney(reference: ArrayLike, canary: ArrayLike) -> MannWhitney:
    """Tie-corrected Mann-Whitney U from per-bucket counts: values in one bucket are ties.

    U = sum_b c_b (R_<b + r_b / 2);
    Var = N M / 12 [(N + M + 1) - sum_b (t_b^3 - t_b) / ((N + M)(N + M - 1))]."""
    r, c = _counts(reference), _counts(canary)
    if r.shape != c.shape:
        raise ValueError("both arms need the same buckets")
    n_ref, n_can = r.sum(), c.sum()
    if n_ref <= 0 or n_can <= 0:
        raise ValueError("both arms need observations")
    below = np.concatenate(([0.0], np.cumsum(r)[:-1]))
    u = float(np.sum(c * (below + r / 2)))
    total = n_ref + n_can
    ties = float(np.sum((r + c) ** 3 - (r + c)))
    var = n_ref * n_can / 12 * ((total + 1) - ties / (total * (total - 1)))
    mean = n_ref * n_can / 2
    if var <= 0:
        return MannWhitney(u, 0.0, 0.0, 0.0, 1.0)
    z = (u - mean) / math.sqrt(var)
    p = float(2 * sp.norm.sf(abs(z)))
    return MannWhitney(u, u / (n_ref * n_can) - 0.5, math.sqrt(var) / (n_ref * n_can), float(z), p)


# --- drift ------------------------------------------------------------------------------------


def jensen_shannon(reference: ArrayLike, canary: ArrayLike) -> float:
    """Jensen-Shannon distance, base 2, in [0, 1]."""
    return float(distances("jensenShannon", _shares(reference), _shares(canary)))


def psi(reference: ArrayLike, canary: ArrayLike) -> float:
    """Population stability index, sum (q - p) ln(q / p), empty buckets floored at 1e-4."""
    return float(distances("psi", _shares(reference), _shares(canary)))


def hellinger(reference: ArrayLike, canary: ArrayLike) -> float:
    """Hellinger distance, sqrt(1 - sum sqrt(p q)), in [0, 1]."""
    return float(distances("hellinger", _shares(reference), _shares(canary)))


@dataclass(frozen=True)
class Test:
    statistic: float
    p_value: float


def ks(reference: ArrayLike, canary: ArrayLike) -> Test:
    """Two-sample Kolmogorov-Smirnov at the bucket edges: D is a lower bound of the true D.

    p from the Kolmogorov distribution with n = N M / (N + M), as scipy's asymptotic method."""
    r, c = _counts(reference), _counts(canary)
    d = float(distances("ks", _shares(r), _shares(c)))
    n = r.sum() * c.sum() / (r.sum() + c.sum())
    return Test(d, float(np.clip(sp.kstwo.sf(d, max(1, round(n))), 0.0, 1.0)))


def chi_square(reference: ArrayLike, canary: ArrayLike) -> Test:
    """Chi-square test of the 2 x k table; cells with an expected count below 5 are pooled into
    one. The statistic returned is Cramér's V (sqrt(chi2 / N), in [0, 1]), an effect size that
    does not grow with traffic; the p-value is the test's."""
    r, c = _counts(reference), _counts(canary)
    table = np.vstack([r, c])
    total = table.sum()
    if r.sum() <= 0 or c.sum() <= 0:
        raise ValueError("both arms need observations")
    expected_min = table.sum(axis=1).min() * table.sum(axis=0) / total
    sparse = expected_min < MIN_EXPECTED
    if sparse.any():
        pooled = table[:, sparse].sum(axis=1, keepdims=True)
        table = np.hstack([table[:, ~sparse], pooled])
        table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return Test(0.0, 1.0)
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / total
    chi2 = float(np.sum((table - expected) ** 2 / expected))
    p = float(sp.chi2.sf(chi2, table.shape[1] - 1))
    return Test(math.sqrt(chi2 / total), p)


def wasserstein(reference: ArrayLike, canary: ArrayLike, edges: ArrayLike) -> float:
    """Wasserstein-1 between the arms with values at the bucket edges, divided by the
    reference's standard deviation (so 0.1 means a tenth of the usual spread).

    `edges` are the finite upper edges; the last count is the +Inf bucket, placed at the last
    finite edge."""
    r, c = _counts(reference), _counts(canary)
    if r.shape != c.shape:
        raise ValueError(WASSERSTEIN_SHAPE)
    return float(distances("wasserstein", _shares(r), _shares(c), edges))


# --- drift judged with confidence ---------------------------------------------------------------
#
# A distance between two samples of one distribution is above zero, by more at small samples, so a
# point estimate against `max` fails identical arms at low traffic. The distance is bias-corrected
# and bounded by a parametric bootstrap of the counts (each period's counts redrawn from its own
# shares), with the confidence sequence's multiplier on the bootstrap standard error, so looking
# every interval is covered as for compare. Verdicts: Fail when the lower bound is above `max`,
# Pass when the upper bound is below it, Inconclusive in between.

DRIFT_RESAMPLES = 200
WASSERSTEIN_SHAPE = "need one count per finite edge plus the +Inf bucket"


def _mixture(periods: Floats, weights: Floats) -> Floats:
    """Shares pooled over periods with the given weights; `periods` is (resamples x) periods x
    buckets."""
    totals = periods.sum(axis=-1, keepdims=True)
    shares = np.divide(periods, totals, out=np.zeros_like(periods), where=totals > 0)
    pooled: Floats = np.tensordot(shares, weights, axes=([-2], [0])) / weights.sum()
    return pooled


def _floats(values: object) -> Floats:
    return np.asarray(values, dtype=np.float64)


def distances(statistic: str, p: Floats, q: Floats, edges: ArrayLike = ()) -> Floats:
    """The drift statistic between shares p (reference) and q (canary), along the last axis."""
    if statistic == "jensenShannon":
        m = (p + q) / 2

        def kl(a: Floats) -> Floats:
            ratio = np.divide(a, m, out=np.ones_like(a), where=(a > 0) & (m > 0))
            return _floats(np.sum(np.where(a > 0, a * np.log2(ratio), 0.0), axis=-1))

        return _floats(np.sqrt(np.maximum(0.0, 0.5 * kl(p) + 0.5 * kl(q))))
    if statistic == "psi":
        pf, qf = np.maximum(p, PSI_FLOOR), np.maximum(q, PSI_FLOOR)
        return _floats(np.sum((qf - pf) * np.log(qf / pf), axis=-1))
    if statistic == "hellinger":
        return _floats(np.sqrt(np.maximum(0.0, 1.0 - np.sum(np.sqrt(p * q), axis=-1))))
    if statistic == "ks":
        return _floats(np.max(np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1)), axis=-1))
    if statistic == "chiSquare":  # Cramér's V of two equal-sized samples with these shares
        m = (p + q) / 2
        terms = np.divide((p - q) ** 2, m, out=np.zeros_like(p), where=m > 0)
        return _floats(np.sqrt(np.sum(terms, axis=-1) / 4))
    if statistic == "wasserstein":
        x = np.asarray(edges, dtype=np.float64)
        if x.size != p.shape[-1] - 1:
            raise ValueError(WASSERSTEIN_SHAPE)
        gaps = np.diff(x)
        gap = np.abs(np.cumsum(p, axis=-1) - np.cumsum(q, axis=-1))[..., :-2]
        points = np.append(x, x[-1])
        mean = np.sum(p * points, axis=-1, keepdims=True)
        spread = np.sqrt(np.sum(p * (points - mean) ** 2, axis=-1))
        distance = np.sum(gap * gaps, axis=-1)
        return _floats(np.divide(distance, spread, out=np.where(distance > 0, np.inf, 0.0),
                                 where=spread > 0))  # fmt: skip
    raise ValueError(f"unknown drift statistic {statistic}")


def drift_interval(
    statistic: str,
    reference: ArrayLike,
    canary: ArrayLike,
    alpha: float,
    *,
    edges: ArrayLike = (),
    resamples: int = DRIFT_RESAMPLES,
) -> Interval:
    """The distance between reference and canary, bias-corrected, with always-valid bounds.

    `reference` and `canary` are counts per period and bucket (periods x buckets). With more than
    one period, both arms are pooled with the same Mantel-Haenszel weights per period (a traffic
    mix that moves during the day moves both alike); with one, as they are. The random draws are
    seeded by the counts, so the same counts always give the same verdict."""
    ref, can = _rows(reference), _rows(canary)
    if ref.shape != can.shape:
        ref, can = ref.sum(axis=0, keepdims=True), can.sum(axis=0, keepdims=True)
    n_r, n_c = ref.sum(axis=1), can.sum(axis=1)
    weights = _mh_weights(n_c, n_r) if ref.shape[0] > 1 else np.ones(1)
    if weights.sum() <= 0:
        raise ValueError("no period has observations in both arms")
    estimate = float(distances(statistic, _mixture(ref, weights), _mixture(can, weights), edges))
    seed = np.frombuffer(np.concatenate([ref.ravel(), can.ravel()]).tobytes(), dtype=np.uint32)
    rng = np.random.default_rng(seed)

    def redraw(counts: Floats) -> Floats:
        totals = counts.sum(axis=1)
        shares = np.divide(counts, totals[:, None], out=np.zeros_like(counts),
                           where=totals[:, None] > 0)  # fmt: skip
        drawn: Floats = rng.multinomial(
            totals.astype(np.int64), shares, size=(resamples, len(totals))
        ).astype(np.float64)
        return drawn

    boot = distances(statistic, _mixture(redraw(ref), weights), _mixture(redraw(can), weights),
                     edges)  # fmt: skip
    corrected = max(0.0, 2 * estimate - float(np.mean(boot)))
    n = float(n_r[weights > 0].sum() + n_c[weights > 0].sum())
    half = cs_multiplier(n, 2 * alpha) * float(np.std(boot))
    return Interval(corrected, max(0.0, corrected - half), corrected + half)


# --- fairness and traffic ---------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """A fairness gap over segments, with the standard error of its estimate."""

    value: float
    se: float
    lowest: str
    highest: str


def binomial_rates(selected: dict[str, float], total: dict[str, float]) -> dict[str, Rate]:
    """Per segment: selected / total, with its binomial variance (one period)."""
    rates = {g: selected.get(g, 0.0) / n for g, n in total.items() if n > 0}
    return {g: Rate(p, p * (1 - p) / total[g]) for g, p in rates.items()}


def gap_of(rates: dict[str, Rate]) -> Gap:
    """Max minus min of the segments' rates (demographic parity difference, or equal
    opportunity difference when the counts are of actual positives), with its standard error."""
    if len(rates) < 2:
        raise ValueError("need two segments with observations")
    low = min(rates, key=lambda g: rates[g].value)
    high = max(rates, key=lambda g: rates[g].value)
    se = math.sqrt(rates[low].variance + rates[high].variance)
    return Gap(rates[high].value - rates[low].value, se, low, high)


def ratio_of(rates: dict[str, Rate]) -> Gap:
    """Min over max of the segments' rates (disparate impact; below 0.8 fails the four-fifths
    rule), with a delta-method standard error."""
    gap = gap_of(rates)
    low, high = rates[gap.lowest], rates[gap.highest]
    if high.value <= 0:
        return Gap(1.0, 0.0, gap.lowest, gap.highest)
    ratio = low.value / high.value

    def rel_var(rate: Rate) -> float:
        return rate.variance / rate.value**2 if rate.value > 0 else 0.0

    return Gap(ratio, ratio * math.sqrt(rel_var(low) + rel_var(high)), gap.lowest, gap.highest)


# The sample-ratio check's mixture: a Beta prior on the canary's true share centred on the
# weight, as sure as this many requests (a standard deviation of 2.5 points at 50%), where the
# splits a broken router makes (a few points off) are found fastest.
SAMPLE_RATIO_PRIOR = 400.0


def sample_ratio(canary: float, stable: float, canary_share: float) -> Test:
    """Is the split the weight? An always-valid test, safe to look at after every request.

    Under the null each request goes to the canary with probability `canary_share`, so the
    beta-binomial mixture likelihood ratio M = B(x + a, n - x + b) / B(a, b) / (s^x (1-s)^(n-x)),
    a = c s and b = c (1 - s) with c = SAMPLE_RATIO_PRIOR, is a nonnegative martingale with mean
    1, and by Ville's inequality P(M ever reaches 1/alpha) <= alpha. The p-value returned is
    1 / M (at most 1), valid at every look at once; a repeated chi-square p-value on cumulative
    counts was not (a chance imbalance persists and is found again at every look). The counts
    must all have been routed at this one share. The statistic is the observed canary share."""
    total = canary + stable
    if total <= 0 or not 0 < canary_share < 1:
        raise ValueError("need traffic and a share strictly between 0 and 1")
    a, b = SAMPLE_RATIO_PRIOR * canary_share, SAMPLE_RATIO_PRIOR * (1 - canary_share)
    log_m = (
        float(special.betaln(canary + a, stable + b) - special.betaln(a, b))
        - canary * math.log(canary_share)
        - stable * math.log1p(-canary_share)
    )
    return Test(canary / total, math.exp(-log_m) if log_m > 0 else 1.0)


# --- planned looks: alpha spending over the schedule the spec states ------------------------------
#
# A canary's steps say how long it is planned to run, so the looks are not unbounded: part of
# alpha is spent over that plan with a group-sequential boundary (Lan and DeMets' spending
# function, here linear in the planned time), computed from the information actually seen at each
# look. The rest of alpha stays on the confidence sequence, which holds for any look beyond the
# plan. A verdict uses the tighter of the two; by the union bound its error stays within alpha.

GRID = 161  # points of the numerical integration over the continuation region
# A look counts for the planned boundary only when the information (1/SE^2) grew by at least this
# share since the last look that counted. Why: the recursion integrates over a grid of GRID
# points spanning about 10.5 standard deviations of the score, a spacing of 0.065 sqrt(I); the
# step's kernel has a standard deviation of sqrt(gain * I), which at a 1% gain is 1.5 spacings,
# where the trapezoid rule on a Gaussian is exact to 1e-15, and at a gain of 1e-3 is half a
# spacing, where it loses 2% of the mass, and at 1e-12 all of it (issue 20). Statistically, a
# look that adds less than 1% of what is known moves the z statistic by a correlation of 0.995
# with the last one: it can hardly decide what the last did not.
MIN_GAIN = 0.01
MAX_BOUNDARY = 8.0


def counts_as_look(previous: float, information: float) -> bool:
    """Whether a look at `information` counts after a last look at `previous` (0: none)."""
    return information > 0 and information >= previous * (1 + MIN_GAIN)


def floor_boundary(spent: float) -> float:
    """The least z boundary any valid look can have once `spent` alpha is spent in all: the look
    crosses only if some look crossed, so P(Z_k >= c_k) <= spent, and c_k >= isf(spent)."""
    return float(sp.norm.isf(min(max(spent, 1e-300), 0.5)))


def _grid(information: float, upper: float) -> tuple[Floats, Floats]:
    """Score values s (= z sqrt(I)) from far below to `upper`, with trapezoid weights."""
    low = -MAX_BOUNDARY * math.sqrt(information)
    s = np.linspace(low, upper, GRID)
    w = np.full(GRID, (upper - low) / (GRID - 1))
    w[0] = w[-1] = w[0] / 2
    return s, w


def _top(information: float, boundary: float) -> float:
    bounded = min(boundary, MAX_BOUNDARY) if math.isfinite(boundary) else MAX_BOUNDARY
    return bounded * math.sqrt(information)


@functools.lru_cache(maxsize=8192)
def _continuation(looks: tuple[tuple[float, float], ...]) -> tuple[Floats, Floats]:
    """Score grid and sub-density (times the trapezoid weights) after `looks` of (information,
    z boundary) without a crossing; cached by prefix, so each new look costs one step.

    Each step conserves mass: every column of the transition is scaled so that it carries
    exactly the probability of landing inside the new grid's range (the Gaussian's own
    integral), so a step narrower than the grid loses nothing to the quadrature."""
    information, boundary = looks[-1]
    top = _top(information, boundary)
    s, w = _grid(information, top)
    if len(looks) == 1:
        first = sp.norm.pdf(s, scale=math.sqrt(information)) * w
        inside = float(sp.norm.cdf(top / math.sqrt(information)))
        return s, first * (inside / first.sum())
    before, mass = _continuation(looks[:-1])
    sd = math.sqrt(information - looks[-2][0])
    kernel = sp.norm.pdf((s[:, None] - before[None, :]) / sd) / sd * w[:, None]
    carried = kernel.sum(axis=0)
    inside = sp.norm.cdf((top - before) / sd) - sp.norm.cdf((s[0] - before) / sd)
    lost = carried <= 1e-300  # narrower than the grid: to the nearest point
    scale = np.divide(inside, carried, out=np.zeros_like(carried), where=~lost)
    moved = kernel * scale[None, :]
    if lost.any():
        nearest = np.abs(s[:, None] - before[None, lost]).argmin(axis=0)
        moved[nearest, np.flatnonzero(lost)] = inside[lost]
    return s, moved @ mass


def planned_boundary(
    informations: list[float],
    boundaries: list[float],
    information: float,
    spend: float,
    *,
    spent: float,
) -> float:
    """The z boundary for the next look of a planned schedule.

    `informations` and `boundaries` are the earlier looks' (information 1/SE^2 and the z
    boundary used), `information` the new look's, `spend` the alpha to spend at it and `spent`
    all the alpha spent through it: the boundary c such
    that P(no earlier crossing, Z_k >= c) = spend for a Brownian score in information time under
    the null (the Armitage-McPherson-Rowe recursion on a grid). Infinite when nothing is spent or
    the information did not grow by MIN_GAIN (not a look). Never below floor_boundary(spent),
    which every valid boundary respects, nor above MAX_BOUNDARY."""
    if spend <= 0:
        return math.inf
    previous = informations[-1] if informations else 0.0
    if not counts_as_look(previous, information):
        return math.inf
    floor = floor_boundary(spent)
    if not informations:
        return max(floor, float(sp.norm.isf(min(spend, 0.5))))
    s, mass = _continuation(tuple(zip(informations, boundaries, strict=True)))
    sd = math.sqrt(information - previous)

    def crossing(c: float) -> float:
        return float(np.sum(mass * sp.norm.sf((c * math.sqrt(information) - s) / sd)))

    if crossing(MAX_BOUNDARY) >= spend:
        return MAX_BOUNDARY
    if crossing(floor) <= spend:
        return floor
    return float(optimize.brentq(lambda c: crossing(c) - spend, floor, MAX_BOUNDARY, xtol=1e-6))
