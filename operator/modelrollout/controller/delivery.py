"""The sender of the durable outbox (domain/outbox.py): outside every tick, it delivers each
rollout's notices to each receiver in order, one receiver never waiting on another, with back-off
on failure that honours Retry-After, and reports how far it got for the next tick to record.

The tick only `offer`s what status holds (never blocks on a receiver); `progress` tells what was
delivered. A notice fails for one receiver and holds only that receiver, which tries it again
(1 s, 2 s, 4 s... at most MAX_DELAY, or when the receiver said to) until it is taken.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from modelrollout.analysis import notifications as webhooks
from modelrollout.api.v1alpha1 import Notice, Notifications, NotificationsStatus, Webhook
from modelrollout.controller import metrics
from modelrollout.domain.machine import timestamp
from modelrollout.domain.outbox import Progress, first_place
from modelrollout.k8s.owner import Owner

log = logging.getLogger(__name__)
FIRST_DELAY, MAX_DELAY = 1.0, 300.0
Secrets = Callable[[str, str], dict[str, str]]  # (namespace, name) -> a Secret's data
Post = Callable[[str, bytes, str, str | None], webhooks.Answer]


@dataclass
class _Sink:
    owner: Owner
    hook: Webhook
    delivered: int
    notices: dict[int, Notice] = field(default_factory=dict)
    failures: int = 0
    last_error: str | None = None
    next_attempt: float = 0.0  # monotonic
    next_attempt_at: str | None = None  # the same, as status says it
    busy: bool = False

    def next(self) -> Notice | None:
        later = [seq for seq in self.notices if seq > self.delivered]
        return self.notices[min(later)] if later else None


class Sender:
    def __init__(self, secrets: Secrets, *, workers: int = 4, post: Post = webhooks.post,
                 clock: Callable[[], float] = time.monotonic,
                 first_delay: float = FIRST_DELAY) -> None:  # fmt: skip
        self._secrets = secrets
        self._first_delay = first_delay
        self._post = post
        self._clock = clock
        self._sinks: dict[tuple[str, str, str], _Sink] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopped = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="deliver")
        self._thread: threading.Thread | None = None

    # -- what the tick calls (never blocks on a receiver) -----------------------------------------

    def offer(self, owner: Owner, notifications: Notifications | None,
              outbox: NotificationsStatus | None) -> None:  # fmt: skip
        """The notices status holds now, for every receiver the spec names."""
        hooks = notifications.webhooks if notifications is not None else []
        recorded = {s.name: s.delivered for s in (outbox.sinks if outbox else [])}
        pending = outbox.pending if outbox is not None else []
        start = first_place(outbox)
        with self._lock:
            names = set()
            for hook in hooks:
                key = (owner.namespace, owner.name, hook.sink)
                names.add(key)
                sink = self._sinks.get(key)
                if sink is None:
                    sink = _Sink(owner, hook, recorded.get(hook.sink, start))
                    self._sinks[key] = sink
                sink.hook, sink.owner = hook, owner
                sink.delivered = max(sink.delivered, recorded.get(hook.sink, 0))
                for notice in pending:
                    if notice.seq > sink.delivered:
                        sink.notices.setdefault(notice.seq, notice)
            for key in [k for k in self._sinks if k[:2] == (owner.namespace, owner.name)]:
                if key not in names:
                    del self._sinks[key]
        self._wake.set()

    def progress(self, owner: Owner) -> dict[str, Progress]:
        with self._lock:
            return {
                sink.hook.sink: Progress(
                    delivered=sink.delivered, failures=sink.failures,
                    last_error=sink.last_error,
                    next_attempt_at=sink.next_attempt_at if sink.failures else None,
                )
                for key, sink in self._sinks.items()
                if key[:2] == (owner.namespace, owner.name)
            }  # fmt: skip

    def forget(self, namespace: str, name: str) -> None:
        with self._lock:
            for key in [k for k in self._sinks if k[:2] == (namespace, name)]:
                del self._sinks[key]

    # -- delivering ------------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="notifications", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopped.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _run(self) -> None:
        while not self._stopped.is_set():
            self._wake.clear()
            soonest = self.dispatch()
            self._wake.wait(min(1.0, soonest) if soonest is not None else 1.0)

    def dispatch(self) -> float | None:
        """Hand each receiver that has a notice due to a worker; seconds until the next one."""
        now, soonest = self._clock(), None
        with self._lock:
            for sink in self._sinks.values():
                if sink.busy or sink.next() is None:
                    continue
                if sink.next_attempt > now:
                    wait = sink.next_attempt - now
                    soonest = wait if soonest is None else min(soonest, wait)
                    continue
                sink.busy = True
                self._pool.submit(self._drain, sink)
        metrics.pending(self.backlog())
        return soonest

    def backlog(self) -> dict[tuple[str, str, str], int]:
        with self._lock:
            return {key: sum(1 for seq in sink.notices if seq > sink.delivered)
                    for key, sink in self._sinks.items()}  # fmt: skip

    def drain_now(self) -> None:
        """Deliver what is due on the caller's thread (tests)."""
        with self._lock:
            due = [s for s in self._sinks.values() if not s.busy and s.next() is not None
                   and s.next_attempt <= self._clock()]  # fmt: skip
            for sink in due:
                sink.busy = True
        for sink in due:
            self._drain(sink)

    def _drain(self, sink: _Sink) -> None:
        """Deliver this receiver's notices in order until one fails or none is left."""
        try:
            while not self._stopped.is_set():
                with self._lock:
                    notice = sink.next()
                if notice is None:
                    return
                answer = self._deliver(sink, notice)
                with self._lock:
                    if answer.ok:
                        sink.delivered = max(sink.delivered, notice.seq)
                        sink.notices = {s: n for s, n in sink.notices.items() if s > sink.delivered}
                        sink.failures, sink.last_error = 0, None
                        continue
                    sink.failures += 1
                    sink.last_error = answer.error
                    delay = min(MAX_DELAY, self._first_delay * 2 ** (sink.failures - 1))
                    wait = max(delay, answer.retry_after or 0.0)
                    sink.next_attempt = self._clock() + wait
                    sink.next_attempt_at = timestamp(datetime.now(UTC) + timedelta(seconds=wait))
                    return
        finally:
            with self._lock:
                sink.busy = False
            self._wake.set()

    def _deliver(self, sink: _Sink, notice: Notice) -> webhooks.Answer:
        owner, hook = sink.owner, sink.hook
        kind = webhooks.event_of(notice)
        if hook.events is not None and kind not in hook.events:
            return webhooks.Answer(True)  # not subscribed: passed over, in order
        try:
            body, content_type = webhooks.encode(hook, notice, namespace=owner.namespace,
                                                 name=owner.name)  # fmt: skip
            signature = None
            if hook.secret_ref is not None:
                data = self._secrets(owner.namespace, hook.secret_ref.name)
                if hook.secret_ref.key not in data:
                    raise KeyError(f"Secret {hook.secret_ref.name} has no key "
                                   f"{hook.secret_ref.key}")  # fmt: skip
                signature = webhooks.sign(body, data[hook.secret_ref.key])
            answer = self._post(hook.url, body, content_type, signature)
        except Exception as error:  # a missing Secret, say: this receiver waits, and says why
            answer = webhooks.Answer(False, str(error)[:300])
        metrics.notified(owner.namespace, owner.name, hook.sink, kind,
                         "delivered" if answer.ok else "failed")  # fmt: skip
        if answer.ok:
            metrics.delivery_latency(_age(notice.at))
        else:
            log.warning("%s/%s: notifying %s of %s failed: %s", owner.namespace, owner.name,
                        hook.sink, notice.id, answer.error)  # fmt: skip
        return answer


def _age(at: str) -> float:
    try:
        return max(0.0, (datetime.now(UTC) - datetime.fromisoformat(at)).total_seconds())
    except ValueError:
        return 0.0
