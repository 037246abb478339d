"""The durable outbox of notifications, pure: a tick's Events become numbered notices in status
(written with the decision itself, so a decision is never told without being recorded, nor
recorded without being told); a sender outside the tick delivers them to each receiver in order
and reports how far it got, which the next tick folds back into status.

Delivery is at least once: an operator that restarts re-sends, from status, what it had not yet
recorded as delivered, under the same ids (`<uid>-<seq>`), so a receiver drops duplicates by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import (
    WEBHOOK_EVENT_OF_REASON,
    Notice,
    Notifications,
    NotificationsStatus,
    Sink,
)
from modelrollout.domain.machine import Event

CAPACITY = 100  # notices kept for receivers that are behind; older ones are dropped, and counted


def wanted(notifications: Notifications | None, event: Event) -> bool:
    """Whether some receiver subscribes to this Event."""
    if notifications is None or not event.notify:
        return False
    kind = WEBHOOK_EVENT_OF_REASON.get(event.reason)
    return kind is not None and any(
        hook.events is None or kind in hook.events for hook in notifications.webhooks
    )


def enqueue(outbox: NotificationsStatus | None, events: Sequence[Event], *, uid: str, at: str,
            version: str,
            notifications: Notifications | None) -> NotificationsStatus | None:  # fmt: skip
    """The outbox with this tick's wanted Events appended as notices. An Event identical to the
    last notice (reason and message) is coalesced into it: a state repeated tick after tick is
    told once."""
    fresh = [e for e in events if wanted(notifications, e)]
    if not fresh:
        return outbox
    box = outbox or NotificationsStatus()
    pending, sequence = list(box.pending), box.sequence
    for event in fresh:
        last = pending[-1] if pending else None
        if last is not None and (last.reason, last.message) == (event.reason, event.message):
            continue
        sequence += 1
        pending.append(Notice(seq=sequence, id=f"{uid}-{sequence}", reason=event.reason,
                              message=event.message, at=at, version=version,
                              severity=event.type, details=dict(event.details)))  # fmt: skip
    dropped = max(0, len(pending) - CAPACITY)
    return box.model_copy(update={"pending": pending[dropped:], "sequence": sequence,
                                  "dropped": box.dropped + dropped})  # fmt: skip


@dataclass(frozen=True)
class Progress:
    """What the sender reports of one receiver."""

    delivered: int
    failures: int = 0
    last_error: str | None = None
    next_attempt_at: str | None = None


def fold(outbox: NotificationsStatus | None, notifications: Notifications | None,
         progress: dict[str, Progress]) -> NotificationsStatus | None:  # fmt: skip
    """The outbox after what the sender reported: each receiver's place (never going back), and
    the notices every receiver has had dropped. Receivers no longer in the spec are forgotten."""
    if outbox is None:
        return None
    hooks = notifications.webhooks if notifications is not None else []
    known = {s.name: s for s in outbox.sinks}
    sinks = []
    for hook in hooks:
        was = known.get(hook.sink, Sink(name=hook.sink, delivered=first_place(outbox)))
        seen = progress.get(hook.sink)
        if seen is not None:
            was = was.model_copy(update={
                "delivered": max(was.delivered, seen.delivered), "failures": seen.failures,
                "last_error": seen.last_error, "next_attempt_at": seen.next_attempt_at,
            })  # fmt: skip
        sinks.append(was)
    floor = min((s.delivered for s in sinks), default=outbox.sequence)
    pending = [n for n in outbox.pending if n.seq > floor]
    return outbox.model_copy(update={"sinks": sinks, "pending": pending})


def first_place(outbox: NotificationsStatus | None) -> int:
    """Where a receiver added now starts: with what is still pending, not the whole history."""
    if outbox is None:
        return 0
    return outbox.pending[0].seq - 1 if outbox.pending else outbox.sequence


__all__ = ["CAPACITY", "Progress", "enqueue", "first_place", "fold", "wanted"]
