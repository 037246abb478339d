"""Who is told what: the webhook events a user subscribes to, which of the operator's Event
reasons each one is, and how each receiver wants them (docs/lifecycle.md, notifications)."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import Field

from modelrollout.api.v1alpha1.rules import DNS_LABEL_PATTERN, Model

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


WebhookFormat = Literal["json", "cloudEvents", "slack"]


class SecretKeyRef(Model):
    name: str = Field(pattern=DNS_LABEL_PATTERN.replace("{0,61}", "{0,251}"), max_length=253)
    key: str = Field(pattern=r"^[-._a-zA-Z0-9]+$", max_length=253)


class Webhook(Model):
    """A receiver: `json` (a small body), `cloudEvents` (CloudEvents 1.0, structured JSON) or
    `slack` (an incoming webhook's text); with `secretRef`, each body is signed with
    HMAC-SHA256 under that Secret key (header X-Modelrollout-Signature: sha256=HEX)."""

    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    name: str | None = Field(default=None, pattern=DNS_LABEL_PATTERN, max_length=63)
    events: list[WebhookEvent] | None = Field(default=None, max_length=len(WEBHOOK_EVENTS))
    format: WebhookFormat = "json"
    secret_ref: SecretKeyRef | None = None

    @property
    def sink(self) -> str:
        """How status names this receiver: its name, else its URL."""
        return self.name or self.url


class Notifications(Model):
    webhooks: list[Webhook] = Field(default_factory=list, max_length=8)
