"""How traffic reaches the arms: one field per router the operator implements, each a model that
states what its router can do (its capabilities), so that a spec asking for more than its router
can express is refused at admission, naming the router and the field."""

from __future__ import annotations

import typing
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import ConfigDict, Field
from pydantic.alias_generators import to_snake

from modelrollout.api.v1alpha1.rules import Model, Rule, Ruled, exactly_one, ruled


class Capability(StrEnum):
    """What a router can do with requests, so that steps needing more are refused up front."""

    WEIGHTS = "weights"  # split by percentage
    HEADERS = "headers"  # send requests matching a header (and so a cookie) to an arm
    MIRROR = "mirror"  # copy requests to an arm, answers discarded


class RouterSpec(Model):
    """A router's field under spec.traffic. CAPABILITIES: what the router can express; a step
    that needs another (NEEDS) is refused at admission for a spec that names this router."""

    CAPABILITIES: ClassVar[frozenset[Capability]] = frozenset({Capability.WEIGHTS})


@dataclass(frozen=True)
class Need:
    """A step that needs a capability: `step` is its field (as the API names it)."""

    step: str
    capability: Capability
    words: str


NEEDS = (
    Need("cohort", Capability.HEADERS, "match requests by header or cookie"),
    Need("shadow", Capability.MIRROR, "copy requests to an arm that answers no user"),
)


class ParentRef(Model):
    name: str = Field(max_length=253, min_length=1)
    namespace: str | None = Field(default=None, max_length=63)
    group: str | None = Field(default=None, max_length=253)
    kind: str | None = Field(default=None, max_length=63)
    section_name: str | None = Field(default=None, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)


class GatewayAPITraffic(RouterSpec):
    CAPABILITIES = frozenset({Capability.WEIGHTS, Capability.HEADERS, Capability.MIRROR})
    parent_refs: list[ParentRef] = Field(min_length=1, max_length=32)
    hostnames: list[str] | None = Field(default=None, max_length=16)


class Traffic(Ruled):
    """Which router carries the arms' shares: one field per router the operator implements
    (routers/registry.py), and only those; the schema refuses any other."""

    RULES = (exactly_one("traffic", "gatewayAPI"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    gateway_api: GatewayAPITraffic | None = Field(default=None, alias="gatewayAPI")


def routers() -> dict[str, type[RouterSpec]]:
    """The routers spec.traffic names, by their key, from Traffic's fields."""
    found = {}
    for name, field in Traffic.model_fields.items():
        for kind in typing.get_args(field.annotation) or (field.annotation,):
            if isinstance(kind, type) and issubclass(kind, RouterSpec):
                found[field.alias or name] = kind
    return found


def _refuses(key: str, need: Need) -> Any:
    def holds(spec: Any) -> bool:
        named = getattr(spec.traffic, to_snake(key), None) is not None
        return not named or all(getattr(s, need.step) is None for s in spec.strategy.steps)

    return holds


def capability_rules(plugged: dict[str, type[RouterSpec]]) -> tuple[Rule, ...]:
    """For each router and each step it cannot express, a rule on the whole spec refusing that
    step while spec.traffic names the router; the message names the router and the field."""
    rules = []
    for key, kind in plugged.items():
        can = ", ".join(sorted(kind.CAPABILITIES))
        for need in NEEDS:
            if need.capability in kind.CAPABILITIES:
                continue
            rules.append(Rule(
                f"!has(self.traffic.{key}) || !self.strategy.steps.exists(s, has(s.{need.step}))",
                _refuses(key, need),
                f"spec.strategy.steps[].{need.step}: the router traffic.{key} cannot "
                f"{need.words} (it can: {can})", ".strategy.steps"))  # fmt: skip
    return tuple(rules)


__all__ = [
    "NEEDS",
    "Capability",
    "GatewayAPITraffic",
    "Need",
    "ParentRef",
    "RouterSpec",
    "Traffic",
    "capability_rules",
    "routers",
]
