"""The shadow step's evidence through the real judges (domain/kinds/paired.py, the compare judge,
the mirror check of domain/signals.py), on streams that are not stationary.

1. Labelled requests needed to roll back a candidate 2 points less accurate: paired (a shadow
   mirrored every request; the correctness test on discordant pairs) against unpaired (a canary
   at 50% and at 20% of the traffic; the compare judge on the two arms' rates per period), on the
   same streams. Both at margin 0.5 point, alpha 5%, looking every minute. The two models'
   mistakes are correlated as two versions of one model's are: a request's difficulty is shared
   with probability RHO, else drawn apart (they agree on about 95% of requests). Traffic: steady;
   the base rate drifting 4 points down over the hour; a daily swing of +-3 points and +-60% of
   the traffic over a compressed 30-minute day; labels 5 minutes late; low traffic (30 labelled
   requests a minute). Printed: the median labelled requests to the Fail (both arms for the
   canary), the ratio paired / unpaired, the users the candidate answered until then, and the
   runs that never failed within the horizon.
2. The noise floor: two identical models whose server is not deterministic (each call flips its
   answer with probability 3%, independently): the disagreement test (max 2 points above the
   noise floor) and the correctness test, looked at every minute for two hours; the share of
   rollouts that ever Fail (target: at most 5%).
3. A periodic client against Traefik's mirror sampling (its deterministic counter, as in
   pkg/server/service/loadbalancer/mirror: mirror when count * 100 < total * percent): requests
   alternate between two paths at a 50% mirror, so one path is always mirrored and the other
   never. The check per path (judge_mirror_ratio on each path's counts) catches it; the total
   alone does not.

`.venv/bin/python bench/shadow.py --runs 200` (the default); `--quick` runs 40.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from modelrollout.api.v1alpha1 import CompareSignal, PairedSignal, SampleRatio
from modelrollout.domain.kinds import paired
from modelrollout.domain.kinds.compare import judge_compare_rate
from modelrollout.domain.kinds.paired import Pairs
from modelrollout.domain.signals import judge_mirror_ratio

AT = "2026-12-06T00:00:00Z"
BASE = 0.90
REGRESSION = 0.02
RHO = 0.75  # a request's difficulty is shared by both models with this probability
MARGIN = 0.005
HORIZON = 240  # minutes
PERIOD = 5  # minutes per stratum of the unpaired comparison (the operator's period)
CORRECTNESS = PairedSignal(test="correctness", margin=MARGIN)
DISAGREEMENT = PairedSignal(test="disagreement", max=0.02)
COMPARE = CompareSignal(successes="s", total="t", margin=MARGIN)


@dataclass(frozen=True)
class Traffic:
    name: str
    per_minute: float = 300.0
    drift: float = 0.0  # points of accuracy lost per hour, by both models
    swing: bool = False
    label_delay: int = 0  # minutes


TRAFFIC = (
    Traffic("steady"),
    Traffic("drifting base rate", drift=0.04),
    Traffic("daily swing", swing=True),
    Traffic("labels 5 min late", label_delay=5),
    Traffic("low traffic", per_minute=30.0),
)


def _minute(t: Traffic, minute: int) -> tuple[int, float]:
    """Labelled requests this minute and the champion's accuracy then."""
    rate, accuracy = t.per_minute, BASE - t.drift * minute / 60
    if t.swing:
        phase = 2 * math.pi * minute / 30
        rate *= 1 + 0.6 * math.sin(phase)
        accuracy += 0.03 * math.sin(phase)
    return int(rate), accuracy


def _outcomes(rng: np.random.Generator, n: int, accuracy: float,
              regression: float) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Per request: the champion right, the candidate right (mistakes correlated by RHO)."""
    u = rng.random(n)
    v = np.where(rng.random(n) < RHO, u, rng.random(n))
    return u < accuracy, v < accuracy - regression


def paired_run(seed: int, t: Traffic) -> tuple[float | None, float]:
    """Labelled pairs seen at the paired test's Fail (None: never within the horizon)."""
    rng = np.random.default_rng(seed)
    counts = {"both": 0.0, "champion": 0.0, "candidate": 0.0, "neither": 0.0}
    arriving: list[dict[str, float]] = []
    for minute in range(HORIZON):
        n, accuracy = _minute(t, minute)
        champion, candidate = _outcomes(rng, n, accuracy, REGRESSION)
        arriving.append({
            "both": float(np.sum(champion & candidate)),
            "champion": float(np.sum(champion & ~candidate)),
            "candidate": float(np.sum(~champion & candidate)),
            "neither": float(np.sum(~champion & ~candidate)),
        })  # fmt: skip
        if minute >= t.label_delay:
            for k, v in arriving[minute - t.label_delay].items():
                counts[k] += v
        result = paired.judge("accuracy", CORRECTNESS, Pairs(labelled=dict(counts)), AT, None)
        if result.verdict == "Fail":
            return sum(counts.values()), 0.0
    return None, 0.0


def canary_run(seed: int, t: Traffic, weight: float) -> tuple[float | None, float]:
    """Labelled requests (both arms) at the compare judge's Fail, and the users the canary
    answered until then (None: never within the horizon)."""
    rng = np.random.default_rng(seed)
    strata: list[list[float]] = []
    arriving: list[tuple[float, float, float, float]] = []
    served = 0.0
    for minute in range(HORIZON):
        n, accuracy = _minute(t, minute)
        to_canary = rng.random(n) < weight
        champion, candidate = _outcomes(rng, n, accuracy, REGRESSION)
        served += float(np.sum(to_canary))
        users = ~to_canary
        arriving.append((float(np.sum(candidate & to_canary)), float(np.sum(to_canary)),
                         float(np.sum(champion & users)), float(np.sum(users))))  # fmt: skip
        if minute < t.label_delay:
            continue
        if (minute - t.label_delay) % PERIOD == 0:
            strata.append([0.0, 0.0, 0.0, 0.0])
        strata[-1] = [a + b for a, b in zip(strata[-1], arriving[minute - t.label_delay],
                                            strict=True)]  # fmt: skip
        result = judge_compare_rate("accuracy", COMPARE, [tuple(s) for s in strata], AT)
        if result.verdict == "Fail":
            return sum(s[1] + s[3] for s in strata), served
    return None, served


