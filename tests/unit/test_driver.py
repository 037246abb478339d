"""The simulation driver runs the real step machine: what it decides is what the operator would."""

from __future__ import annotations

import numpy as np
import pytest

from modelrollout.api.v1alpha1 import ModelRolloutSpec, SignalResult
from modelrollout.domain.kinds.compare import judge_compare_rate
from modelrollout.domain.machine import plans
from modelrollout.testing.driver import Simulated, stamp
from modelrollout.testing.manifests import rollout

TICK = 30.0


def spec(margin: float) -> ModelRolloutSpec:
    raw = rollout()["spec"]
    raw["strategy"]["steps"] = [{"setWeight": 20}, {"analyze": {"duration": "5m"}},
                                {"setWeight": 50}, {"analyze": {"duration": "5m"}}]  # fmt: skip
    raw["analysis"] = {"interval": "1m", "prometheus": {"address": "http://p:9090"},
                       "signals": [{"name": "acc", "compare": {"successes": "s", "total": "t",
                                                               "margin": margin}}]}  # fmt: skip
    return ModelRolloutSpec.model_validate(raw)


def simulate(accuracy: float, margin: float, seed: int) -> tuple[str, Simulated]:
    s = spec(margin)
    rng = np.random.default_rng(seed)
    sim = Simulated(s, TICK)
    compare = s.analysis.signals[0].compare  # type: ignore[union-attr]
    assert compare is not None
    periods: dict[int, list[float]] = {}

    def served(tick: int, weight: int) -> float:
        n = rng.poisson(1000)
        n_c = rng.binomial(n, weight / 100)
        row = periods.setdefault(sim.period(tick), [0.0, 0.0, 0.0, 0.0])
        row[0] += rng.binomial(n_c, accuracy)
        row[1] += n_c
        row[2] += rng.binomial(n - n_c, 0.9)
        row[3] += n - n_c
        return float(n_c)

    def judge(tick: int) -> list[SignalResult]:
        rows = [tuple(periods[k]) for k in sorted(periods)]
        plan = plans(s, sim.status, sim.now(tick)).get("acc")
        return [judge_compare_rate("acc", compare, rows, stamp(tick, TICK),  # type: ignore[arg-type]
                                           plan=plan)]  # fmt: skip

    decision = sim.run(240, served, judge)
    return decision.outcome, sim


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clear_regression_is_rolled_back_by_the_real_machine(seed: int) -> None:
    outcome, sim = simulate(accuracy=0.80, margin=0.01, seed=seed)
    assert outcome == "RolledBack"
    assert "signal acc: canary worse than tolerated" in (sim.status.message or "")
    assert sim.status.canary_weight == 0


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_an_identical_canary_within_the_margin_is_promoted_after_every_step(seed: int) -> None:
    outcome, sim = simulate(accuracy=0.90, margin=0.02, seed=seed)
    assert outcome == "Promoted"
    assert sim.status.stable is not None
    assert sim.status.stable.version == "v2"
    assert [h.outcome for h in sim.status.history] == ["Promoted"]
