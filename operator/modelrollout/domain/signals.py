"""What every signal kind's judge shares: the counts per arm as histograms or segments, a
result with its numbers, a compare signal's place in the plan; and the sample ratio check.

Adapters measure counter increases since the canary took traffic (per label value: `le` for
histograms, a segment or a category); each kind's judge (domain/kinds/) turns them into `Pass`,
`Fail`, `Inconclusive`, `NoData` or `Error`, always with the numbers that decided
(docs/analysis.md).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import (
    Look,
    SampleRatio,
    Samples,
    SignalResult,
    Verdict,
)
from modelrollout.domain import stats

Counts = Mapping[str, float]  # increase per label value; "" when not grouped


@dataclass(frozen=True)
class Histogram:
    """Per-bucket counts; `edges` are the finite upper edges, `counts` has one more (+Inf)."""

    edges: tuple[float, ...]
    counts: tuple[float, ...]

    @property
    def total(self) -> float:
        return sum(self.counts)


def histogram(cumulative: Counts) -> Histogram:
    """From increases of `_bucket` series by `le` (cumulative) to per-bucket counts."""
    if not cumulative:
        return Histogram((), ())
    try:
        by_edge = sorted((float(le), count) for le, count in cumulative.items())
    except ValueError as error:
        raise ValueError(f"a bucket `le` label is not a number: {error}") from error
    if not math.isinf(by_edge[-1][0]):
        raise ValueError("the histogram has no +Inf bucket; select the `_bucket` series")
    edges = tuple(e for e, _ in by_edge[:-1])
    running = [c for _, c in by_edge]
    counts = [running[0]] + [max(0.0, b - a) for a, b in itertools.pairwise(running)]
    return Histogram(edges, tuple(counts))


def categorical(counts: Counts, names: list[str]) -> Histogram:
    """Category counts as a histogram over a fixed order of names (edges are just positions),
    so that every period and both arms line up."""
    values = tuple(counts.get(n, 0.0) for n in names)
    return Histogram(tuple(float(i) for i in range(len(values) - 1)), values)


def result(name: str, kind: str, verdict: Verdict, at: str, **numbers: object) -> SignalResult:
    fields = {k: v for k, v in numbers.items() if v is not None}
    for key, value in list(fields.items()):
        if isinstance(value, float) and not math.isfinite(value):
            fields[key] = None
    return SignalResult.model_validate({"name": name, "kind": kind, "verdict": verdict, "at": at,
                                        **fields})  # fmt: skip


def gathering(judged: SignalResult, series_exist: bool) -> SignalResult:
    """Nothing counted since the canary started, though the selectors match series: the evidence
    is still coming in (a scrape or two after the start, labels that arrive late), which is
    Inconclusive. NoData is kept for selectors that match no series at all, as a wrong query."""
    if judged.verdict != "NoData" or not series_exist:
        return judged
    return judged.model_copy(update={
        "verdict": "Inconclusive",
        "message": "nothing counted since the canary started yet; the series exist",
    })  # fmt: skip


def error(name: str, kind: str, message: str, at: str) -> SignalResult:
    return result(name, kind, "Error", at, message=message)


def arm_samples(canary: float, stable: float) -> Samples:
    return Samples(canary=int(canary), stable=int(stable))


@dataclass(frozen=True)
class Plan:
    """Where a compare signal stands in the rollout's plan: how far into the planned time the
    rollout is (0 to 1; 1 once past it) and the signal's looks so far."""

    fraction: float
    looks: tuple[Look, ...] = ()


def pool(periods: Sequence[Histogram]) -> Histogram:
    """One histogram of all periods (periods share their edges)."""
    present = [h for h in periods if h.counts]
    if not present:
        return Histogram((), ())
    edges = present[0].edges
    if any(h.edges != edges for h in present):
        raise ValueError("bucket edges changed during the canary; export fixed buckets")
    return Histogram(
        edges, tuple(sum(col) for col in zip(*(h.counts for h in present), strict=True))
    )


def edges_differ(a: Histogram, b: Histogram) -> str:
    if not a.counts or not b.counts or a.edges == b.edges:
        return ""
    only_a = sorted(set(a.edges) - set(b.edges))
    only_b = sorted(set(b.edges) - set(a.edges))
    return (
        f"bucket edges differ between the arms: only in the canary {only_a[:5]}, only in the "
        f"reference {only_b[:5]}; export the same buckets from every version"
    )


@dataclass(frozen=True)
class Segments:
    """Per-segment counts of one arm: how many were selected out of how many."""

    selected: Counts
    total: Counts


SAMPLE_RATIO = "sample-ratio"
# Sticky buckets' own check: the treatment buckets' stamped requests against the control's.
BUCKET_RATIO = "sample-ratio-buckets"


def judge_sample_ratio(settings: SampleRatio, canary: float | None, stable: float | None,
                       weight: int, at: str) -> SignalResult | None:  # fmt: skip
    """Is the traffic split real? None when there is nothing to judge: no request counter is
    exported for either arm (None: no series; the check is skipped, analysis.md), no traffic
    counted yet, or a weight of 0 or 100. A mismatch is an Error, never a pass."""
    if not 0 < weight < 100:
        return None

    def shown(share: float, total: float) -> str:
        return f"canary got {share:.2%} of {int(total)} requests for a weight of {weight}%"

    return _judge_split(settings, SAMPLE_RATIO, canary, stable, expected=weight / 100, at=at,
                        shown=shown)  # fmt: skip


