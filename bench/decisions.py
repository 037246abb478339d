"""How good are the decisions? Simulated rollouts with known truths, judged by four rules.

Every rollout has a stable model with accuracy 0.90 and a canary whose truth the scenario sets.
Traffic is `--rate` labelled requests a minute, split by the weight schedule (10% for 5 minutes,
25% for 5, 50% for 10), one look a minute. Per-request outcomes are Bernoulli draws from the truth;
their counts per interval are what Prometheus would hold. Every rule sees the same streams:

- engine: this project's judges (domain/signals.py, the real code): compare (accuracy,
  confidence sequence, margins 0, 0.005 and 0.01, alpha 0.05), drift
  (Jensen-Shannon on the amount histogram, max 0.1) and fairness (demographic parity against
  stable, margin 0.05), on counts since the canary started; rollback on a Fail; promotion only
  once compare is Pass, holding up to 4 more looks (inconclusiveLimit 3), else a pause for a
  human.
- threshold: the canary's accuracy over the last interval must stay >= 0.88 (Flagger, Argo
  Rollouts; failureLimit 0).
- mann-whitney-98: Kayenta's judge, the last interval's per-request outcomes of canary against
  stable, two-sided 98%, worse canary fails. On 0/1 outcomes the tie-corrected U statistic's z
  is the pooled two-proportion z times sqrt((N-1)/N), which is what is computed (checked against
  domain/stats.py at start).
- naive-z: a one-sided two-proportion z-test at 5% on the cumulative counts at every look.

The other rules also appear calibrated ("@matched"): their cut chosen on an independent A/A set so
that their false rollback rate is 1%, or the highest engine row's there if higher: detection
compared at the same or a lower false rollback rate for the engine. Calibrating needs
an oracle (this exact schedule and traffic, simulated); a last table shows what happens to those
cuts when the same rollouts are looked at every 10 s instead of every minute.

Prints per scenario and rule: rollback, promote and pause rates, exposure (canary requests served
by a bad canary until its rollback; a bad canary promoted counts its whole rollout), and minutes
to the decision. `--quick` runs 300 rollouts per scenario (well under a minute).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from modelrollout.api.v1alpha1 import CompareSignal, DriftSignal, FairnessSignal
from modelrollout.domain import signals, stats
from modelrollout.domain.signals import Histogram, Segments

WEIGHTS = [0.10] * 5 + [0.25] * 5 + [0.50] * 10
HOLD = 4  # looks the engine waits at the gate before pausing (inconclusiveLimit 3)
STABLE_ACCURACY = 0.90
THRESHOLD = 0.88
EDGES = (10, 25, 50, 100, 250, 500, 1000, 2500)
SEGMENTS = ("a", "b")

# The engine at three margins (the loss of accuracy tolerated): 0, the API's default, fails a
# canary as soon as it is worse at all, with confidence, but promotes by itself only a canary
# shown better (an equal one pauses at the gate for a human); 0.5 and 1 point promote more equal
# canaries without a human, and judge a regression of d against the margin m, so the evidence
# needed to roll it back grows like 1/(d - m)^2.
ENGINES = {
    "engine margin 0": 0.0,
    "engine margin 0.5pt": 0.005,
    "engine margin 1pt": 0.01,
}
MATCH_AT_LEAST = 0.01
DRIFT = DriftSignal.model_validate({"histogram": "h", "max": 0.1, "minSamples": 500})
FAIRNESS = FairnessSignal.model_validate({"selected": "s", "total": "t", "margin": 0.05})


@dataclass(frozen=True)
class Scenario:
    name: str
    accuracy: float = STABLE_ACCURACY
    amount_log_mean: float = 4.0
    selection: tuple[float, float] = (0.4, 0.4)
    rate: float = 1.0  # share of the nominal traffic

    @property
    def bad(self) -> bool:
        return self != Scenario(self.name, rate=self.rate)


SCENARIOS = [
    Scenario("A/A"),
    Scenario("regress 0.5pt", accuracy=0.895),
    Scenario("regress 1pt", accuracy=0.89),
    Scenario("regress 2pt", accuracy=0.88),
    Scenario("regress 5pt", accuracy=0.85),
    Scenario("input drift", amount_log_mean=4.5),
    Scenario("unfair", selection=(0.3, 0.5)),
    Scenario("low traffic 2pt", accuracy=0.88, rate=0.05),
]


def bucket_probabilities(log_mean: float) -> np.ndarray:
    cdf = sp.norm.cdf((np.log(np.array(EDGES, dtype=float)) - log_mean) / 1.0)
    return np.diff(np.concatenate(([0.0], cdf, [1.0])))


@dataclass
class Streams:
    """Per run and interval: requests and outcomes of each arm (canary c, stable s)."""

    n_c: np.ndarray
    n_s: np.ndarray
    x_c: np.ndarray
    x_s: np.ndarray
    h_c: np.ndarray  # runs x intervals x buckets
    h_s: np.ndarray
    sel_c: np.ndarray  # runs x intervals x segments: selected
    seg_c: np.ndarray  # runs x intervals x segments: requests
    sel_s: np.ndarray
    seg_s: np.ndarray
    scheduled: int  # looks until the last step ends


def simulate(s: Scenario, runs: int, rate: int, rng: np.random.Generator,
             per_minute: int = 1) -> Streams:  # fmt: skip
    """Streams for `runs` rollouts, looked at `per_minute` times a minute."""
    weights = np.repeat(np.array(WEIGHTS + [WEIGHTS[-1]] * HOLD), per_minute)
    total = rng.poisson(rate * s.rate / per_minute, size=(runs, weights.size))
    n_c = rng.binomial(total, weights)
    n_s = total - n_c
    x_c = rng.binomial(n_c, s.accuracy)
    x_s = rng.binomial(n_s, STABLE_ACCURACY)
    h_c = rng.multinomial(n_c, bucket_probabilities(s.amount_log_mean))
    h_s = rng.multinomial(n_s, bucket_probabilities(4.0))
    seg_c = rng.multinomial(n_c, [0.5, 0.5])
    seg_s = rng.multinomial(n_s, [0.5, 0.5])
    sel_c = rng.binomial(seg_c, np.array(s.selection))
    sel_s = rng.binomial(seg_s, np.array([0.4, 0.4]))
    return Streams(n_c, n_s, x_c, x_s, h_c, h_s, sel_c, seg_c, sel_s, seg_s,
                   len(WEIGHTS) * per_minute)  # fmt: skip


@dataclass
class Outcome:
    """Per run: the look (0-based) of the decision, and what it was."""

    look: np.ndarray
    kind: np.ndarray  # 0 promoted, 1 rolled back, 2 paused

    @classmethod
    def promoted_at_end(cls, runs: int, scheduled: int) -> Outcome:
        return cls(np.full(runs, scheduled - 1), np.zeros(runs, dtype=int))


# --- the rules ------------------------------------------------------------------------------------


def compare_signal(margin: float) -> CompareSignal:
    return CompareSignal.model_validate(
        {"successes": "s", "total": "t", "margin": margin, "alpha": 0.05, "minSamples": 200}
    )


def engine(st: Streams, margin: float) -> Outcome:
    runs, looks = st.n_c.shape
    out = Outcome(np.full(runs, looks - 1), np.full(runs, 2))
    cum = {k: np.cumsum(getattr(st, k), axis=1) for k in ("n_c", "n_s", "x_c", "x_s")}
    h_c, h_s = np.cumsum(st.h_c, axis=1), np.cumsum(st.h_s, axis=1)
    sel_c, seg_c = np.cumsum(st.sel_c, axis=1), np.cumsum(st.seg_c, axis=1)
    sel_s, seg_s = np.cumsum(st.sel_s, axis=1), np.cumsum(st.seg_s, axis=1)
    edges = tuple(float(e) for e in EDGES)
    compare = compare_signal(margin)
    for run in range(runs):
        for t in range(looks):
            canary = (float(cum["x_c"][run, t]), float(cum["n_c"][run, t]))
            stable = (float(cum["x_s"][run, t]), float(cum["n_s"][run, t]))
            verdicts = [
                signals.judge_compare_rate("acc", compare, canary, stable, "").verdict,
                signals.judge_drift(
                    "drift",
                    DRIFT,
                    Histogram(edges, tuple(h_s[run, t])),
                    Histogram(edges, tuple(h_c[run, t])),
                    "",
                ).verdict,
                signals.judge_fairness(
                    "parity",
                    FAIRNESS,
                    Segments(
                        dict(zip(SEGMENTS, sel_c[run, t], strict=True)),
                        dict(zip(SEGMENTS, seg_c[run, t], strict=True)),
                    ),
                    Segments(
                        dict(zip(SEGMENTS, sel_s[run, t], strict=True)),
                        dict(zip(SEGMENTS, seg_s[run, t], strict=True)),
                    ),
                    "",
                ).verdict,
            ]
            if "Fail" in verdicts:
                out.look[run], out.kind[run] = t, 1
                break
            if t >= st.scheduled - 1 and verdicts[0] == "Pass":
                out.look[run], out.kind[run] = t, 0
                break
    return out


def first(hit: np.ndarray, scheduled: int) -> Outcome:
    """Rollback at the first look where `hit` (runs x looks) is true, else promoted."""
    hit = hit[:, :scheduled]
    out = Outcome.promoted_at_end(hit.shape[0], scheduled)
    any_hit = hit.any(axis=1)
    out.look[any_hit] = hit[any_hit].argmax(axis=1)
    out.kind[any_hit] = 1
    return out


def interval_accuracy(st: Streams) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(st.n_c > 0, st.x_c / np.maximum(st.n_c, 1), np.nan)


def pooled_z(xc: np.ndarray, nc: np.ndarray, xs: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Canary minus stable in pooled standard errors (negative: canary worse)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        pooled = (xc + xs) / (nc + ns)
        se = np.sqrt(pooled * (1 - pooled) * (1 / nc + 1 / ns))
        z = (xc / nc - xs / ns) / se
    return np.where(np.isfinite(z), z, 0.0)


def mw_z(xc: np.ndarray, nc: np.ndarray, xs: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """Tie-corrected Mann-Whitney z on 0/1 outcomes: the pooled z-test with the N - 1 variance."""
    n = nc + ns
    z: np.ndarray = pooled_z(xc, nc, xs, ns) * np.sqrt(np.maximum(n - 1, 0) / np.maximum(n, 1))
    return z


def kayenta(st: Streams) -> np.ndarray:
    return mw_z(st.x_c, st.n_c, st.x_s, st.n_s)


def naive_z(st: Streams) -> np.ndarray:
    c = {k: np.cumsum(getattr(st, k), axis=1) for k in ("x_c", "n_c", "x_s", "n_s")}
    return pooled_z(c["x_c"], c["n_c"], c["x_s"], c["n_s"])


# A per-interval rule: a score per look (lower is worse) and the cut users configure.
SCORED: dict[str, tuple[Callable[[Streams], np.ndarray], float]] = {
    "threshold": (interval_accuracy, THRESHOLD),
    "mann-whitney-98": (kayenta, -float(sp.norm.isf(0.01))),
    "naive-z": (naive_z, -float(sp.norm.isf(0.05))),
}


def calibrate(score: np.ndarray, rate: float, scheduled: int) -> float:
    """The cut whose false rollback rate on this A/A set is `rate`."""
    lowest = np.nanmin(np.where(np.isnan(score), np.inf, score)[:, :scheduled], axis=1)
    return float(np.quantile(lowest, rate)) if rate > 0 else float(lowest.min()) - 1e-9


# --- reporting ------------------------------------------------------------------------------------


@dataclass
class Row:
    rule: str
    rollback: float
    promote: float
    pause: float
    exposure_median: float
    exposure_p95: float
    minutes: float
    cells: list[str] = field(default_factory=list)


def summarise(rule: str, out: Outcome, st: Streams, bad: bool) -> Row:
    exposed = np.cumsum(st.n_c, axis=1)
    total = exposed[:, st.scheduled - 1]
    at = exposed[np.arange(out.look.size), out.look]
    # a bad canary promoted serves everything from then on: count at least its whole rollout
    exposure = np.where(out.kind == 1, at, np.maximum(at, total))
    return Row(
        rule,
        float(np.mean(out.kind == 1)),
        float(np.mean(out.kind == 0)),
        float(np.mean(out.kind == 2)),
        float(np.median(exposure)) if bad else math.nan,
        float(np.quantile(exposure, 0.95)) if bad else math.nan,
        float(np.median(out.look + 1)) * len(WEIGHTS) / st.scheduled,
    )


def check_mann_whitney_equivalence() -> None:
    ref, can = [700.0, 300.0], [600.0, 250.0]  # (incorrect, correct) as ranked 0 < 1
    u = stats.mann_whitney(ref, can)
    z = mw_z(np.array([250.0]), np.array([850.0]), np.array([300.0]), np.array([1000.0]))
    assert abs(u.z - z[0]) < 1e-9, (u.z, z)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--rate", type=int, default=2000, help="labelled requests a minute")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="300 runs per scenario")
    args = parser.parse_args()
    runs = 300 if args.quick else args.runs
    check_mann_whitney_equivalence()
    started = time.monotonic()
    rng = np.random.default_rng(args.seed)

    # Calibration on its own A/A streams, never reused for the table.
    calib = simulate(SCENARIOS[0], runs, args.rate, rng)
    engine_frr = max(float(np.mean(engine(calib, m).kind == 1)) for m in ENGINES.values())
    target = max(engine_frr, MATCH_AT_LEAST)
    cuts = {
        name: calibrate(score(calib), target, calib.scheduled)
        for name, (score, _) in SCORED.items()
    }

    print(f"{runs} rollouts per scenario, {args.rate} labelled requests/min, "
          f"{len(WEIGHTS)} looks (weights 10%x5, 25%x5, 50%x10), seed {args.seed}")  # fmt: skip
    print(f"@matched: cut calibrated on independent A/A streams to a false rollback rate of "
          f"{target:.2%} (the engine's there: {engine_frr:.2%}); cuts: "
          + ", ".join(f"{k} {v:.4g}" for k, v in cuts.items()))  # fmt: skip
    print()
    header = (
        f"{'scenario':<16} {'rule':<24} {'rollback':>8} {'promote':>8} {'pause':>7} "
        f"{'exposure p50':>13} {'p95':>8} {'minutes':>8}"
    )
    print(header)
    print("-" * len(header))
    for scenario in SCENARIOS:
        st = simulate(scenario, runs, args.rate, rng)
        rows = [summarise(name, engine(st, m), st, scenario.bad) for name, m in ENGINES.items()]
        for name, (score, cut) in SCORED.items():
            values = score(st)
            rows.append(summarise(name, first(values < cut, st.scheduled), st, scenario.bad))
            matched = first(values < cuts[name], st.scheduled)
            rows.append(summarise(f"{name} @matched", matched, st, scenario.bad))
        for row in rows:
            exposure = (
                f"{row.exposure_median:>13.0f} {row.exposure_p95:>8.0f}"
                if scenario.bad else f"{'-':>13} {'-':>8}"
            )  # fmt: skip
            print(f"{scenario.name:<16} {row.rule:<24} {row.rollback:>8.1%} {row.promote:>8.1%} "
                  f"{row.pause:>7.1%} {exposure} {row.minutes:>8.0f}")  # fmt: skip
        print()
    finer_looks(runs, args.rate, cuts, rng)
    print(f"({time.monotonic() - started:.1f} s)")


def finer_looks(runs: int, rate: int, cuts: dict[str, float], rng: np.random.Generator) -> None:
    """The same A/A rollouts looked at every 10 s instead of every minute: the engine's false
    rollback rate does not depend on how often it looks; a cut calibrated for one schedule does."""
    print("A/A looked at every 10 s (6 looks a minute), cuts kept from the 1-minute calibration:")
    st = simulate(SCENARIOS[0], runs, rate, rng, per_minute=6)
    rates = {name: float(np.mean(engine(st, m).kind == 1)) for name, m in ENGINES.items()}
    for name, (score, cut) in SCORED.items():
        values = score(st)[:, : st.scheduled]
        rates[name] = float(np.mean((values < cut).any(axis=1)))
        rates[f"{name} @matched"] = float(np.mean((values < cuts[name]).any(axis=1)))
    for name, value in rates.items():
        print(f"  {name:<26} false rollback {value:>6.1%}")
    print()


if __name__ == "__main__":
    main()
