"""The traffic router interface: set the canary's weight, read it back, say whether the routing
controller accepted it, and shape the world the rollout asks for.

One module per router, each a line in routers/registry.py. What a router creates is owned by the
rollout, so deleting the rollout removes it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Protocol

from modelrollout.domain.machine import World


class Capability(StrEnum):
    """What a router can do with requests, so that steps needing more are refused up front."""

    WEIGHTS = "weights"  # split by percentage
    HEADERS = "headers"  # send requests matching a header to the canary
    MIRROR = "mirror"  # copy requests to the canary, answers discarded


class RouterError(RuntimeError):
    """The router could not set or read the weight; the message says why and where, and
    `status` is the API server's HTTP status when it refused (403: the role lacks a rule)."""

    def __init__(self, message: str, status: int | None = None, *,
                 terminating: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.terminating = terminating  # the namespace is being deleted


class Router(Protocol):
    capabilities: frozenset[Capability]

    def set_weight(self, canary_weight: int) -> str | None:
        """Route `canary_weight`% to the canary and the rest to stable. Says, in words, when it
        put back a weight another writer had changed; None otherwise."""

    def read_weight(self) -> int | None:
        """The canary weight the routing object carries now, or None when it does not exist."""

    def refusal(self, now: datetime) -> str | None:
        """Why the route is not in effect at `now`: the routing controller refuses it at its
        current generation (in its own words), or no controller has accepted it within the
        router's deadline; None when it is in effect, or may still be accepted."""

    def accepted(self) -> bool:
        """Whether the routing controller accepted the route at its current generation, so the
        weight it carries is in effect; a step's weight counts only then."""

    def shape(self, world: World) -> World:
        """The world as this router needs it (a replica-ratio router sizes the revisions by
        the weight and serves both from one Service); most routers leave it as it is."""