def noise_run(seed: int, flip: float = 0.03) -> tuple[bool, bool]:
    """Two identical models, each call flipped with probability `flip`: did the disagreement
    test, or the correctness test, ever Fail over two hours of looks every minute?"""
    rng = np.random.default_rng(seed)
    pairs = {"candidate": 0.0, "noise": 0.0}
    differ = {"candidate": 0.0, "noise": 0.0}
    labelled = {"both": 0.0, "champion": 0.0, "candidate": 0.0, "neither": 0.0}
    failed = [False, False]
    for _ in range(120):
        n = 300
        truth_right = rng.random(n) < BASE
        calls = [truth_right ^ (rng.random(n) < flip) for _ in range(3)]  # candidate, 2 x champion
        pairs["candidate"] += n
        pairs["noise"] += n
        differ["candidate"] += float(np.sum(calls[0] != calls[1]))
        differ["noise"] += float(np.sum(calls[1] != calls[2]))
        c, s = calls[0], calls[1]
        labelled["both"] += float(np.sum(c & s))
        labelled["champion"] += float(np.sum(s & ~c))
        labelled["candidate"] += float(np.sum(c & ~s))
        labelled["neither"] += float(np.sum(~c & ~s))
        seen = Pairs(pairs=dict(pairs), disagreements=dict(differ))
        d = paired.judge("agree", DISAGREEMENT, seen, AT, None)
        k = paired.judge("accuracy", CORRECTNESS, Pairs(labelled=dict(labelled)), AT, None)
        failed[0] |= d.verdict == "Fail"
        failed[1] |= k.verdict == "Fail"
    return failed[0], failed[1]


def aliasing(percent: int = 50, requests: int = 20_000) -> dict[str, tuple[float, float]]:
    """Traefik's counter against a client alternating two paths: (mirrored, served) per path."""
    count = 0
    seen = {"/predict": [0.0, 0.0], "/explain": [0.0, 0.0]}
    for total in range(1, requests + 1):
        path = "/predict" if total % 2 == 1 else "/explain"
        seen[path][1] += 1
        if count * 100 < total * percent:
            count += 1
            seen[path][0] += 1
    return {k: (v[0], v[1]) for k, v in seen.items()}


def _median(values: list[float | None]) -> float:
    """The median, a run that never failed within the horizon counted as infinitely long (so a
    median over half such runs is infinite: not decided within the horizon)."""
    return statistics.median([math.inf if v is None else v for v in values])


def _shown(value: float) -> str:
    return f"{value:>7.0f}" if math.isfinite(value) else f"{'> ' + str(HORIZON) + ' min':>7}"


def _row(t: Traffic, runs: int, pool: ProcessPoolExecutor) -> None:
    seeds = range(runs)
    shadow = [n for n, _ in pool.map(paired_run, seeds, [t] * runs)]
    canaries = {w: list(pool.map(canary_run, seeds, [t] * runs, [w] * runs)) for w in (0.5, 0.2)}
    needed_paired = _median(shadow)
    line = (f"{t.name:<20} paired {_shown(needed_paired)} "
            f"(never {sum(n is None for n in shadow):>3})")  # fmt: skip
    for w, results in canaries.items():
        needed = _median([n for n, _ in results])
        ratio = needed_paired / needed if math.isfinite(needed) else 0.0
        line += (f" | canary {int(w * 100)}%: {_shown(needed)} (never "
                 f"{sum(n is None for n, _ in results):>3}), ratio {ratio:.2f}, users "
                 f"{statistics.median(e for _, e in results):>6.0f}")  # fmt: skip
    print(line, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    runs = 40 if args.quick else args.runs
    print(f"1. labelled requests to roll back a {REGRESSION:.0%} regression (median of {runs}); "
          "the shadow answered no user")  # fmt: skip
    with ProcessPoolExecutor() as pool:
        for t in TRAFFIC:
            _row(t, runs, pool)
        noise = list(pool.map(noise_run, range(runs)))
    print(f"2. noise floor, identical models flipping 3% of answers, {runs} rollouts of 2 h: "
          f"disagreement Fail {sum(d for d, _ in noise) / runs:.1%}, correctness Fail "
          f"{sum(k for _, k in noise) / runs:.1%} (target <= 5%)")  # fmt: skip
    settings = SampleRatio()
    per_path = aliasing()
    verdicts = {path: judge_mirror_ratio(settings, m, n, slack=0.0, share=50, at=AT)
                for path, (m, n) in per_path.items()}  # fmt: skip
    mirrored = sum(m for m, _ in per_path.values())
    served = sum(n for _, n in per_path.values())
    total = judge_mirror_ratio(settings, mirrored, served, slack=0.0, share=50, at=AT)
    print(
        "3. a client alternating two paths, Traefik mirroring 50%: "
        + ", ".join(
            f"{p} {int(m)}/{int(n)} -> {verdicts[p].verdict if verdicts[p] else '-'}"
            for p, (m, n) in per_path.items()
        )
        + f"; the total {int(mirrored)}/{int(served)} -> {total.verdict if total else '-'}"
    )


if __name__ == "__main__":
    main()
