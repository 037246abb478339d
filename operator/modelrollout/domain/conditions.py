"""How status says when and what: timestamps, and conditions whose transition time changes only
when their status does. Shared by the step machine and the A/B/n phase."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from modelrollout.api.v1alpha1 import Condition, ModelRolloutStatus


def timestamp(moment: datetime) -> str:
    """How times are written in status: RFC 3339 in UTC, to the second."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def with_condition(s: ModelRolloutStatus, kind: str, value: Literal["True", "False"], *,
                   reason: str, now: str, message: str = "") -> ModelRolloutStatus:  # fmt: skip
    """Set one condition; its transition time changes only when its status does."""
    kept = [c for c in s.conditions if c.type != kind]
    old = next((c for c in s.conditions if c.type == kind), None)
    since = old.last_transition_time if old is not None and old.status == value else now
    new = Condition(type=kind, status=value, reason=reason, message=message,
                    last_transition_time=since)  # fmt: skip
    return s.edit(conditions=sorted([*kept, new], key=lambda c: c.type))


__all__ = ["timestamp", "with_condition"]
