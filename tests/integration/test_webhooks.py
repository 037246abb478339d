"""Notifications on the wire against a real local HTTP receiver: the encodings, the signature,
Retry-After, and the sender's order and retries."""

from __future__ import annotations

import hashlib
import hmac
import time

from modelrollout.analysis import notifications as webhooks
from modelrollout.api.v1alpha1 import Notice, Notifications, NotificationsStatus, Webhook
from modelrollout.controller.delivery import Sender
from modelrollout.k8s.owner import Owner
from modelrollout.testing.processes import free_ports
from modelrollout.testing.webhooks import Receiver

OWNER = Owner("fraud", "ml", "uid-1")


def notice(
    seq: int, reason: str = "RolledBack", message: str = "signal errors: 0.2 > 0.01"
) -> Notice:
    return Notice(seq=seq, id=f"uid-1-{seq}", reason=reason, message=message,
                  at="2026-11-30T12:00:00Z", version="v3", severity="Warning")  # fmt: skip


def send(receiver: Receiver, hook: Webhook, n: Notice) -> webhooks.Answer:
    body, kind = webhooks.encode(hook, n, namespace="ml", name="fraud")
    return webhooks.post(hook.url, body, kind)


def test_a_cloud_event_carries_the_attributes_the_spec_requires(receiver: Receiver) -> None:
    hook = Webhook(url=receiver.url, format="cloudEvents")
    assert send(receiver, hook, notice(7)).ok
    (event,) = receiver.received
    assert event["specversion"] == "1.0"
    assert event["id"] == "uid-1-7"
    assert event["source"] == "/apis/modelrollout.io/v1alpha1/namespaces/ml/modelrollouts/fraud"
    assert event["type"] == "io.modelrollout.rollout.rolledback.v1"
    assert event["sequence"] == "7"
    assert event["data"]["message"] == "signal errors: 0.2 > 0.01"
    assert receiver.raw[0][1]["Content-Type"].startswith("application/cloudevents+json")


def test_a_signed_body_verifies_with_the_shared_key(receiver: Receiver) -> None:
    hook = Webhook(url=receiver.url, format="json")
    body, kind = webhooks.encode(hook, notice(1), namespace="ml", name="fraud")
    assert webhooks.post(hook.url, body, kind, webhooks.sign(body, "s3cret")).ok
    raw, headers = receiver.raw[0]
    expected = hmac.new(b"s3cret", raw, hashlib.sha256).hexdigest()
    assert headers[webhooks.SIGNATURE_HEADER] == f"sha256={expected}"


def test_slack_gets_one_line_of_text(receiver: Receiver) -> None:
    assert send(receiver, Webhook(url=receiver.url, format="slack"), notice(2)).ok
    assert receiver.received == [
        {"text": ":warning: *ml/fraud* RolledBack (v3): signal errors: 0.2 > 0.01"}]  # fmt: skip


def test_a_refusal_says_how_long_to_wait_and_a_closed_port_is_an_error() -> None:
    busy = Receiver(failing=1, retry_after="7")
    try:
        answer = send(busy, Webhook(url=busy.url), notice(1))
        assert (answer.ok, answer.retry_after) == (False, 7.0)
        assert "HTTP 503" in (answer.error or "")
    finally:
        busy.close()
    (closed,) = free_ports(1)
    answer = send(busy, Webhook(url=f"http://127.0.0.1:{closed}/x"), notice(1))
    assert not answer.ok
    assert "Connection" in (answer.error or "")


def test_a_receiver_failing_three_times_then_recovering_gets_every_notice_once_in_order() -> None:
    receiver = Receiver(failing=3, retry_after="0")
    sender = Sender(lambda _ns, _name: {}, first_delay=0.05)
    sender.start()
    try:
        hooks = Notifications(webhooks=[Webhook(url=receiver.url)])
        box = NotificationsStatus(sequence=5, pending=[notice(i) for i in range(1, 6)])
        sender.offer(OWNER, hooks, box)
        deadline = time.monotonic() + 30
        while len(receiver.received) < 5 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert receiver.refused == 3
        assert [r["sequence"] for r in receiver.received] == [1, 2, 3, 4, 5]
        # offered again (the next tick), nothing is sent twice
        sender.offer(OWNER, hooks, box)
        time.sleep(0.5)
        assert len(receiver.received) == 5
        assert sender.progress(OWNER)[receiver.url].delivered == 5
    finally:
        sender.stop()
        receiver.close()
