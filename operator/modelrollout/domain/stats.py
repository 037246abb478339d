"""The statistics behind compare, drift, fairness and sample-ratio verdicts: counts in, numbers out.

Pure functions on numpy arrays. Bucket counts are per bucket (not cumulative), in the order of
their upper edges, the last one being +Inf. See docs/analysis.md for the formulas and the reasons
for each choice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats as sp

Floats = NDArray[np.float64]

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


def proportion_difference(
    canary: tuple[float, float],
    stable: tuple[float, float],
    alpha: float,
    *,
    higher_is_better: bool = True,
    tuning: float = TUNING_SAMPLES,
) -> Interval:
    """Canary minus stable for (successes, total) per arm, as an always-valid interval.

    Each bound is one-sided at level alpha (the two-sided sequence at 2 alpha)."""
    (xc, nc), (xs, ns) = canary, stable
    if nc <= 0 or ns <= 0:
        raise ValueError("both arms need observations")
    pc, ps = xc / nc, xs / ns
    se = math.sqrt(pc * (1 - pc) / nc + ps * (1 - ps) / ns)
    d = pc - ps if higher_is_better else ps - pc
    half = cs_multiplier(nc + ns, 2 * alpha, tuning) * se
    return Interval(d, d - half, d + half)


def too_few_events(*arms: tuple[float, float]) -> bool:
    """True when some arm has fewer than 5 successes or 5 failures: no normal approximation."""
    return any(min(x, n - x) < MIN_EXPECTED for x, n in arms)


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
    p, q = _shares(reference), _shares(canary)
    m = (p + q) / 2

    def kl(a: Floats) -> float:
        present = a > 0
        return float(np.sum(a[present] * np.log2(a[present] / m[present])))

    return math.sqrt(max(0.0, 0.5 * kl(p) + 0.5 * kl(q)))


def psi(reference: ArrayLike, canary: ArrayLike) -> float:
    """Population stability index, sum (q - p) ln(q / p), empty buckets floored at 1e-4."""
    p = np.maximum(_shares(reference), PSI_FLOOR)
    q = np.maximum(_shares(canary), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def hellinger(reference: ArrayLike, canary: ArrayLike) -> float:
    """Hellinger distance, sqrt(1 - sum sqrt(p q)), in [0, 1]."""
    bc = float(np.sum(np.sqrt(_shares(reference) * _shares(canary))))
    return math.sqrt(max(0.0, 1.0 - bc))


@dataclass(frozen=True)
class Test:
    statistic: float
    p_value: float


def ks(reference: ArrayLike, canary: ArrayLike) -> Test:
    """Two-sample Kolmogorov-Smirnov at the bucket edges: D is a lower bound of the true D.

    p from the Kolmogorov distribution with n = N M / (N + M), as scipy's asymptotic method."""
    r, c = _counts(reference), _counts(canary)
    d = float(np.max(np.abs(np.cumsum(r) / r.sum() - np.cumsum(c) / c.sum())))
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
    x = np.asarray(edges, dtype=np.float64)
    if x.size != r.size - 1 or r.shape != c.shape:
        raise ValueError("need one count per finite edge plus the +Inf bucket")
    p, q = r / r.sum(), c / c.sum()
    gaps = np.diff(x)
    distance = float(np.sum(np.abs(np.cumsum(p)[:-2] - np.cumsum(q)[:-2]) * gaps))
    points = np.append(x, x[-1])
    mean = float(np.sum(p * points))
    spread = math.sqrt(float(np.sum(p * (points - mean) ** 2)))
    if spread <= 0:
        return 0.0 if distance == 0 else math.inf
    return distance / spread


# --- fairness and traffic ---------------------------------------------------------------------


@dataclass(frozen=True)
class Gap:
    """A fairness gap over segments, with the standard error of its estimate."""

    value: float
    se: float
    lowest: str
    highest: str


def parity_gap(selected: dict[str, float], total: dict[str, float]) -> Gap:
    """Max minus min of selected / total over segments (demographic parity difference, or equal
    opportunity difference when the counts are of actual positives)."""
    rates = {g: selected.get(g, 0.0) / n for g, n in total.items() if n > 0}
    if len(rates) < 2:
        raise ValueError("need two segments with observations")
    low, high = min(rates, key=rates.__getitem__), max(rates, key=rates.__getitem__)

    def var(g: str) -> float:
        return rates[g] * (1 - rates[g]) / total[g]

    return Gap(rates[high] - rates[low], math.sqrt(var(low) + var(high)), low, high)


def impact_ratio(selected: dict[str, float], total: dict[str, float]) -> Gap:
    """Min over max of selected / total (disparate impact; below 0.8 fails the four-fifths rule),
    with a delta-method standard error."""
    gap = parity_gap(selected, total)
    low = selected.get(gap.lowest, 0.0) / total[gap.lowest]
    high = selected.get(gap.highest, 0.0) / total[gap.highest]
    if high <= 0:
        return Gap(1.0, 0.0, gap.lowest, gap.highest)
    ratio = low / high

    def rel_var(rate: float, n: float) -> float:
        return (1 - rate) / (rate * n) if rate > 0 else 0.0

    se = ratio * math.sqrt(rel_var(low, total[gap.lowest]) + rel_var(high, total[gap.highest]))
    return Gap(ratio, se, gap.lowest, gap.highest)


def sample_ratio(canary: float, stable: float, canary_share: float) -> Test:
    """Chi-square goodness of fit of the observed split against the configured share.

    The statistic returned is the observed canary share."""
    total = canary + stable
    if total <= 0 or not 0 < canary_share < 1:
        raise ValueError("need traffic and a share strictly between 0 and 1")
    expected = np.array([canary_share, 1 - canary_share]) * total
    chi2 = float(np.sum((np.array([canary, stable]) - expected) ** 2 / expected))
    return Test(canary / total, float(sp.chi2.sf(chi2, 1)))
