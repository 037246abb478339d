"""A/B/n through the real machine: K candidates against a champion at once, against K canaries
one after the other with today's engine, and against a point-estimate winner rule.

Every A/B/n rollout is driven by `modelrollout.testing.driver.SimulatedAbn`: `machine.advance`
runs the phase (domain/experiment.py: shares, eliminations at period boundaries, the verdict of
domain/abn.py), and the real compare judge judges each candidate against the champion on counts
kept per period as the operator's adapter keeps them. The sequential baseline runs the same
candidates as canaries one after another (driver.Simulated, today's engine with the steps of
bench/decisions.py: setWeight 2, 5, 20, 50% each with analyze 10m, margin 1 point), each against
the champion of the moment, on the same truths and traffic, so a later canary sees a later
stretch of the day. The point-estimate rule (Iter8's) takes, at the end of the phase's duration
on the A/B/n streams, the arm with the best observed rate.

The A/B/n rollout: accuracy compare (the objective; margin 1 point for elimination, alpha 5%),
strategy.abn duration 2h, margin 0 (a winner must be better at all), alpha 5%; interval 1m;
ticks every 30 s; requests Poisson at the row's rate split by the route's shares, outcomes
Bernoulli from the truth, labels at once. Truths: all arms at the champion's 0.90, or one
candidate 2 points better and the last 3 points worse (the others equal). Traffic: stationary;
the base rate drifting 4 points down over 40 minutes (all arms alike); a daily swing (+-3 points
and +-60% of traffic over a compressed 30-minute day).

Printed per row: wrong winner (a candidate named that is not better than the champion), right
winner (the better one named), a worse arm named, pauses for a human, the median minutes to a
decision, requests served by the worst arm until the decision (median), and the same for the
sequential baseline and the point-estimate rule's wrong winners.

`.venv/bin/python bench/abn.py --runs 200` (the default); `--quick` runs 50.
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from modelrollout.api.v1alpha1 import CompareSignal, ModelRolloutSpec, SignalResult
from modelrollout.domain import stats
from modelrollout.domain.experiment import ArmSeen
from modelrollout.domain.kinds import compare
from modelrollout.domain.kinds.compare import judge_compare_rate
from modelrollout.domain.machine import plans
from modelrollout.testing.driver import Simulated, SimulatedAbn, candidates, stamp
from modelrollout.testing.manifests import abn_rollout

TICK = 30.0
PER_TICK = 60.0 / TICK
BASE = 0.90
DURATION_MINUTES = 120
HORIZON = int(DURATION_MINUTES * PER_TICK) + 10
SEQUENTIAL_HORIZON = 200  # ticks per canary: its 40 planned minutes, the gate's budget and more


@dataclass(frozen=True)
class Row:
    k: int
    shape: str
    truth: str
    per_minute: float = 1200.0

    def differences(self) -> list[float]:
        """Each candidate's true advantage over the champion."""
        if self.truth == "equal":
            return [0.0] * self.k
        return [0.02] + [0.0] * (self.k - 2) + [-0.03]

    def rate(self, minute: float) -> float:
        if self.shape == "drift down 4pt":
            return BASE - 0.04 * min(minute, 40.0) / 40.0
        if self.shape == "daily swing":
            return BASE + 0.03 * math.sin(2 * math.pi * minute / 30.0)
        return BASE

    def traffic(self, minute: float) -> float:
        swing = 0.6 * math.sin(2 * math.pi * minute / 30.0) if self.shape == "daily swing" else 0
        return self.per_minute / PER_TICK * (1.0 + swing)


START_SHARE: int | None = None  # --start-share; None: the API's default


def abn_spec() -> ModelRolloutSpec:
    raw = abn_rollout()["spec"]
    raw["challengers"] = [{"version": f"v{n}"} for n in range(3, 7)]  # cut to K below
    phase: dict[str, object] = {"duration": f"{DURATION_MINUTES}m"}
    if START_SHARE is not None:
        phase["startShare"] = START_SHARE
    raw["strategy"] = {"abn": phase,
                       "steps": [{"setWeight": 50}, {"analyze": {"duration": "10m"}}]}  # fmt: skip
    raw["analysis"]["interval"] = "1m"
    return ModelRolloutSpec.model_validate(raw)


