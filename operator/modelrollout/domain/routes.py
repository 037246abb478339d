"""The traffic plan, rendered from the world the status asks for on every tick (docs/arms.md):
rules, first match wins, each with weighted backends (Services). A router compiles it to its
objects and reads back the plan in effect; nothing is issued as a one-shot action, so a restart
renders the same plan again and loses nothing.

One rule without a match: the stable and canary Services (two arms), or in an A/B/n phase the
champion and each candidate. Cohorts add rules before it: a header or cookie cohort's to the
canary; sticky buckets' treatment rule to the canary and control rule to the stable, each
stamping its arm's version on the requests it takes (cohorts.ARM_HEADER). A shadow step mirrors
`share`% of a rule's requests to the comparator: the catch-all rule's, or, with a match, those of
a rule of its own before it, with the same backends.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from modelrollout.api.v1alpha1 import Cohort
from modelrollout.domain.cohorts import HeaderRegex, Matches, bucket_matches, compile_cohort
from modelrollout.domain.machine import World
from modelrollout.domain.revision import (
    arm_service,
    canary_service,
    comparator_service,
    stable_service,
)


@dataclass(frozen=True)
class Backend:
    service: str
    weight: int


@dataclass(frozen=True)
class Mirror:
    """A copy of `percent`% of a rule's requests goes to `service`, whose answers no one reads."""

    service: str
    percent: int


@dataclass(frozen=True)
class Rule:
    """Requests this rule matches go to its backends by weight: `matches` is a list of
    alternatives (OR), each a list of header conditions (AND); no match: every request that no
    earlier rule took."""

    backends: tuple[Backend, ...]
    matches: Matches = ()
    # the version stamped on the requests it takes (cohorts.ARM_HEADER), for bucket rules
    stamp: str | None = None
    mirror: Mirror | None = None


@dataclass(frozen=True)
class Routes:
    rules: tuple[Rule, ...]

    def split(self) -> dict[str, int]:
        """The catch-all rule's weights by Service (the last rule's)."""
        return {b.service: b.weight for b in self.rules[-1].backends} if self.rules else {}


def two_arms(rollout: str, canary_weight: int) -> Routes:
    """The stable Service takes what the canary does not."""
    return Routes((Rule((Backend(stable_service(rollout), 100 - canary_weight),
                         Backend(canary_service(rollout), canary_weight))),))  # fmt: skip


def routes_of(rollout: str, world: World) -> Routes:
    """The plan for a world: its arms by their Services when it has arms (A/B/n), else two;
    a cohort's rule first, when one is in effect."""
    if not world.arms:
        plan = two_arms(rollout, world.weight)
        if world.shadow is not None and world.canary is not None:
            return _mirrored(rollout, world, plan)
        if world.cohort is None or world.canary is None:
            return plan
        if world.cohort.buckets is None:
            cohort = Rule((Backend(canary_service(rollout), 100),), compile_cohort(world.cohort))
            return Routes((cohort, *plan.rules))
        stable, canary = world.versions or (None, None)
        treatment, control = bucket_matches(world.cohort.buckets)
        return Routes((Rule((Backend(canary_service(rollout), 100),), treatment, canary),
                       Rule((Backend(stable_service(rollout), 100),), control, stable),
                       *plan.rules))  # fmt: skip
    return Routes((Rule(tuple(Backend(service_of(rollout, world, revision), weight)
                              for revision, weight in world.arms)),))  # fmt: skip


def _mirrored(rollout: str, world: World, plan: Routes) -> Routes:
    """The shadow step's plan: the split as it is, and its share mirrored to the comparator, of
    every request or of those that match its `match`."""
    shadow = world.shadow
    if shadow is None:
        return plan
    mirror = Mirror(comparator_service(rollout), shadow.share)
    (catch_all,) = plan.rules
    if not shadow.match:
        return Routes((replace(catch_all, mirror=mirror),))
    matches = compile_cohort(Cohort(match=shadow.match))
    return Routes((replace(catch_all, matches=matches, mirror=mirror), catch_all))


def mirror_of(in_effect: Routes | None) -> Mirror | None:
    """The mirror the plan in effect carries, if any."""
    rules = in_effect.rules if in_effect is not None else ()
    return next((r.mirror for r in rules if r.mirror is not None), None)


def service_of(rollout: str, world: World, revision: str) -> str:
    """The Service that selects an arm's pods: the stable Service for the champion, else
    NAME-armN by the arm's place among the world's arms."""
    if revision == world.stable:
        return stable_service(rollout)
    index = [r for r, _ in world.arms if r != world.stable].index(revision)
    return arm_service(rollout, index + 1)


def cohorts(in_effect: Routes | None) -> frozenset[Matches]:
    """The matches of the rules that send a cohort somewhere, in the plan in effect."""
    return frozenset(r.matches for r in in_effect.rules if r.matches) if in_effect else frozenset()


def canary_weight(routes: Routes | None, rollout: str) -> int | None:
    """The canary's weight in the plan in effect; None when there is none."""
    if routes is None:
        return None
    return routes.split().get(canary_service(rollout))


def shares(routes: Routes | None, rollout: str, world: World) -> dict[str, int] | None:
    """Each arm's weight in the plan in effect, by revision; None when there is no plan."""
    if routes is None:
        return None
    split = routes.split()
    return {revision: split.get(service_of(rollout, world, revision), 0)
            for revision, _ in world.arms}  # fmt: skip


__all__ = [
    "Backend",
    "HeaderRegex",
    "Mirror",
    "Routes",
    "Rule",
    "canary_weight",
    "cohorts",
    "compile_cohort",
    "mirror_of",
    "routes_of",
    "shares",
    "two_arms",
]
