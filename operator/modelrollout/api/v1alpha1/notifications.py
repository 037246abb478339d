"""Who is told what."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from modelrollout.api.v1alpha1.rules import Model


class Webhook(Model):
    url: str = Field(pattern=r"^https?://[^\s]+$", max_length=2048)
    events: list[Literal["Promoted", "RolledBack", "Paused", "Progressing"]] | None = Field(
        default=None, max_length=4
    )


class Notifications(Model):
    webhooks: list[Webhook] = Field(default_factory=list, max_length=8)
