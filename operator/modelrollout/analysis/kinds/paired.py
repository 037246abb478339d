"""Paired: the comparator's counts for the candidate since the shadow step began."""

from __future__ import annotations

import math

from modelrollout.analysis.counting import Counting, MeasurementError
from modelrollout.api.v1alpha1 import PairedSignal
from modelrollout.domain.kinds.paired import Pairs
from modelrollout.shadow import metrics


def measure(counting: Counting, signal: PairedSignal) -> Pairs:
    since = counting.c.step_since
    if since is None:
        raise MeasurementError("a paired signal is measured in a shadow step only")
    version = counting.c.canary_version

    def by(metric: str, label: str | None) -> dict[str, float]:
        return counting.increases(metrics.selector(metric), version, label, since=since)

    if signal.test == "disagreement":
        return Pairs(pairs=by(metrics.PAIRS, "pair"),
                     disagreements=by(metrics.DISAGREEMENTS, "pair"))  # fmt: skip
    if signal.test == "correctness":
        return Pairs(labelled=by(metrics.LABELLED, "right"))
    if signal.test == "errors":
        # the requests compared: those mirrored, less those the comparator shed
        mirrored = by(metrics.MIRRORED, None).get("", 0.0) - by(metrics.SHED, None).get("", 0.0)
        return Pairs(one_sided=by(metrics.ONE_SIDED, "failed"), mirrored=mirrored)
    buckets = by(f"{metrics.LATENCY_RATIO}_bucket", "le")
    try:
        ratios = {math.inf if le == "+Inf" else float(le): n for le, n in buckets.items()}
    except ValueError as error:
        raise MeasurementError(f"{metrics.LATENCY_RATIO}: a bucket edge is not a number") from error
    return Pairs(ratios=ratios)