def canary_spec() -> ModelRolloutSpec:
    raw = abn_rollout()["spec"]
    raw.pop("challengers")
    analyze = {"analyze": {"duration": "10m"}}
    raw["strategy"] = {"steps": [s for w in (2, 5, 20, 50) for s in ({"setWeight": w}, analyze)]}
    raw["analysis"]["interval"] = "1m"
    return ModelRolloutSpec.model_validate(raw)


def objective_signal(spec: ModelRolloutSpec) -> CompareSignal:
    assert spec.analysis is not None
    signal = spec.analysis.signals[0].compare
    assert signal is not None
    return signal


class Counts:
    """Per arm (0: the champion), per period of 60 s: requests and successes."""

    def __init__(self, arms: int) -> None:
        self.n: list[list[float]] = [[] for _ in range(arms)]
        self.x: list[list[float]] = [[] for _ in range(arms)]

    def add(self, arm: int, period: int, n: float, x: float) -> None:
        while len(self.n[arm]) <= period:
            self.n[arm].append(0.0)
            self.x[arm].append(0.0)
        self.n[arm][period] += n
        self.x[arm][period] += x

    def strata(self, arm: int, control: int = 0) -> list[tuple[float, float, float, float]]:
        periods = max(len(self.n[arm]), len(self.n[control]))
        rows = []
        for p in range(periods):
            n_a = self.n[arm][p] if p < len(self.n[arm]) else 0.0
            n_c = self.n[control][p] if p < len(self.n[control]) else 0.0
            if n_a or n_c:
                rows.append((self.x[arm][p] if n_a else 0.0, n_a,
                             self.x[control][p] if n_c else 0.0, n_c))  # fmt: skip
        return rows


def advantage(
    signal: CompareSignal, strata: list[tuple[float, float, float, float]]
) -> stats.Estimate | None:
    """The objective's estimate as the operator takes it (compare.advantage)."""
    return compare.advantage(signal, compare.Rates(strata))


def run_abn(row: Row, rng: np.random.Generator) -> dict[str, float]:
    spec = abn_spec()
    spec = spec.model_copy(update={"challengers": spec.challengers[: row.k - 1]})
    refs = candidates(row.k)
    versions = ["v1", *(c.version for c in refs)]
    truth = [0.0, *row.differences()]
    counts = Counts(len(versions))
    served = np.zeros(len(versions))
    signal = objective_signal(spec)
    sim = SimulatedAbn(spec, refs, TICK)

    def serve(tick: int, shares: dict[str, int]) -> None:
        minute = (tick - 1) / PER_TICK
        period = int(minute)
        total = row.traffic(minute)
        base = row.rate(minute)
        for i, v in enumerate(versions):
            n = float(rng.poisson(total * shares.get(v, 0) / 100))
            x = float(rng.binomial(int(n), min(1.0, max(0.0, base + truth[i])))) if n else 0.0
            counts.add(i, period, n, x)
            served[i] += n

    def judge(tick: int) -> dict[str, ArmSeen]:
        at = stamp(tick, TICK)
        seen = {}
        for i, v in enumerate(versions[1:], start=1):
            strata = counts.strata(i)
            judged = judge_compare_rate("accuracy", signal, strata, at)
            seen[v] = ArmSeen(True, [judged], advantage(signal, strata))
        return seen

    decision = sim.run(HORIZON, serve, judge)
    worst = int(np.argmin(truth[1:])) + 1
    best_truth = max(truth[1:])
    named = versions.index(decision.winner) if decision.winner else None
    # the point-estimate rule on the same streams, at the end of the duration or the decision
    rates = [sum(counts.x[i]) / max(1.0, sum(counts.n[i])) for i in range(len(versions))]
    pick = int(np.argmax(rates))
    return {
        "wrong": float(named is not None and truth[named] <= 0),
        "right": float(named is not None and truth[named] == best_truth and best_truth > 0),
        "worse_named": float(named is not None and truth[named] < 0),
        "paused": float(decision.outcome in ("NoWinner", "Undecided")),
        "minutes": decision.tick / PER_TICK,
        "worst_served": float(served[worst]),
        "point_wrong": float(pick != 0 and truth[pick] <= 0),
    }


