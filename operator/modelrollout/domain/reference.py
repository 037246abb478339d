"""Frozen drift references: bucket or category counts kept in a ConfigMap key.

The format is JSON, `{"counts": {"<le or category>": n, ...}, "source": "..."}`. Histogram
counts are cumulative by upper edge `le`, "+Inf" included, exactly as Prometheus `_bucket` series
count, so a reference and a live arm go through the same code and their edges can be compared.
`modelrollout reference` writes it from a sample, a training dataset or Prometheus.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

DEFAULT_KEY = "reference.json"


def le_label(edge: float) -> str:
    """An upper edge as Prometheus clients print `le`: 10 -> "10.0", infinity -> "+Inf"."""
    if math.isinf(edge) and edge > 0:
        return "+Inf"
    return repr(float(edge))


def check_edges(edges: Sequence[float]) -> tuple[float, ...]:
    """Finite, strictly increasing upper edges (without +Inf, which every histogram has)."""
    clean = tuple(float(e) for e in edges if not (math.isinf(e) and e > 0))
    if not clean:
        raise ValueError("give at least one finite bucket edge")
    if any(not math.isfinite(e) for e in clean):
        raise ValueError(f"bucket edges must be numbers: {list(edges)}")
    if any(b <= a for a, b in itertools.pairwise(clean)):
        raise ValueError(f"bucket edges must increase strictly: {list(edges)}")
    return clean


def histogram_counts(values: Iterable[float], edges: Sequence[float]) -> dict[str, float]:
    """Cumulative counts by `le` of `values` (a value equal to an edge falls in that bucket, as in
    Prometheus). Values that are not finite numbers are refused: a reference must not hide them."""
    bounds = check_edges(edges)
    per_bucket = [0] * (len(bounds) + 1)
    for value in values:
        if not math.isfinite(value):
            raise ValueError(f"not a finite number: {value}")
        per_bucket[bisect.bisect_left(bounds, value)] += 1  # first edge >= value
    counts: dict[str, float] = {}
    running = 0
    for edge, n in zip((*bounds, math.inf), per_bucket, strict=True):
        running += n
        counts[le_label(edge)] = float(running)
    return counts


def category_counts(values: Iterable[str]) -> dict[str, float]:
    counts: dict[str, float] = {}
    for value in values:
        counts[value] = counts.get(value, 0.0) + 1.0
    return dict(sorted(counts.items()))


def encode(counts: dict[str, float], source: str) -> str:
    if not counts or sum(counts.values()) <= 0:
        raise ValueError("the reference is empty: nothing was counted")
    exact = {k: int(v) if float(v).is_integer() else v for k, v in counts.items()}
    return json.dumps({"source": source, "counts": exact}, indent=1) + "\n"


def decode(text: str) -> dict[str, float]:
    """The counts of a reference; ValueError naming what is wrong with it."""
    try:
        body: Any = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"not JSON: {error}") from error
    counts = body.get("counts") if isinstance(body, dict) else None
    if not isinstance(counts, dict) or not counts:
        raise ValueError('expected {"counts": {"<le or category>": n, ...}}')
    decoded: dict[str, float] = {}
    for key, value in counts.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"count for {key!r} is not a number: {value!r}")
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"count for {key!r} must be a finite number >= 0: {value!r}")
        decoded[str(key)] = float(value)
    return decoded


def config_map(name: str, namespace: str | None, key: str, text: str) -> dict[str, Any]:
    metadata: dict[str, Any] = {"name": name}
    if namespace:
        metadata["namespace"] = namespace
    metadata["labels"] = {"app.kubernetes.io/part-of": "modelrollout"}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {key: text}}
