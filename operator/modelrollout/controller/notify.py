"""Kubernetes Events leave the tick: queued, and posted by a thread of their own.

Best effort: a failed post is logged and counted (`modelrollout_notification_failures_total`),
never retried, and never delays or changes a decision, which status already records. A full
queue drops the oldest unposted Event rather than grow without bound. Notifications to receivers
are durable instead: status's outbox, delivered by controller/delivery.py.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass

from modelrollout.api.v1alpha1 import Notifications
from modelrollout.controller import metrics
from modelrollout.domain.machine import Event
from modelrollout.k8s.owner import Owner

log = logging.getLogger(__name__)
PostEvent = Callable[[Owner, Event], None]
CAPACITY = 10_000


@dataclass(frozen=True)
class _Letter:
    owner: Owner
    event: Event
    notifications: Notifications | None
    version: str


class Outbox:
    def __init__(self, post_event: PostEvent, *, capacity: int = CAPACITY) -> None:
        self._post_event = post_event
        self._queue: queue.Queue[_Letter | None] = queue.Queue(maxsize=capacity)
        self._thread: threading.Thread | None = None

    def send(self, owner: Owner, event: Event, notifications: Notifications | None,
             version: str) -> None:  # fmt: skip
        letter = _Letter(owner, event, notifications, version)
        while True:
            try:
                self._queue.put_nowait(letter)
                return
            except queue.Full:
                try:
                    dropped = self._queue.get_nowait()
                except queue.Empty:
                    continue
                if dropped is not None:
                    log.warning("notification queue full: dropped %s", dropped.event.reason)
                    metrics.notification_failed(dropped.owner.namespace, dropped.owner.name)

    def start(self) -> None:
        """Deliver on a thread of its own, in a copy of the caller's context (kopf's, whose
        Event poster it uses: kopf sets it for its handlers of objects, not at startup).
        Starting again does nothing."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=contextvars.copy_context().run,
                                        args=(self._deliver_all,), name="notifications",
                                        daemon=True)  # fmt: skip
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout)
            self._thread = None

    def drain(self) -> None:
        """Deliver what is queued now, on the caller's thread (tests, shutdown)."""
        while True:
            try:
                letter = self._queue.get_nowait()
            except queue.Empty:
                return
            if letter is not None:
                self.deliver(letter)

    def _deliver_all(self) -> None:
        while (letter := self._queue.get()) is not None:
            self.deliver(letter)

    def deliver(self, letter: _Letter) -> None:
        owner, event = letter.owner, letter.event
        try:
            self._post_event(owner, event)
        except Exception:
            log.exception("%s/%s: could not post the Event %s", owner.namespace, owner.name,
                          event.reason)  # fmt: skip
            metrics.notification_failed(owner.namespace, owner.name)