def run_sequential(row: Row, rng: np.random.Generator) -> dict[str, float]:
    """The candidates as canaries one after another, each against the champion of the moment."""
    spec = canary_spec()
    signal = objective_signal(spec)
    truth = row.differences()
    champion_truth, elapsed, worst_served = 0.0, 0, 0.0
    worst = int(np.argmin(truth))
    for i, difference in enumerate(truth):
        sim = Simulated(spec, TICK)
        offset = elapsed
        counts = Counts(2)

        def serve(
            tick: int,
            weight: int,
            *,
            counts: Counts = counts,
            offset: int = offset,
            difference: float = difference,
            champion: float = champion_truth,
        ) -> float:
            minute = (offset + tick - 1) / PER_TICK
            period = int((tick - 1) / PER_TICK)
            total, base = row.traffic(minute), row.rate(minute)
            n_c = float(rng.poisson(total * weight / 100))
            n_s = float(rng.poisson(total * (100 - weight) / 100))
            counts.add(1, period, n_c, float(rng.binomial(int(n_c), base + difference)))
            counts.add(0, period, n_s, float(rng.binomial(int(n_s), base + champion)))
            return n_c

        def judge(tick: int, sim: Simulated = sim, counts: Counts = counts) -> list[SignalResult]:
            plan = plans(spec, sim.status, sim.now(tick)).get("accuracy")
            return [judge_compare_rate("accuracy", signal, counts.strata(1), stamp(tick, TICK),
                                       plan=plan)]  # fmt: skip

        decision = sim.run(SEQUENTIAL_HORIZON, serve, judge)
        canary_served = decision.exposure
        elapsed += decision.tick
        if i == worst:
            worst_served += canary_served
        if decision.outcome == "Promoted":
            champion_truth = difference
    return {"minutes": elapsed / PER_TICK, "worst_served": worst_served}


def rollouts(args: tuple[Row, int, int, int | None],
             ) -> tuple[list[dict[str, float]], list[dict[str, float]]]:  # fmt: skip
    row, runs, seed, start_share = args
    global START_SHARE  # noqa: PLW0603  (a worker process's setting, from the command line)
    START_SHARE = start_share
    rng = np.random.default_rng(seed)
    ours = [run_abn(row, rng) for _ in range(runs)]
    sequential = [run_sequential(row, rng) for _ in range(max(10, runs // 4))]
    return ours, sequential


ROWS = [Row(k, shape, truth) for k in (2, 3, 5)
        for shape in ("stationary", "drift down 4pt", "daily swing")
        for truth in ("equal", "one +2pt, last -3pt")]  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--start-share", type=int, default=None, help="strategy.abn.startShare (default: the API's)"
    )
    args = parser.parse_args()
    runs = 50 if args.quick else args.runs
    started = time.monotonic()
    jobs = [(row, runs, 1000 + i, args.start_share) for i, row in enumerate(ROWS)]
    phase = abn_spec().strategy.abn
    share = args.start_share or (phase.start_share if phase is not None else None)
    print(
        f"A/B/n against sequential canaries and a point-estimate rule: {runs} rollouts a row "
        f"(sequential: {max(10, runs // 4)}), 1,200 labelled requests a minute, ticks 30 s, "
        f"startShare {share}"
    )
    print(
        "| K | traffic | truth | wrong winner | right winner | worse named | paused | "
        "minutes p50 | worst arm served p50 | sequential minutes p50 | sequential worst "
        "served p50 | point-estimate wrong |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        for row, (ours, sequential) in zip(ROWS, pool.map(rollouts, jobs), strict=True):

            def mean(key: str, of: list[dict[str, float]] = ours) -> float:
                return 100 * float(np.mean([r[key] for r in of]))

            def median(key: str, of: list[dict[str, float]] = ours) -> float:
                return float(np.median([r[key] for r in of]))

            right = f"{mean('right'):.1f}%" if row.truth != "equal" else "n/a"
            print(f"| {row.k} | {row.shape} | {row.truth} | {mean('wrong'):.1f}% | {right} | "
                  f"{mean('worse_named'):.1f}% | {mean('paused'):.1f}% | "
                  f"{median('minutes'):.0f} | {median('worst_served'):,.0f} | "
                  f"{median('minutes', sequential):.0f} | "
                  f"{median('worst_served', sequential):,.0f} | {mean('point_wrong'):.1f}% |",
                  flush=True)  # fmt: skip
    print(f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
