"""The API server's words for a failure, and the field manager the operator applies as."""

from __future__ import annotations

import json
from typing import Protocol

from modelrollout.k8s.owner import ROLLOUT_LABEL, ClusterError, Manifest, Owner

__all__ = ["ROLLOUT_LABEL", "ClusterError", "Manifest", "Owner", "error_message"]

FIELD_MANAGER = "modelrollout"


class Refused(Protocol):
    """An error status from the API server: ours (rest.py `ApiError`) or the official client's."""

    @property
    def status(self) -> int | None: ...
    @property
    def reason(self) -> str | None: ...
    @property
    def body(self) -> str | None: ...


def error_message(error: Refused) -> str:
    """The API server's own message, which names the field or the permission at fault."""
    try:
        text = json.loads(error.body or "{}").get("message", "")
    except ValueError:
        text = ""
    return str(text or error.reason or error.status)
