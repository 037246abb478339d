"""The scheduler: one queue entry per rollout, due by pokes and timers, never ticked twice at
once, and no thread held by an idle rollout."""

from __future__ import annotations

import threading
import time

from modelrollout.controller.scheduler import Scheduler


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_earliest_due_rollout_goes_first_and_a_poke_only_brings_it_forward() -> None:
    clock, done = Clock(), []
    scheduler: Scheduler[str] = Scheduler(lambda key: done.append(key) or None, clock=clock)
    scheduler.poke("late", 10)
    scheduler.poke("soon", 5)
    scheduler.poke("late", 20)  # later than it already is: no change
    assert len(scheduler) == 2
    clock.now = 6
    assert scheduler._next() == "soon"
    scheduler.run_one("soon")
    clock.now = 11
    assert scheduler._next() == "late"
    scheduler.run_one("late")
    assert done == ["soon", "late"]
    assert len(scheduler) == 0


def test_a_poke_while_ticking_ticks_again_after_and_a_forget_ends_it() -> None:
    clock = Clock()
    scheduler: Scheduler[str] = Scheduler(lambda _key: 100.0, clock=clock)
    scheduler.poke("a")
    assert scheduler._next() == "a"
    scheduler.poke("a")  # while it is being ticked
    assert len(scheduler) == 1
    scheduler.run_one("a")  # wants 100 s, but was poked: due now
    assert scheduler._next() == "a"
    scheduler.forget("a")  # deleted while ticking
    scheduler.run_one("a")
    assert len(scheduler) == 0


def test_a_thousand_rollouts_share_a_few_threads_and_none_is_ticked_twice_at_once() -> None:
    active: set[int] = set()
    overlaps, ticks = [], []
    lock = threading.Lock()

    def work(key: int) -> float | None:
        with lock:
            if key in active:
                overlaps.append(key)
            active.add(key)
        time.sleep(0.0005)
        with lock:
            active.discard(key)
            ticks.append(key)
        return None

    scheduler: Scheduler[int] = Scheduler(work, workers=4)
    before = threading.active_count()
    scheduler.start()
    for key in range(1000):
        scheduler.poke(key)
        scheduler.poke(key)  # a second event for the same rollout: still one entry
    deadline = time.monotonic() + 30
    while len(ticks) < 1000 and time.monotonic() < deadline:
        time.sleep(0.01)
    threads = threading.active_count() - before
    scheduler.stop()
    assert sorted(ticks) == list(range(1000))
    assert overlaps == []
    assert threads == 4
