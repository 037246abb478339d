"""How well does the watch after promotion do? The concept-drift detector of domain/detectors.py,
driven over many simulated streams at once, against a naive fixed-threshold alert on the same
streams.

Each stream is one promoted model watched every minute: labelled outcomes per look are Poisson in
number (the traffic) and binomial in success (the KPI). The first hour is the baseline. The
detector is the shipped one (`healthy_floor`, `fallen`, `cusum_threshold`, `kpi_look`): budget
30 days between false alarms for one signal, `drop` 2 points, `confirm` 2 looks. The naive alert
is what a dashboard would hold: the last hour's KPI below the baseline's minus 2 points, two looks
in a row.

Healthy streams give the mean time between false alarms (MTBFA); changed streams give the delay
from the change to the alarm. Both are measured under the non-stationary traffic the standards ask
for: daily swings of volume, low traffic, rare events, volume jumps (weight changes), a KPI that
improves, a KPI with its own daily swing, and labels that arrive late. `--quick` runs fewer
streams and shorter.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from modelrollout.api.v1alpha1 import DriftSignal
from modelrollout.domain.detectors import (
    baseline_ready,
    confirmed,
    cusum_threshold,
    fallen,
    healthy_floor,
    kpi_look,
    look_alpha,
)
from modelrollout.domain.kinds.drift import judge_drift
from modelrollout.domain.signals import Histogram
from modelrollout.domain.stats import jensen_shannon

LOOK = 60.0  # seconds between looks
DAY = 1440  # looks per day
BASELINE = 60  # looks: the shortest baseline, an hour; it goes on until `baseline_ready`
DROP = 0.02
CONFIRM = 2
BUDGET_DAYS = 30.0

Rate = Callable[[np.ndarray], np.ndarray]  # look index -> per-stream value


@dataclass(frozen=True)
class Stream:
    name: str
    traffic: Callable[[int, np.random.Generator, int], np.ndarray]  # (look, rng, streams) -> n
    kpi: Callable[[int, np.ndarray], np.ndarray]  # (look, change look per stream) -> p
    label_delay: int = 0  # looks until a look's labels are in


def poisson(mean: float) -> Callable[[int, np.random.Generator, int], np.ndarray]:
    return lambda t, rng, k: rng.poisson(mean, k)


def daily_volume(
    mean: float, swing: float
) -> Callable[[int, np.random.Generator, int], np.ndarray]:
    def draw(t: int, rng: np.random.Generator, k: int) -> np.ndarray:
        return rng.poisson(mean * (1 + swing * math.sin(2 * math.pi * t / DAY)), k)

    return draw


def jumps(mean: float) -> Callable[[int, np.random.Generator, int], np.ndarray]:
    """Volume that steps between 10% and 100% every 6 hours, as weights moving would."""
    return lambda t, rng, k: rng.poisson(mean * (0.1 if (t // 360) % 2 else 1.0), k)


def steady(p: float) -> Callable[[int, np.ndarray], np.ndarray]:
    return lambda t, change: np.full(change.shape, p)


def dropped(p: float, drop: float) -> Callable[[int, np.ndarray], np.ndarray]:
    return lambda t, change: np.where(t >= change, p - drop, p)


def improving(p: float, per_day: float) -> Callable[[int, np.ndarray], np.ndarray]:
    return lambda t, change: np.full(change.shape, min(0.999, p + per_day * t / DAY))


def kpi_swing(p: float, amplitude: float) -> Callable[[int, np.ndarray], np.ndarray]:
    return lambda t, change: np.full(change.shape, p + amplitude * math.sin(2 * math.pi * t / DAY))


@dataclass
class Outcome:
    alarms: np.ndarray  # per stream: how many
    first: np.ndarray  # per stream: look of the first alarm at or after the change (-1: none)


def run(stream: Stream, streams: int, looks: int, seed: int, *, change: np.ndarray,
        detector: str) -> Outcome:  # fmt: skip
    """Drive `detector` ("cusum": the shipped one; "naive") over `streams` streams."""
    rng = np.random.default_rng(seed)
    n = np.zeros((looks, streams))
    s = np.zeros((looks, streams))
    for t in range(looks):
        n[t] = stream.traffic(t, rng, streams)
        s[t] = rng.binomial(n[t].astype(np.int64), np.clip(stream.kpi(t, change), 0, 1))
    alarms = np.zeros(streams, dtype=np.int64)
    first = np.full(streams, -1, dtype=np.int64)
    above = np.zeros(streams, dtype=np.int64)
    window_s, window_n = np.cumsum(s, axis=0), np.cumsum(n, axis=0)
    # the baseline: the first hour, then on until it is precise enough (the shipped rule)
    ready_at = np.full(streams, -1, dtype=np.int64)
    for t in range(BASELINE - 1, looks):
        waiting = ready_at < 0
        if not waiting.any():
            break
        done = baseline_ready(window_s[t], window_n[t], DROP) & waiting
        ready_at[done] = t + 1
    ready_at[ready_at < 0] = looks
    last = np.minimum(ready_at, looks) - 1
    base_s, base_n = window_s[last, np.arange(streams)], window_n[last, np.arange(streams)]
    threshold = cusum_threshold(BUDGET_DAYS * 86400, LOOK, 1)
    statistic = np.zeros(streams)
    floor = healthy_floor(base_s, np.maximum(base_n, 1))
    degraded = fallen(floor, DROP)
    bar = base_s / np.maximum(base_n, 1) - DROP
    for t in range(BASELINE, looks):
        judged = t - stream.label_delay  # the latest look whose labels are in
        watching = judged >= ready_at
        if judged < BASELINE or not watching.any():
            continue
        if detector == "cusum":
            statistic, above, alarm = kpi_look(
                statistic, above, s[judged] * watching, n[judged] * watching, floor=floor,
                degraded=degraded, threshold=threshold, confirm=CONFIRM,
            )  # fmt: skip
        else:
            start = max(judged - 60, 0)
            hour_s = window_s[judged] - window_s[start]
            hour_n = window_n[judged] - window_n[start]
            low = (hour_s / np.maximum(hour_n, 1) < bar) & (hour_n > 0) & watching
            above = (above + 1) * low
            alarm = above >= CONFIRM
            above = above * (1 - alarm)
        alarms += alarm
        hit = alarm & (first < 0) & (t >= change)
        first[hit] = t
    return Outcome(alarms, first)


HEALTHY = [
    Stream("steady, 200 labels/min, KPI 0.90", poisson(200), steady(0.90)),
    Stream("daily volume swing x0.1-x1.9", daily_volume(200, 0.9), steady(0.90)),
    Stream("20 labels/min", poisson(20), steady(0.90)),
    Stream("low traffic, 5 labels/min", poisson(5), steady(0.90)),
    Stream("rare events, KPI 0.02 (CTR), 500/min", poisson(500), steady(0.02)),
    Stream("volume jumps 10% <-> 100% every 6 h", jumps(200), steady(0.90)),
    Stream("KPI improving 1 point a day", poisson(200), improving(0.90, 0.01)),
    Stream("KPI daily swing +-0.5 point", poisson(200), kpi_swing(0.90, 0.005)),
    Stream("KPI daily swing +-1 point (= drop / 2)", poisson(200), kpi_swing(0.90, 0.01)),
]


def mtbfa(stream: Stream, streams: int, looks: int, detector: str, seed: int) -> str:
    never = np.full(streams, looks * 10)
    out = run(stream, streams, looks, seed, change=never, detector=detector)
    days = streams * (looks - BASELINE) / DAY
    count = int(out.alarms.sum())
    if count == 0:
        return f"none in {days:,.0f} d (> {days:,.0f} d)"
    return f"{days / count:,.1f} d ({count} in {days:,.0f} d)"


def delays(stream: Stream, streams: int, looks: int, detector: str, seed: int) -> str:
    rng = np.random.default_rng(seed + 1)
    change = rng.integers(DAY, 2 * DAY, streams)  # after the baseline, at any hour of the day
    out = run(stream, streams, looks, seed, change=change, detector=detector)
    minutes = np.where(out.first >= 0, out.first - change, np.inf).astype(float)
    minutes[minutes > 3 * DAY] = np.inf  # found only within 3 days counts

    def shown(value: float) -> str:
        return f"{value:,.0f} min" if math.isfinite(value) else "not found"

    median, p90 = (float(np.percentile(minutes, q, method="nearest")) for q in (50, 90))
    rate = float(np.isfinite(minutes).mean())
    return f"{shown(median)} (p90 {shown(p90)}; {rate:.0%})"


# --- input drift: judged looks (the shipped drift judge at the budget's per-look alpha) ---------

DRIFT_LOOK = 900.0  # a drift monitor looks every 15 minutes
DRIFT_WINDOW = 4  # looks: each judges the last hour
EDGES = (10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0)
TRAINING = np.array([0.10, 0.15, 0.20, 0.20, 0.15, 0.10, 0.05, 0.03, 0.02])
REFERENCE = Histogram(EDGES, tuple(float(c) for c in np.round(TRAINING * 200_000)))


def shifted(strength: float) -> np.ndarray:
    """The training distribution with its mass moved toward high amounts."""
    tilt = TRAINING * np.exp(strength * np.arange(len(TRAINING)) / len(TRAINING))
    return tilt / tilt.sum()


@dataclass(frozen=True)
class DriftStream:
    name: str
    per_minute: float
    swing: float = 0.0  # daily volume swing
    healthy: tuple[float, ...] = tuple(TRAINING)
    after: tuple[float, ...] | None = None  # the distribution after the change
    window: int = DRIFT_WINDOW  # looks each judges (at low traffic, longer: minSamples is 500)


Arrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def drift_run(stream: DriftStream, streams: int, looks: int, seed: int,
              change: np.ndarray) -> Arrays:  # fmt: skip
    """Per stream: alarms and first alarm at or after the change, for the shipped judge and
    for the naive plug-in distance above max."""
    rng = np.random.default_rng(seed)
    signal = DriftSignal(histogram="amount_bucket", against="reference",
                         reference={"name": "training", "key": "amount"},
                         alpha=look_alpha(BUDGET_DAYS * 86400, DRIFT_LOOK, 1))  # fmt: skip
    looks_per_day = 86400 / DRIFT_LOOK
    counts = np.zeros((looks, streams, len(TRAINING)))
    for t in range(looks):
        volume = stream.per_minute * DRIFT_LOOK / 60 * (
            1 + stream.swing * math.sin(2 * math.pi * t / looks_per_day))  # fmt: skip
        for k in range(streams):
            p = stream.after if stream.after is not None and t >= change[k] else stream.healthy
            counts[t, k] = rng.multinomial(rng.poisson(volume), p)
    results = []
    for judged in (True, False):
        alarms = np.zeros(streams, dtype=np.int64)
        first = np.full(streams, -1, dtype=np.int64)
        for k in range(streams):
            above = 0
            for t in range(stream.window - 1, looks):
                window = counts[t - stream.window + 1 : t + 1, k].sum(axis=0)
                if judged:
                    seen = Histogram(EDGES, tuple(float(c) for c in window))
                    alarming = judge_drift("amount", signal, [REFERENCE], [seen], "x").verdict \
                        == "Fail"  # fmt: skip
                else:
                    alarming = window.sum() > 0 and jensen_shannon(
                        REFERENCE.counts, window) > signal.bound  # fmt: skip
                above, alarm = confirmed(alarming, above, CONFIRM)
                if alarm:
                    above = 0
                    alarms[k] += 1
                    if first[k] < 0 and t >= change[k]:
                        first[k] = t
        results += [alarms, first]
    return results[0], results[1], results[2], results[3]


def drift_rows(streams: int, days: float) -> None:
    looks_per_day = int(86400 / DRIFT_LOOK)
    looks = int(days * looks_per_day)
    alpha = look_alpha(BUDGET_DAYS * 86400, DRIFT_LOOK, 1)
    print(f"\n## Input drift: the shipped drift judge (Jensen-Shannon against the training "
          f"reference, max 0.1) at alpha = {DRIFT_LOOK:g} s / 30 d = {alpha:.2g} per look, against "
          "the naive plug-in distance above 0.1; looks every 15 min over the last hour (6 h at "
          "5/min), "
          f"confirm {CONFIRM}\n")  # fmt: skip
    print("| stream | shipped: MTBFA or delay | naive: MTBFA or delay |")
    print("|---|---|---|")
    never = np.full(streams, looks * 10)
    for i, stream in enumerate((
        DriftStream("healthy, 200/min", 200),
        DriftStream("healthy, daily volume swing x0.1-x1.9", 200, swing=0.9),
        DriftStream("healthy, 5/min, 6 h window", 5, window=24),
        DriftStream(f"healthy but not identical (JS {jensen_shannon(TRAINING, shifted(0.3)):.2f})",
                    200, healthy=tuple(shifted(0.3))),
    )):  # fmt: skip
        a, _, b, _ = drift_run(stream, streams, looks, 100 + i, never)
        stream_days = streams * looks / looks_per_day

        def rate(alarms: np.ndarray, days: float = stream_days) -> str:
            count = int(alarms.sum())
            return f"none in {days:,.0f} d" if count == 0 else f"{days / count:,.1f} d ({count})"

        print(f"| {stream.name} | {rate(a)} | {rate(b)} |", flush=True)
    rng = np.random.default_rng(7)
    change = rng.integers(looks_per_day // 4, looks_per_day, streams)
    for strength in (1.0, 2.0, 3.0):
        after = shifted(strength)
        for per_minute in (200, 5):
            distance = jensen_shannon(TRAINING, after)
            below = " (below max: any alarm is false)" if distance < 0.1 else ""
            window = DRIFT_WINDOW if per_minute >= 100 else 24
            stream = DriftStream(f"drift to JS {distance:.2f}{below}, {per_minute}/min, "
                                 f"{window * DRIFT_LOOK / 3600:g} h window", per_minute,
                                 after=tuple(after), window=window)  # fmt: skip
            _, a, _, b = drift_run(stream, streams, looks, int(strength * 10) + per_minute, change)

            def delay(first: np.ndarray) -> str:
                minutes = np.where(first >= 0, (first - change) * DRIFT_LOOK / 60, np.inf)
                median = float(np.percentile(minutes, 50, method="nearest"))
                found = float(np.isfinite(minutes).mean())
                shown = f"{median:,.0f} min" if math.isfinite(median) else "not found"
                return f"{shown} ({found:.0%} found)"

            print(f"| {stream.name} | {delay(a)} | {delay(b)} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    streams, healthy_looks = (100, 14 * DAY) if args.quick else (400, 30 * DAY)
    detect_looks = 5 * DAY
    started = time.monotonic()
    threshold = cusum_threshold(BUDGET_DAYS * 86400, LOOK, 1)
    print(f"budget {BUDGET_DAYS:g} d between false alarms, looks every {LOOK:g} s: CUSUM h = "
          f"ln({BUDGET_DAYS * DAY:,.0f}) = {threshold:.2f}; drop {DROP:g}; "
          f"confirm {CONFIRM}")  # fmt: skip
    print(f"{streams} streams per row\n")
    print("## Healthy streams: mean time between false alarms (budget 30 d)\n")
    print("| stream | CUSUM (shipped) | naive: last hour < baseline - 2 pt |")
    print("|---|---|---|")
    for i, stream in enumerate(HEALTHY):
        print(f"| {stream.name} | {mtbfa(stream, streams, healthy_looks, 'cusum', i)} | "
              f"{mtbfa(stream, streams, healthy_looks, 'naive', i)} |", flush=True)  # fmt: skip
    print(
        "\n## A KPI that falls: median minutes from the change to the alarm (p90; share found"
        " within 3 days of it)\n"
    )
    print("| change | CUSUM (shipped) | naive |")
    print("|---|---|---|")
    for points in (1, 2, 5):
        for label, traffic, delay in (
            ("200 labels/min", poisson(200), 0),
            ("daily volume swing", daily_volume(200, 0.9), 0),
            ("20 labels/min", poisson(20), 0),
            ("200/min, labels 30 min late", poisson(200), 30),
        ):
            stream = Stream(f"-{points} pt, {label}", traffic, dropped(0.90, points / 100), delay)
            print(f"| {stream.name} | {delays(stream, streams, detect_looks, 'cusum', points)} | "
                  f"{delays(stream, streams, detect_looks, 'naive', points)} |",
                  flush=True)  # fmt: skip
    drift_rows(20 if args.quick else 100, 7 if args.quick else 30)
    print(f"\n{time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
