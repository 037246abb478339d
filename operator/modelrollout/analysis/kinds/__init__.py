"""Each signal kind's measure, one module per kind, and the registry that finds it by the kind's
name in the API (`Signal.kinds()`). Its judge is in domain/kinds/, registered by the same name.

A measure only measures: counts or a number in, through the metrics source; no verdict.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelrollout.analysis.counting import Counting
from modelrollout.analysis.kinds import compare, drift, fairness, outliers, paired, threshold


class Measure(Protocol):
    def __call__(self, counting: Counting, signal: Any, /) -> Any: ...


MEASURES: dict[str, Measure] = {
    "threshold": threshold.measure,
    "compare": compare.measure,
    "drift": drift.measure,
    "fairness": fairness.measure,
    "outliers": outliers.measure,
    "paired": paired.measure,
}
