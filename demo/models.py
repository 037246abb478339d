"""Small fraud classifiers, trained at demo start on synthetic data (numpy only).

`v1` is the stable baseline, `v2` a better model (more features, an interaction), `v3` the same
model shipped with a serving bug: trained on log(amount), served on the raw amount. It is less
accurate, and it fails on large amounts. `v4` is v2's model behind a new feature pipeline that
converts amounts twice: every amount it sees is doubled. It answers, fast and without errors; only
its inputs have moved. `rules-v1` is the fallback: a heuristic on the amount alone. After the
world shifts (`World.shifted`: larger amounts, and foreign transactions no longer riskier), the
retraining Job trains `v5` on recent labelled transactions (demo/retrain.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass(frozen=True)
class Sample:
    x: Array  # one row per request: amount, transactions in 24 h, account age (days), foreign
    y: NDArray[np.int_]  # the true label: 1 = fraud


@dataclass(frozen=True)
class World:
    """How transactions are drawn: the amounts' log-mean, and how risky being foreign is."""

    amount_log_mean: float = 4.0
    foreign_risk: float = 1.2

    def shifted(self) -> World:
        """After the shift: amounts e^0.8 times larger, and foreign no longer riskier (a new
        payment partner): both the inputs and their relation to the labels have moved."""
        return World(amount_log_mean=4.8, foreign_risk=-1.0)


def draw(rng: np.random.Generator, n: int, world: World = World()) -> Sample:
    """Transactions whose fraud probability rises with amount, activity and foreignness."""
    amount = rng.lognormal(world.amount_log_mean, 1.0, n)
    transactions = rng.poisson(3.0, n).astype(float)
    age = rng.exponential(400.0, n)
    foreign = (rng.random(n) < 0.3).astype(float)
    logit = (
        -3.0 + 0.9 * np.log(amount) - 2.4 + 0.35 * transactions - 0.004 * age
        + world.foreign_risk * foreign + 0.5 * foreign * np.log(amount) - 1.0
        - 0.9 * (world.amount_log_mean - 4.0)  # the base rate stays about the same
    )  # fmt: skip
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int_)
    return Sample(np.column_stack([amount, transactions, age, foreign]), y)


class ServingError(RuntimeError):
    """The model server could not answer (an HTTP 500)."""


@dataclass
class Model:
    version: str
    columns: tuple[int, ...]
    interaction: bool
    weights: Array
    mean: Array
    scale: Array
    broken_scaling: bool = False
    input_scale: float = 1.0  # what the version's feature pipeline does to amounts

    def design(self, x: Array, serving: bool = False) -> Array:
        amount = x[:, 0] / 20 if serving and self.broken_scaling else np.log(x[:, 0])
        cols = [amount, x[:, 1], x[:, 2] / 100, x[:, 3]]
        features = np.column_stack([cols[c] for c in self.columns])
        if self.interaction:
            features = np.column_stack([features, cols[3] * cols[0]])
        return features

    def score(self, x: Array) -> Array:
        if self.broken_scaling and np.any(x[:, 0] > 400):
            raise ServingError("amount out of the range the scaler was fitted on")
        # The bug: trained on log(amount), served on a raw rescaled amount.
        z = (self.design(x, serving=True) - self.mean) / self.scale
        return 1 / (1 + np.exp(-(z @ self.weights[1:] + self.weights[0])))


def train(version: str, columns: tuple[int, ...], interaction: bool, sample: Sample,
          *, broken_scaling: bool = False, steps: int = 400) -> Model:  # fmt: skip
    model = Model(version, columns, interaction, np.zeros(0), np.zeros(0), np.ones(0))
    raw = model.design(sample.x)
    model.mean, model.scale = raw.mean(axis=0), raw.std(axis=0) + 1e-9
    z = (raw - model.mean) / model.scale
    design = np.column_stack([np.ones(len(z)), z])
    weights = np.zeros(design.shape[1])
    for _ in range(steps):  # plain gradient descent on the log-loss
        p = 1 / (1 + np.exp(-(design @ weights)))
        weights -= 0.5 * design.T @ (p - sample.y) / len(z)
    model.weights = weights
    model.broken_scaling = broken_scaling
    return model


def train_all(seed: int = 7) -> dict[str, Model]:
    training = draw(np.random.default_rng(seed), 20_000)
    models = {
        "v1": train("v1", (0, 1), False, training),
        "v2": train("v2", (0, 1, 2, 3), True, training),
        "v3": train("v3", (0, 1, 2, 3), True, training, broken_scaling=True),
    }
    v4 = train("v4", (0, 1, 2, 3), True, training)
    v4.input_scale = 2.0
    rules = train("rules-v1", (0,), False, training)
    return {**models, "v4": v4, "rules-v1": rules}


def accuracy(model: Model, sample: Sample) -> float:
    sample = Sample(sample.x * np.array([model.input_scale, 1, 1, 1]), sample.y)
    try:
        predicted = model.score(sample.x) >= 0.5
    except ServingError:
        keep = sample.x[:, 0] <= 400
        predicted = model.score(sample.x[keep]) >= 0.5
        return float(np.mean(predicted == sample.y[keep]))
    return float(np.mean(predicted == sample.y))


def save(model: Model, path: Path) -> None:
    """The model as JSON: what a registry would hold and a model server loads."""
    path.write_text(json.dumps({
        "version": model.version, "columns": list(model.columns),
        "interaction": model.interaction, "weights": model.weights.tolist(),
        "mean": model.mean.tolist(), "scale": model.scale.tolist(),
        "broken_scaling": model.broken_scaling, "input_scale": model.input_scale}))  # fmt: skip


def load(path: Path) -> Model:
    raw = json.loads(path.read_text())
    return Model(raw["version"], tuple(raw["columns"]), raw["interaction"],
                 np.array(raw["weights"]), np.array(raw["mean"]), np.array(raw["scale"]),
                 raw["broken_scaling"], raw["input_scale"])  # fmt: skip
