"""One story vocabulary for every driver: typed Given / When / Then stages (in the manner of Argo
Rollouts' e2e fixtures) over a `Driver`, so that the same story runs against the ticker over
fakes in milliseconds (`TickerDriver`) and against the real control plane and operator process
(`testing/stories.py` `Story`). Every check reads the traffic split through the driver's router,
never a route's fields, so the stories hold for every router.

    given(driver).rollout(v1).stable("v1")
        .when().apply(v2).wait_for_weight(50)
        .then().canary_weight(50).phase("Progressing")
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from modelrollout.api.v1alpha1 import Phase
from modelrollout.controller.tick import Ticker
from modelrollout.domain.commands import COMMAND_ANNOTATION, encode, new_command
from modelrollout.domain.machine import CommandKind
from modelrollout.testing.fakes import FakeWorld

Manifest = dict[str, Any]


class Driver(Protocol):
    """What a story needs from a world: act as a user would, read status, read the split."""

    def apply(self, manifest: Manifest) -> None: ...

    def command(self, kind: CommandKind) -> None: ...

    def status(self) -> dict[str, Any]: ...

    def canary_weight(self) -> int | None: ...

    def until(self, what: str, predicate: Callable[[], bool], timeout: float = 90) -> None:
        """Wait (real or simulated time) until `predicate` holds; fail saying `what` if not."""
        ...


def given(driver: Driver) -> Given:
    return Given(driver)


@dataclass
class Given:
    driver: Driver

    def rollout(self, manifest: Manifest) -> Given:
        self.driver.apply(manifest)
        return self

    def stable(self, version: str) -> Given:
        """The rollout's stable revision runs `version` (the first version is stable at once)."""
        self.driver.until(f"{version} is stable", lambda: _stable(self.driver) == version)
        return self

    def when(self) -> When:
        return When(self.driver)


@dataclass
class When:
    driver: Driver

    def apply(self, manifest: Manifest) -> When:
        self.driver.apply(manifest)
        return self

    def command(self, kind: CommandKind) -> When:
        self.driver.command(kind)
        return self

    def wait_for_phase(self, phase: Phase, timeout: float = 90) -> When:
        self.driver.until(f"phase {phase}", lambda: self.driver.status().get("phase") == phase,
                          timeout)  # fmt: skip
        return self

    def wait_for_weight(self, weight: int, timeout: float = 90) -> When:
        self.driver.until(f"the canary takes {weight}%",
                          lambda: self.driver.canary_weight() == weight, timeout)  # fmt: skip
        return self

    def wait_for_stable(self, version: str, timeout: float = 90) -> When:
        self.driver.until(f"{version} is stable", lambda: _stable(self.driver) == version,
                          timeout)  # fmt: skip
        return self

    def then(self) -> Then:
        return Then(self.driver)


@dataclass
class Then:
    driver: Driver

    def phase(self, phase: Phase) -> Then:
        assert self.driver.status().get("phase") == phase, self.driver.status()
        return self

    def stable(self, version: str) -> Then:
        assert _stable(self.driver) == version, self.driver.status()
        return self

    def canary_weight(self, weight: int) -> Then:
        assert self.driver.canary_weight() == weight, (self.driver.canary_weight(), weight)
        return self

    def message(self, contains: str) -> Then:
        said = str(self.driver.status().get("message") or "")
        assert contains in said, said
        return self

    def when(self) -> When:
        return When(self.driver)


def _stable(driver: Driver) -> str | None:
    version: str | None = (driver.status().get("stable") or {}).get("version")
    return version


@dataclass
class TickerDriver:
    """The real ticker over the fakes, on a simulated clock: `until` ticks one simulated second
    at a time; a timeout is in simulated seconds."""

    world: FakeWorld = field(default_factory=FakeWorld)
    namespace: str = "ml"
    name: str = "fraud-detector"
    now: datetime = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
    ticker: Ticker = field(init=False)

    def __post_init__(self) -> None:
        self.ticker = self.world.ticker()

    def apply(self, manifest: Manifest) -> None:
        self.world.cluster.add(copy.deepcopy(manifest), self.namespace)
        self._tick()

    def command(self, kind: CommandKind) -> None:
        said = encode(new_command(kind, user="story"))
        self.world.cluster.annotate(self.namespace, self.name, {COMMAND_ANNOTATION: said})
        self._tick()

    def status(self) -> dict[str, Any]:
        return self.world.cluster.status(self.namespace, self.name)

    def canary_weight(self) -> int | None:
        return self.world.routes.weights.get((self.namespace, self.name))

    def until(self, what: str, predicate: Callable[[], bool], timeout: float = 90) -> None:
        for _ in range(int(timeout)):
            if predicate():
                return
            self.now += timedelta(seconds=1)
            self._tick()
        if not predicate():
            raise AssertionError(f"never, in {timeout:g} simulated s: {what}\n{self.status()}")

    def _tick(self) -> None:
        self.ticker.run(self.namespace, self.name, self.now)


# -- stories told on every driver --------------------------------------------------------------


def promoted_through_its_steps(driver: Driver, v1: Manifest, v2: Manifest) -> None:
    """A healthy new version takes 50%, is analysed, and is promoted; the canary's weight ends
    at 0 with everything on the new stable."""
    (given(driver).rollout(v1).stable("v1")
     .when().apply(v2).wait_for_weight(50)
     .then().phase("Progressing").stable("v1")
     .when().wait_for_stable("v2")
     .then().phase("Promoted").canary_weight(0))  # fmt: skip


def aborted_at_once(driver: Driver, v1: Manifest, v2: Manifest) -> None:
    """A human aborts a canary at 50%: rolled back at once, saying who, with no canary traffic."""
    (given(driver).rollout(v1).stable("v1")
     .when().apply(v2).wait_for_weight(50).command("abort").wait_for_phase("RolledBack")
     .then().stable("v1").message("aborted by")
     .when().wait_for_weight(0))  # fmt: skip


__all__ = [
    "Driver",
    "Given",
    "Then",
    "TickerDriver",
    "When",
    "aborted_at_once",
    "given",
    "promoted_through_its_steps",
]
