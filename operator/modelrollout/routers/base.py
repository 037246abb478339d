"""The traffic router interface: put the traffic plan (domain/routes.py) in place, read back the
plan in effect, say whether the routing controller accepted it, and shape the world the
rollout asks for.

One module per router, each a line in routers/registry.py. What a router creates is owned by the
rollout, so deleting the rollout removes it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from modelrollout.api.v1alpha1 import Capability
from modelrollout.domain.machine import World
from modelrollout.domain.routes import Routes


class RouterError(RuntimeError):
    """The router could not set or read the weight; the message says why and where, and
    `status` is the API server's HTTP status when it refused (403: the role lacks a rule)."""

    def __init__(self, message: str, status: int | None = None, *,
                 terminating: bool = False) -> None:  # fmt: skip
        super().__init__(message)
        self.status = status
        self.terminating = terminating  # the namespace is being deleted


@dataclass(frozen=True)
class Acceptance:
    """`accepted`: the routing controller accepted the route at its current generation, so the
    weight it carries is in effect (a step's weight counts only then). `refused`: why the route
    is not in effect, in the controller's words, or that no controller accepted it within the
    router's deadline; None while it is in effect or may still be accepted."""

    accepted: bool
    refused: str | None = None


class Router(Protocol):
    # what it can express: its spec model's CAPABILITIES (api/v1alpha1/traffic.py), which
    # admission checks the steps against
    capabilities: frozenset[Capability]

    def apply(self, routes: Routes) -> str | None:
        """Put `routes` in place (rendered every tick: a plan already in place costs no write).
        Says, in words, when it put back what another writer had changed; None otherwise."""

    def read(self) -> Routes | None:
        """The plan the routing object carries now, or None when it does not exist."""

    def acceptance(self, now: datetime) -> Acceptance:
        """What the routing controller says of the route at `now`, from one read of it."""

    def refuses(self, routes: Routes) -> str | None:
        """Why its data plane cannot carry `routes` (a mirror its gateway does not implement),
        naming what is missing where; None when it can. `apply` then leaves that part out."""

    def shape(self, world: World) -> World:
        """The world as this router needs it (a replica-ratio router sizes the revisions by
        the weight and serves both from one Service); most routers leave it as it is."""


__all__ = ["Acceptance", "Capability", "Router", "RouterError"]
