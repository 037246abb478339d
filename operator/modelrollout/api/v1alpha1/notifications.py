"""Who is told what: the webhook events a user subscribes to, and which of the operator's Event
reasons each one is."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from modelrollout.api.v1alpha1.rules import Model

WebhookEvent = Literal[
    "Promoted", "RolledBack", "Paused", "Progressing", "Baking", "Alarm", "Retraining"
]
WEBHOOK_EVENTS: tuple[WebhookEvent, ...] = get_args(WebhookEvent)
# The Event reasons the operator posts that a webhook hears, and as which event (docs/api.md).
WEBHOOK_EVENT_OF_REASON: dict[str, WebhookEvent] = {
    "CanaryStarted": "Progressing",
    "Promoted": "Promoted",
    "RolledBack": "RolledBack",
    "Paused": "Paused",
    "Baking": "Baking",
    "MonitorAlarm": "Alarm",
    "ApprovalRequired": "Retraining",
    "RetrainingRequested": "Retraining",
    "RetrainingSucceeded": "Retraining",
    "RetrainingFailed": "Retraining",
}


class Webhook(Model):
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    events: list[WebhookEvent] | None = Field(default=None, max_length=len(WEBHOOK_EVENTS))


class Notifications(Model):
    webhooks: list[Webhook] = Field(default_factory=list, max_length=8)
