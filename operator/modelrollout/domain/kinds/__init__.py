"""Each signal kind's judge, one module per kind, and the registry that finds it by the kind's
name in the API (`Signal.kinds()`). Its measure is in analysis/kinds/, registered by the same name.

A judge gets what its measure measured and says the verdict; no verdict is made anywhere else.
"""

from __future__ import annotations

from typing import Any, Protocol

from modelrollout.api.v1alpha1 import SignalResult
from modelrollout.domain.kinds import compare, drift, fairness, outliers, paired, threshold
from modelrollout.domain.signals import Plan


class Judge(Protocol):
    def __call__(self, name: str, signal: Any, measured: Any, at: str, plan: Plan | None, /
                 ) -> SignalResult: ...  # fmt: skip


# The kinds, by their name in the API (a unit test keeps this in step with Signal.kinds()).
KINDS = {"threshold": threshold, "compare": compare, "drift": drift, "fairness": fairness,
         "outliers": outliers, "paired": paired}  # fmt: skip
JUDGES: dict[str, Judge] = {name: kind.judge for name, kind in KINDS.items()}
# The kinds whose signals must reach Pass before promotion (each module says whether it does).
GATED_KINDS = frozenset(name for name, kind in KINDS.items() if kind.GATES_PROMOTION)
