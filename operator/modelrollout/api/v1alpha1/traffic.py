"""How traffic reaches the canary: one field per router the operator implements."""

from __future__ import annotations

from pydantic import ConfigDict, Field

from modelrollout.api.v1alpha1.rules import Model, Ruled, exactly_one, ruled


class ParentRef(Model):
    name: str = Field(max_length=253, min_length=1)
    namespace: str | None = Field(default=None, max_length=63)
    group: str | None = Field(default=None, max_length=253)
    kind: str | None = Field(default=None, max_length=63)
    section_name: str | None = Field(default=None, max_length=253)
    port: int | None = Field(default=None, ge=1, le=65535)


class GatewayAPITraffic(Model):
    parent_refs: list[ParentRef] = Field(min_length=1, max_length=32)
    hostnames: list[str] | None = Field(default=None, max_length=16)


class Traffic(Ruled):
    """Which router carries the canary's share: one field per router the operator implements
    (routers/registry.py), and only those; the schema refuses any other."""

    RULES = (exactly_one("traffic", "gatewayAPI"),)
    model_config = ConfigDict(json_schema_extra=ruled(*RULES))
    gateway_api: GatewayAPITraffic | None = Field(default=None, alias="gatewayAPI")
