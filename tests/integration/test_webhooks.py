"""Webhook notifications against a real local HTTP receiver."""

from __future__ import annotations

from modelrollout.analysis.webhooks import notify, payload
from modelrollout.api.v1alpha1 import Notifications
from modelrollout.testing.processes import free_ports
from modelrollout.testing.webhooks import Receiver


def hooks(*entries: dict[str, object]) -> Notifications:
    return Notifications.model_validate({"webhooks": list(entries)})


def test_a_rollback_is_posted_with_its_reason(receiver: Receiver) -> None:
    body = payload("ml", "fraud", "RolledBack", "signal error-rate: 0.2 above max 0.01", "v3")
    assert notify(hooks({"url": receiver.url}), body) == 1
    assert receiver.received == [
        {"rollout": "ml/fraud", "event": "RolledBack",
         "message": "signal error-rate: 0.2 above max 0.01", "version": "v3"}
    ]  # fmt: skip


def test_only_subscribed_events_are_sent(receiver: Receiver) -> None:
    subscribed = hooks({"url": receiver.url, "events": ["RolledBack"]})
    assert notify(subscribed, payload("ml", "fraud", "Promoted", "done", "v2")) == 0
    assert notify(subscribed, payload("ml", "fraud", "StepAdvanced", "step 1", "v2")) == 0
    assert receiver.received == []


def test_a_failing_receiver_is_survived() -> None:
    broken = Receiver(status=500)
    (closed,) = free_ports(1)
    try:
        both = hooks({"url": broken.url}, {"url": f"http://127.0.0.1:{closed}/nobody"})
        assert notify(both, payload("ml", "fraud", "Paused", "inconclusive", "v2")) == 0
        assert len(broken.received) == 1
    finally:
        broken.close()


def test_a_new_canary_reaches_those_subscribed_to_progressing(receiver: Receiver) -> None:
    # The machine's Event reason for a new canary is CanaryStarted; api.md's webhook event is
    # Progressing, and that is what a subscriber names and receives.
    subscribed = hooks({"url": receiver.url, "events": ["Progressing"]})
    body = payload("ml", "fraud", "CanaryStarted", "revision abc (v2) is the canary", "v2")
    assert notify(subscribed, body) == 1
    assert [(r["event"], r["version"]) for r in receiver.received] == [("Progressing", "v2")]