def judge_bucket_ratio(settings: SampleRatio, treatment: float | None, control: float | None,
                       buckets: tuple[int, int], at: str) -> SignalResult | None:  # fmt: skip
    """Do the treatment and control buckets get what their sizes say? Both are a fixed share of
    the keys, so the treatment's share of the two is t / (t + c) whatever the weight; a bucket
    rule the gateway does not apply, or a key that is not uniform, shows as a mismatch."""
    t, c = buckets

    def shown(share: float, total: float) -> str:
        return (f"treatment buckets got {share:.2%} of {int(total)} stamped requests for "
                f"{t} buckets against {c} of control")  # fmt: skip

    return _judge_split(settings, BUCKET_RATIO, treatment, control, expected=t / (t + c),
                        at=at, shown=shown)  # fmt: skip


def judge_mirror_ratio(settings: SampleRatio, mirrored: float, users: float, *, slack: float,
                       share: int, at: str) -> SignalResult | None:  # fmt: skip
    """Is the mirror real? The comparator's requests against `share`% of the users' requests
    the stable served in the same time: a data plane that does not mirror, or a sampling that
    aliases with a periodic client, shows as a mismatch (an Error, never a pass).

    The two counts come from different scrapes, so at each end of the window either may be off
    by what one scrape adds; `slack` (the largest increase one sample showed, of each, twice)
    widens the count both ways before the always-valid bounds of a binomial share are drawn."""
    if users < max(settings.min_samples, 1):
        return None
    p = share / 100
    _, upper = stats.bernoulli_bounds(min(mirrored + slack, users), users, settings.p_value)
    lower, _ = stats.bernoulli_bounds(max(mirrored - slack, 0.0), users, settings.p_value)
    got = mirrored / users
    numbers: dict[str, object] = {"value": got, "bound": p, "lower": lower, "upper": upper,
                                  "samples": arm_samples(mirrored, users)}  # fmt: skip
    said = (f"the comparator got {int(mirrored)} mirrored requests for {int(users)} of the "
            f"users' ({got:.2%}, within {int(slack)} for the scrapes' edges) where {share}% are "
            "mirrored")  # fmt: skip
    if upper < p or lower > p:
        return result("mirror-ratio", "sampleRatio", "Error", at, **numbers,
                      message=f"mirror ratio mismatch: {said}; the data plane is not mirroring "
                      "as the route says, or its sampling aliases with the traffic")  # fmt: skip
    return result("mirror-ratio", "sampleRatio", "Pass", at, **numbers, message=said)


# The users' error rate may rise by this much while a mirror is on before it is taken off.
USER_ERROR_TOLERANCE = 0.01
USER_ERROR_ALPHA = 0.01


def judge_user_errors(before: tuple[float, float], after: tuple[float, float],
                      at: str) -> SignalResult | None:  # fmt: skip
    """Did the users' error rate rise since the mirror went on (by more than the tolerance, with
    confidence)? A Fail takes the mirror off at once (machine._shadow_step). None: no requests
    on one side to compare."""
    (eb, nb), (ea, na) = before, after
    if nb <= 0 or na <= 0:
        return None
    interval = stats.exact_difference((ea, na), (eb, nb), USER_ERROR_ALPHA)
    said = (f"users' error rate {ea / na:.3%} of {int(na)} requests since the mirror went on, "
            f"{eb / nb:.3%} of {int(nb)} before")  # fmt: skip
    numbers: dict[str, object] = {"value": interval.estimate, "lower": interval.lower,
                                  "upper": interval.upper, "bound": USER_ERROR_TOLERANCE,
                                  "canary": ea / na, "stable": eb / nb}  # fmt: skip
    if interval.lower > USER_ERROR_TOLERANCE:
        return result("user-errors", "sampleRatio", "Fail", at, **numbers,
                      message=f"{said}: up by more than {USER_ERROR_TOLERANCE:.0%} with "
                      "confidence")  # fmt: skip
    return result("user-errors", "sampleRatio", "Pass", at, **numbers, message=said)


def _judge_split(settings: SampleRatio, name: str, canary: float | None, stable: float | None,
                 *, expected: float, at: str, shown: Callable[[float, float], str],
                 ) -> SignalResult | None:  # fmt: skip
    if canary is None and stable is None:
        return None
    canary, stable = canary or 0.0, stable or 0.0
    total = canary + stable
    if total < max(settings.min_samples, 1):
        return None
    test = stats.sample_ratio(canary, stable, expected)
    numbers: dict[str, object] = {
        "value": test.statistic, "bound": expected, "p_value": test.p_value,
        "samples": arm_samples(canary, stable),
    }  # fmt: skip
    said = shown(test.statistic, total)
    if test.p_value < settings.p_value:
        message = (
            f"sample ratio mismatch: {said} (always-valid p={test.p_value:.2g}); the router "
            "is not splitting traffic as the route says"
        )
        return result(name, "sampleRatio", "Error", at, **numbers, message=message)
    return result(name, "sampleRatio", "Pass", at, **numbers, message=said)
