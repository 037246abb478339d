"""Notifications: POST a small JSON body to each webhook subscribed to an event.

Delivery is best effort with a short timeout: a failing receiver is logged and never blocks or
changes a rollout (the Event and status already record what happened).
"""

from __future__ import annotations

import logging

import requests

from modelrollout.api.v1alpha1 import WEBHOOK_EVENT_OF_REASON, WEBHOOK_EVENTS, Notifications

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0


def payload(
    namespace: str, name: str, reason: str, message: str, version: str | None
) -> dict[str, str]:
    return {
        "rollout": f"{namespace}/{name}",
        "event": WEBHOOK_EVENT_OF_REASON.get(reason, reason),
        "message": message,
        "version": version or "",
    }


def notify(notifications: Notifications | None, body: dict[str, str]) -> int:
    """Send `body` to every webhook that wants its event; returns how many accepted it."""
    if notifications is None or body["event"] not in WEBHOOK_EVENTS:
        return 0
    accepted = 0
    for hook in notifications.webhooks:
        if hook.events is not None and body["event"] not in hook.events:
            continue
        try:
            response = requests.post(hook.url, json=body, timeout=TIMEOUT_SECONDS)
            response.raise_for_status()
            accepted += 1
        except requests.RequestException as error:
            log.warning("webhook %s failed for %s: %s", hook.url, body["event"], error)
    return accepted
