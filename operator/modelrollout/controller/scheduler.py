"""Which rollout to tick next: a queue keyed by rollout, worked by a bounded pool of threads.

A rollout is in the queue at most once, with the time it is due: now when a watch event asks for
a decision (a spec change, a command, an owned object changing), otherwise when its own timers
say (the end of a step, the next evaluation; at most a resync period away). No thread belongs to
a rollout, so an idle rollout costs a heap entry, and a thousand rollouts share a few threads.
One rollout is never ticked by two threads at once; a poke that comes while it is being ticked
makes it due again as soon as that tick ends.
"""

from __future__ import annotations

import contextvars
import heapq
import itertools
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)
K = TypeVar("K", bound=Hashable)
# Seconds to the next tick, or None when the rollout is gone and needs no more.
Work = Callable[[K], float | None]
RETRY_SECONDS = 5.0  # after a tick that raised, which the ticker itself never lets happen


class Scheduler(Generic[K]):
    def __init__(self, work: Work[K], *, workers: int = 4,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._work = work
        self._workers = max(1, workers)
        self._clock = clock
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, K]] = []
        self._due: dict[K, float] = {}
        self._running: set[K] = set()
        self._again: dict[K, float] = {}  # poked while running: due when the tick ends
        self._gone: set[K] = set()  # forgotten while running: not queued again
        self._order = itertools.count()
        self._threads: list[threading.Thread] = []
        self._stopped = False
        self.lateness: Callable[[float], None] = lambda _seconds: None  # how late ticks start

    # -- feeding ---------------------------------------------------------------------------------

    def poke(self, key: K, delay: float = 0.0) -> None:
        """Make `key` due in `delay` seconds, or sooner if it already is."""
        at = self._clock() + max(0.0, delay)
        with self._cond:
            self._gone.discard(key)
            if key in self._running:
                self._again[key] = min(self._again.get(key, math.inf), at)
                return
            if at < self._due.get(key, math.inf):
                self._due[key] = at
                heapq.heappush(self._heap, (at, next(self._order), key))
                self._cond.notify()

    def forget(self, key: K) -> None:
        with self._cond:
            self._due.pop(key, None)  # its heap entry is skipped when it comes up
            self._again.pop(key, None)
            if key in self._running:
                self._gone.add(key)

    def __len__(self) -> int:
        """Rollouts queued or being ticked."""
        with self._cond:
            return len(self._due) + len(self._running)

    # -- working ---------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the workers, each in a copy of the caller's context (kopf's, to post Events)."""
        for i in range(self._workers):
            body = contextvars.copy_context().run
            thread = threading.Thread(target=body, args=(self._loop,), name=f"tick-{i}",
                                      daemon=True)  # fmt: skip
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads.clear()

    def _next(self) -> K | None:
        """Wait for the next due rollout; None once stopped."""
        with self._cond:
            while not self._stopped:
                now = self._clock()
                while self._heap:
                    at, _, key = self._heap[0]
                    if self._due.get(key) != at:
                        heapq.heappop(self._heap)  # superseded by an earlier poke, or forgotten
                        continue
                    break
                if self._heap and self._heap[0][0] <= now:
                    at, _, key = heapq.heappop(self._heap)
                    del self._due[key]
                    self._running.add(key)
                    self.lateness(now - at)
                    return key
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)
            return None

    def _loop(self) -> None:
        while (key := self._next()) is not None:
            self.run_one(key)

    def run_one(self, key: K) -> None:
        """Tick `key` now, then queue it for when it is next due."""
        try:
            delay = self._work(key)
        except Exception:
            log.exception("ticking %s failed", key)
            delay = RETRY_SECONDS
        with self._cond:
            self._running.discard(key)
            again = self._again.pop(key, None)
            if key in self._gone:
                self._gone.discard(key)
                return
        if again is not None:
            self.poke(key, again - self._clock())
        if delay is not None:
            self.poke(key, delay)
