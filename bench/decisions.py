"""How good are the decisions? Simulated rollouts with known truths, through the real policy.

Every rollout is driven by `modelrollout.testing.driver`: `machine.advance` decides (steps, the
promotion gate, inconclusiveLimit, consecutive errors: the API's defaults), the real judges of
`domain/signals.py` judge, and the counts are kept per period as the operator's adapter keeps
them. Nothing of the policy is restated here: change a default in the API and these figures move.

The rollout: steps setWeight 2, analyze 10m, setWeight 5, analyze 10m, setWeight 20, analyze 10m,
setWeight 50, analyze 10m; interval 1m; signals: accuracy compare (margin 1 point unless the
scenario says, alpha 5%), input drift (Jensen-Shannon on the amount histogram, max 0.1) and
approval parity (fairness, margin 0.05). The simulation ticks every 30 s (10 s or 60 s where the
scenario says); each tick's requests are Poisson, split by the weight the route has, with
Bernoulli outcomes from the scenario's truth; labels arrive at once, late, or in batches (an ETL
job that publishes every few minutes what came in since the last).

Per scenario: rollback, promote and pause rates (pause: a human is asked at the gate), the
canary's requests served until the decision (exposure; a bad canary promoted counts all it
served until then), and for regressions the median exposure of a Wald SPRT that knows the true
effect and the arms' variances at every moment and judges the same labels of both arms as they
arrive, like with like per 30 s tick: the limit no rule on these data can beat. `--quick` runs
100 rollouts per scenario.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from modelrollout.api.v1alpha1 import ModelRolloutSpec, SignalResult
from modelrollout.domain import signals
from modelrollout.domain.kinds.compare import judge_compare_rate
from modelrollout.domain.kinds.drift import judge_drift
from modelrollout.domain.kinds.fairness import judge_fairness
from modelrollout.domain.machine import plans
from modelrollout.domain.signals import Histogram, Segments
from modelrollout.testing.driver import Decision, Simulated, stamp
from modelrollout.testing.manifests import rollout

TICK = 30.0  # the operator's tick, unless a scenario says otherwise
EDGES = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)
SEGMENTS = ("a", "b")
SPRT_ALPHA, SPRT_BETA = 0.05, 0.05


@dataclass(frozen=True)
class Scenario:
    """A truth: the stable's rate at minute t, the canary's difference, the traffic."""

    name: str
    difference: float = 0.0  # canary minus stable, in the KPI's units (negative: worse)
    per_minute: float = 2000.0
    base: float = 0.90
    drift: float = 0.0  # the base rate moves by this much over 40 minutes, both arms alike
    swing: float = 0.0  # daily swing of the base rate (amplitude), and of traffic (x 1 +- 0.6)
    late_minutes: int = 0  # labels arrive this late
    batch_minutes: int = 0  # labels are published in batches this often (an ETL job), else at once
    tick: float = TICK  # seconds between the operator's ticks
    errors: bool = False  # the KPI is an error rate (lower is better), not an accuracy
    margin: float = 0.01
    amount_shift: float = 0.0  # input drift of the canary (log-mean of amounts)
    unfair: bool = False

    @property
    def bad(self) -> bool:
        """Beyond the margin, or drifted or unfair: must not be promoted by itself."""
        worse = -self.difference if not self.errors else self.difference
        return worse > self.margin or self.amount_shift > 0 or self.unfair

    @property
    def per_tick(self) -> float:
        """Ticks per minute."""
        return 60.0 / self.tick

    def stable_rate(self, minute: np.ndarray) -> np.ndarray:
        rate = self.base + self.drift * np.minimum(minute, 40.0) / 40.0
        if self.swing:
            rate = rate + self.swing * np.sin(2 * np.pi * minute / 30.0)
        result: np.ndarray = np.clip(rate, 0.0, 1.0)
        return result

    def traffic(self, minute: np.ndarray) -> np.ndarray:
        swing = 0.6 * np.sin(2 * np.pi * minute / 30.0) if self.swing else np.zeros_like(minute)
        result: np.ndarray = self.per_minute / self.per_tick * (1.0 + swing)
        return result


A = Scenario
SCENARIOS = [
    A("A/A stationary"),
    A("A/A 1,200/min", per_minute=1200),
    A("A/A 300/min", per_minute=300),
    A("A/A drift down 4pt", per_minute=1200, drift=-0.04),
    A("A/A drift up 4pt", per_minute=1200, drift=0.04),
    A("A/A daily swing", per_minute=1200, swing=0.03),
    A("A/A labels 5 min late", late_minutes=5),
    A("A/A rare errors 0.1%", errors=True, base=0.001, margin=0.002),
    A("A/A margin 0", margin=0.0),
    A("better +1pt", difference=0.01),
    A("regress 0.5pt", difference=-0.005),
    A("regress 1pt", difference=-0.01),
    A("regress 2pt", difference=-0.02),
    A("regress 5pt", difference=-0.05),
    A("regress 2pt 1,200/min", difference=-0.02, per_minute=1200),
    A("regress 2pt 300/min", difference=-0.02, per_minute=300),
    A("regress 2pt drift down", difference=-0.02, per_minute=1200, drift=-0.04),
    A("regress 2pt drift up", difference=-0.02, per_minute=1200, drift=0.04),
    A("regress 2pt daily swing", difference=-0.02, per_minute=1200, swing=0.03),
    A("regress 2pt late labels", difference=-0.02, late_minutes=5),
    A("regress 2pt margin 0.5", difference=-0.02, margin=0.005),
    A("rare errors 0.1->0.5%", difference=0.004, errors=True, base=0.001, margin=0.002),
    A("input drift", amount_shift=0.5),
    A("unfair", unfair=True),
]
# Issue 20: labels published in batches, and slower or faster ticks; each shape with an identical
# canary and canaries 1.25 and 2 points worse at margin 1 point.
SHAPES = [("labels every 1 min", {"batch_minutes": 1}),
          ("labels every 3 min, 10-s ticks", {"batch_minutes": 3, "tick": 10.0}),
          ("labels every 5 min, 60-s ticks", {"batch_minutes": 5, "tick": 60.0}),
          ("labels every 5 min", {"batch_minutes": 5}),
          ("10-s ticks", {"tick": 10.0}),
          ("60-s ticks", {"tick": 60.0})]  # fmt: skip
TRUTHS = (("A/A", 0.0), ("regress 1.25pt", -0.0125), ("regress 2pt", -0.02))
SCENARIOS += [A(f"{truth} {shape}", difference=d, per_minute=1200, **options)  # type: ignore[arg-type]
              for shape, options in SHAPES for truth, d in TRUTHS]  # fmt: skip


def make_spec(s: Scenario) -> ModelRolloutSpec:
    raw = rollout()["spec"]
    analyze = {"analyze": {"duration": "10m"}}
    raw["strategy"]["steps"] = [s for w in (2, 5, 20, 50) for s in ({"setWeight": w}, analyze)]
    raw["analysis"] = {
        "interval": "1m",
        "prometheus": {"address": "http://prometheus:9090"},
        "signals": [
            {"name": "kpi", "compare": {"successes": "s", "total": "t", "margin": s.margin,
                                        "higherIsBetter": not s.errors}},
            {"name": "amount-drift", "drift": {"histogram": "h_bucket", "max": 0.1}},
            {"name": "parity", "fairness": {"selected": "s", "total": "t", "margin": 0.05}},
        ],
    }  # fmt: skip
    return ModelRolloutSpec.model_validate(raw)


def bucket_probabilities(log_mean: float) -> np.ndarray:
    cdf = sp.norm.cdf((np.log(np.array(EDGES)) - log_mean) / 1.0)
    result: np.ndarray = np.diff(np.concatenate(([0.0], cdf, [1.0])))
    return result


def schedule(spec: ModelRolloutSpec, horizon: int, tick_seconds: float) -> np.ndarray:
    """The canary's weight at each tick until the gate, from the machine itself: a rollout whose
    signals never decide goes through every step and waits at the gate."""
    sim = Simulated(spec, tick_seconds)
    weights: list[int] = []

    def served(_tick: int, weight: int) -> float:
        weights.append(weight)
        return 0.0

    def undecided(tick: int) -> list[SignalResult]:
        return [SignalResult(name=s.name, kind=s.kind, verdict="Inconclusive",
                             at=stamp(tick, tick_seconds)) for s in spec.analysis.signals]  # type: ignore[union-attr]  # fmt: skip

    sim.run(horizon, served, undecided)
    return np.array(weights + [weights[-1]] * (horizon - len(weights)))


@dataclass
class Streams:
    """Per run and tick (runs x ticks [x buckets or segments]): what each arm counted."""

    n_c: np.ndarray  # canary requests served
    x_c: np.ndarray  # canary labelled outcomes (successes or errors), as they arrive
    l_c: np.ndarray  # canary labels arrived
    n_s: np.ndarray
    x_s: np.ndarray
    l_s: np.ndarray
    h_c: np.ndarray
    h_s: np.ndarray
    sel_c: np.ndarray
    seg_c: np.ndarray
    sel_s: np.ndarray
    seg_s: np.ndarray
    p_c: np.ndarray  # the true rates at each tick (for the oracle)
    p_s: np.ndarray


def simulate(s: Scenario, weights: np.ndarray, runs: int, rng: np.random.Generator) -> Streams:
    ticks = weights.size
    minute = np.arange(ticks) / s.per_tick
    total = rng.poisson(np.broadcast_to(s.traffic(minute), (runs, ticks)))
    n_c = rng.binomial(total, weights / 100.0)
    n_s = total - n_c
    p_s = s.stable_rate(minute)
    p_c = np.clip(p_s + s.difference, 0.0, 1.0)
    x_c, x_s = rng.binomial(n_c, p_c), rng.binomial(n_s, p_s)
    lag = round(s.late_minutes * s.per_tick)
    batch = round(s.batch_minutes * s.per_tick)

    def arrive(counts: np.ndarray) -> np.ndarray:
        if lag:
            counts = np.concatenate([np.zeros((runs, lag), dtype=counts.dtype), counts[:, :-lag]],
                                    axis=1)  # fmt: skip
        if batch > 1:  # what came in since the last batch is published at once, every `batch`
            total = np.cumsum(counts, axis=1)
            published = np.zeros_like(total)
            edges = np.arange(batch - 1, ticks, batch)
            published[:, edges] = total[:, edges]
            published = np.maximum.accumulate(published, axis=1)
            counts = np.diff(published, axis=1, prepend=0)
        return counts

    h_c = rng.multinomial(n_c, bucket_probabilities(4.0 + s.amount_shift))
    h_s = rng.multinomial(n_s, bucket_probabilities(4.0))
    seg_c, seg_s = rng.multinomial(n_c, [0.5, 0.5]), rng.multinomial(n_s, [0.5, 0.5])
    sel_c = rng.binomial(seg_c, np.array([0.3, 0.5] if s.unfair else [0.4, 0.4]))
    sel_s = rng.binomial(seg_s, np.array([0.4, 0.4]))
    return Streams(n_c, arrive(x_c), arrive(n_c), n_s, arrive(x_s), arrive(n_s), h_c, h_s,
                   sel_c, seg_c, sel_s, seg_s, p_c, p_s)  # fmt: skip


def per_period(values: np.ndarray, upto: int, periods: np.ndarray) -> np.ndarray:
    """Ticks 1..upto (columns 0..upto-1) summed per period."""
    count = int(periods[upto - 1]) + 1
    out = np.zeros((count, *values.shape[1:]))
    np.add.at(out, periods[:upto], values[:upto])
    return out


def drive(spec: ModelRolloutSpec, st: Streams, run: int, horizon: int,
          tick_seconds: float) -> Decision:  # fmt: skip
    sim = Simulated(spec, tick_seconds)
    periods = np.array([sim.period(t) for t in range(1, horizon + 1)])
    compare = spec.analysis.signals[0].compare  # type: ignore[union-attr]
    drift = spec.analysis.signals[1].drift  # type: ignore[union-attr]
    fairness = spec.analysis.signals[2].fairness  # type: ignore[union-attr]
    assert compare is not None
    assert drift is not None
    assert fairness is not None
    rate_rows = np.stack([st.x_c[run], st.l_c[run], st.x_s[run], st.l_s[run]], axis=1)

    def served(tick: int, weight: int) -> float:
        return float(st.n_c[run, tick - 1])

    def judge(tick: int) -> list[SignalResult]:
        at = stamp(tick, tick_seconds)
        rows = per_period(rate_rows, tick, periods)
        plan = plans(spec, sim.status, sim.now(tick)).get("kpi")
        kpi = judge_compare_rate("kpi", compare, [tuple(r) for r in rows], at, plan=plan)
        hc, hs = per_period(st.h_c[run], tick, periods), per_period(st.h_s[run], tick, periods)
        amount = judge_drift("amount-drift", drift, histograms(hs), histograms(hc), at)
        sc, gc = per_period(st.sel_c[run], tick, periods), per_period(st.seg_c[run], tick, periods)
        ss, gs = per_period(st.sel_s[run], tick, periods), per_period(st.seg_s[run], tick, periods)

        def seg(sel: np.ndarray, tot: np.ndarray) -> list[Segments]:
            return [Segments(dict(zip(SEGMENTS, a, strict=True)),
                             dict(zip(SEGMENTS, b, strict=True)))
                    for a, b in zip(sel, tot, strict=True)]  # fmt: skip

        parity = judge_fairness("parity", fairness, seg(sc, gc), seg(ss, gs), at)
        # model servers export their counters from the start: the series exist
        return [signals.gathering(r, series_exist=True) for r in (kpi, amount, parity)]

    return sim.run(horizon, served, judge)


def histograms(periods: np.ndarray) -> list[Histogram]:
    return [Histogram(EDGES, tuple(h)) for h in periods]


def oracle(s: Scenario, st: Streams) -> np.ndarray:
    """Canary requests served until a Wald SPRT that knows the true effect crosses into rollback.

    It judges the same labels as they arrive, both arms, like with like per tick: each tick's
    difference D_k of the arms' rates is N(delta, v_k) with v_k from the true rates; H0: the
    canary exactly at the margin (delta0 = -margin), H1: the true difference; it rolls back when
    the log-likelihood ratio reaches ln((1 - beta) / alpha). NaN where it never does."""
    sign = -1.0 if s.errors else 1.0  # the advantage: positive is better
    lag = round(s.late_minutes * s.per_tick)
    p_c, p_s = st.p_c, st.p_s
    if lag:  # the labels arriving at a tick are of requests `lag` ticks before
        p_c = np.concatenate([np.full(lag, p_c[0]), p_c[:-lag]])
        p_s = np.concatenate([np.full(lag, p_s[0]), p_s[:-lag]])
    delta1 = sign * (p_c - p_s)
    delta0 = -s.margin
    seen = (st.l_c > 0) & (st.l_s > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        d = sign * (st.x_c / st.l_c - st.x_s / st.l_s)
        v = p_c * (1 - p_c) / st.l_c + p_s * (1 - p_s) / st.l_s
        step = ((d - delta0) ** 2 - (d - delta1) ** 2) / (2 * v)
    llr = np.cumsum(np.where(seen & (v > 0), step, 0.0), axis=1)
    crossed = llr >= math.log((1 - SPRT_BETA) / SPRT_ALPHA)
    first = np.where(crossed.any(axis=1), crossed.argmax(axis=1), -1)
    served = np.cumsum(st.n_c, axis=1)
    return np.where(first >= 0, served[np.arange(first.size), first], np.nan)


@dataclass
class Row:
    scenario: Scenario
    rollback: float
    promote: float
    pause: float
    undecided: float
    exposure_p50: float
    exposure_p95: float
    minutes_p50: float
    oracle_p50: float
    seconds: float
    gate_p50: float = math.nan  # minutes at the gate, of the rollouts that reached it
    runs: int = 0


def measure(s: Scenario, runs: int, seed: int) -> Row:
    started = time.monotonic()
    spec = make_spec(s)
    horizon = round(120 * s.per_tick)
    weights = schedule(spec, horizon, s.tick)
    st = simulate(s, weights, runs, np.random.default_rng(seed))
    outcomes = [drive(spec, st, run, horizon, s.tick) for run in range(runs)]
    kind = np.array([o.outcome for o in outcomes])
    ticks = np.array([o.tick for o in outcomes])
    gated = [o.tick - o.gate_tick for o in outcomes if o.gate_tick is not None]
    exposure = np.array([o.exposure for o in outcomes])
    oracle_exposure = oracle(s, st) if s.bad and not (s.amount_shift or s.unfair) else None
    return Row(
        s, float(np.mean(kind == "RolledBack")), float(np.mean(kind == "Promoted")),
        float(np.mean(kind == "Paused")), float(np.mean(kind == "Undecided")),
        float(np.median(exposure)) if s.bad else math.nan,
        float(np.quantile(exposure, 0.95)) if s.bad else math.nan,
        float(np.median(ticks)) / s.per_tick,
        float(np.nanmedian(oracle_exposure)) if oracle_exposure is not None else math.nan,
        time.monotonic() - started,
        float(np.median(gated)) / s.per_tick if gated else math.nan, runs,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--quick", action="store_true", help="100 rollouts per scenario")
    parser.add_argument("--only", default="", help="scenarios whose name contains this")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    runs = 100 if args.quick else args.runs
    chosen = [s for s in SCENARIOS if args.only in s.name]
    started = time.monotonic()
    print(f"{runs} rollouts per scenario through machine.advance; steps 2/5/20/50% x 10 min, "
          f"interval 1m, ticks of {TICK:.0f} s unless the scenario says, seed {args.seed}; "
          "gate: median minutes at the promotion gate")  # fmt: skip
    header = (
        f"{'scenario':<46} {'margin':>6} {'rollback':>8} {'promote':>8} {'pause':>6} "
        f"{'exposure p50':>12} {'p95':>7} {'minutes':>7} {'gate':>5} {'SPRT p50':>8} {'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    seeds = [args.seed + i for i in range(len(chosen))]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        rows = list(pool.map(measure, chosen, [runs] * len(chosen), seeds))
    for row in rows:
        s = row.scenario
        ratio = row.exposure_p50 / row.oracle_p50 if row.oracle_p50 > 0 else math.nan
        gate = "-" if math.isnan(row.gate_p50) else f"{row.gate_p50:.1f}"
        cells = [
            f"{s.name:<46} {s.margin * 100:>5.1f}p",
            f"{row.rollback:>8.1%} {row.promote:>8.1%} {row.pause:>6.1%}",
            f"{_n(row.exposure_p50):>12} {_n(row.exposure_p95):>7} {row.minutes_p50:>7.1f}",
            f"{gate:>5} {_n(row.oracle_p50):>8} {_r(ratio):>6}",
        ]
        print(" ".join(cells) + (f"  undecided {row.undecided:.1%}" if row.undecided else ""))
    print(f"({time.monotonic() - started:.1f} s)")


def _n(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:,.0f}"


def _r(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


if __name__ == "__main__":
    main()
