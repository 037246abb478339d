"""The traffic router interface: set the canary's weight and read it back.

One module per router (gateway_api; istio and replicas later), all behind this small surface.
What a router creates is owned by the rollout, so deleting the rollout removes it.
"""

from __future__ import annotations

from typing import Protocol


class RouterError(RuntimeError):
    """The router could not set or read the weight; the message says why and where, and
    `status` is the API server's HTTP status when it refused (403: the role lacks a rule)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class Router(Protocol):
    def set_weight(self, canary_weight: int) -> str | None:
        """Route `canary_weight`% to the canary Service and the rest to the stable one. Says,
        in words, when it put back a weight another writer had changed; None otherwise."""

    def read_weight(self) -> int | None:
        """The canary weight the routing object carries now, or None when it does not exist."""
