"""The durable outbox: notices numbered with the decision, coalesced, bounded, trimmed once
every receiver has them; and the sender's order, back-off and Retry-After, on a clock it owns."""

from __future__ import annotations

from modelrollout.analysis.notifications import Answer
from modelrollout.api.v1alpha1 import Notifications, NotificationsStatus, Webhook
from modelrollout.controller.delivery import Sender
from modelrollout.domain.machine import Event
from modelrollout.domain.outbox import CAPACITY, Progress, enqueue, fold
from modelrollout.k8s.owner import Owner

OWNER = Owner("fraud", "ml", "uid-1")
HOOKS = Notifications(webhooks=[Webhook(url="http://a/hook", name="a"),
                                Webhook(url="http://b/hook", events=["RolledBack"])])  # fmt: skip


def told(box: NotificationsStatus | None, *events: Event) -> NotificationsStatus:
    out = enqueue(box, events, uid="uid-1", at="2026-11-30T12:00:00Z", version="v2",
                  notifications=HOOKS)  # fmt: skip
    assert out is not None
    return out


def test_wanted_events_are_numbered_and_ids_are_stable() -> None:
    box = told(None, Event("Normal", "CanaryStarted", "v2"), Event("Normal", "StepAdvanced", "1"),
               Event("Warning", "RolledBack", "errors"))  # fmt: skip
    # StepAdvanced is no webhook event: not a notice
    assert [(n.seq, n.id, n.reason) for n in box.pending] == [
        (1, "uid-1-1", "CanaryStarted"), (2, "uid-1-2", "RolledBack")]  # fmt: skip
    assert box.pending[1].severity == "Warning"


def test_a_repeated_state_is_told_once_and_an_unwanted_alarm_not_at_all() -> None:
    box = told(None, Event("Normal", "Paused", "inconclusive"))
    box = told(box, Event("Normal", "Paused", "inconclusive"))
    assert box.sequence == 1
    box = told(box, Event("Warning", "MonitorAlarm", "drift", notify=False))
    assert box.sequence == 1


def test_a_full_outbox_drops_the_oldest_and_counts_them() -> None:
    box = None
    for i in range(CAPACITY + 7):
        box = told(box, Event("Normal", "Paused", f"pause {i}"))
    assert box is not None
    assert (len(box.pending), box.dropped, box.pending[0].seq) == (CAPACITY, 7, 8)


def test_notices_go_once_every_receiver_has_them_and_places_never_go_back() -> None:
    box = told(None, *(Event("Warning", "RolledBack", f"r{i}") for i in range(3)))
    box = fold(box, HOOKS, {})
    assert box is not None
    assert [(s.name, s.delivered) for s in box.sinks] == [("a", 0), ("http://b/hook", 0)]
    box = fold(box, HOOKS, {"a": Progress(3), "http://b/hook": Progress(1, 2, "HTTP 503")})
    assert box is not None
    assert [n.seq for n in box.pending] == [2, 3]  # b has only the first
    assert box.sinks[1].last_error == "HTTP 503"
    box = fold(box, HOOKS, {"a": Progress(1)})  # a sender restarted: never backwards
    assert box is not None
    assert box.sinks[0].delivered == 3


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_sender_keeps_order_backs_off_and_honours_retry_after() -> None:
    clock, sent = Clock(), []
    answers = [Answer(False, "HTTP 503", 30.0), Answer(False, "HTTP 500"), Answer(True)]

    def post(url: str, body: bytes, kind: str, signature: str | None) -> Answer:
        sent.append(body)
        return answers.pop(0) if answers else Answer(True)

    sender = Sender(lambda _ns, _n: {}, post=post, clock=clock)
    hooks = Notifications(webhooks=[Webhook(url="http://a/hook", name="a")])
    box = told(None, *(Event("Warning", "RolledBack", f"r{i}") for i in range(3)))
    sender.offer(OWNER, hooks, box)
    sender.drain_now()
    assert len(sent) == 1  # refused: nothing after it is sent
    assert sender.progress(OWNER)["a"].failures == 1
    clock.now += 29  # it asked for 30 s
    sender.drain_now()
    assert len(sent) == 1
    clock.now += 1.5
    sender.drain_now()  # second try fails: 2 s back-off now
    assert len(sent) == 2
    clock.now += 2.1
    sender.drain_now()
    assert len(sent) == 5
    assert b'"sequence":1' in sent[2]
    assert b'"sequence":3' in sent[4]
    assert sender.progress(OWNER)["a"] == Progress(3)


def test_a_missing_signing_key_holds_that_receiver_and_says_why() -> None:
    sent: list[bytes] = []

    def post(url: str, body: bytes, kind: str, signature: str | None) -> Answer:
        sent.append(body)
        return Answer(True)

    sender = Sender(lambda _ns, _n: {"other": "x"}, post=post, clock=Clock())
    signed = {"url": "http://a/hook", "name": "a", "secretRef": {"name": "hmac", "key": "key"}}
    hooks = Notifications.model_validate({"webhooks": [signed]})
    sender.offer(OWNER, hooks, told(None, Event("Warning", "RolledBack", "r")))
    sender.drain_now()
    assert sent == []
    assert "has no key key" in (sender.progress(OWNER)["a"].last_error or "")
