"""Human commands travel as one annotation on the ModelRollout (never in spec, so Git stays the
only author of the desired state): JSON with an id, the kind and the acting user."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import get_args

from modelrollout.domain.machine import Command, CommandKind

COMMAND_ANNOTATION = "modelrollout.io/command"


def new_command(kind: CommandKind, user: str = "") -> Command:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Command(id=f"{stamp}-{uuid.uuid4().hex[:8]}", kind=kind, user=user)


def encode(command: Command) -> str:
    return json.dumps({"id": command.id, "kind": command.kind, "user": command.user})


def decode(raw: str | None) -> Command | None:
    """The command in an annotation's value; None when absent or malformed."""
    if not raw:
        return None
    try:
        data = json.loads(raw)
        kind = data["kind"]
        if kind not in get_args(CommandKind):
            return None
        return Command(id=str(data["id"]), kind=kind, user=str(data.get("user", "")))
    except (ValueError, KeyError, TypeError):
        return None
