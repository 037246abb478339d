"""Notifications on the wire: a notice encoded for its receiver (`json`, CloudEvents 1.0 in
structured JSON, or a Slack incoming webhook's text), signed with HMAC-SHA256 when a key is given,
and POSTed with a short timeout. Retries and order are the sender's (controller/delivery.py).

The CloudEvents encoder is ours, about twenty lines: structured mode is one JSON object with the
context attributes beside `data`, and the `cloudevents` package would add a dependency (and its
own HTTP conversion layer) for that; tests check the attributes the spec requires.
"""

from __future__ import annotations

import email.utils
import hashlib
import hmac
import json
import logging
import time
from dataclasses import dataclass
from typing import Any

from modelrollout.api.v1alpha1 import (
    GROUP,
    PLURAL,
    VERSION,
    WEBHOOK_EVENT_OF_REASON,
    Notice,
    Webhook,
)

log = logging.getLogger(__name__)
TIMEOUT_SECONDS = 5.0
SIGNATURE_HEADER = "X-Modelrollout-Signature"
CLOUDEVENTS_TYPE = "application/cloudevents+json; charset=utf-8"


def event_of(notice: Notice) -> str:
    """The webhook event a notice is (what a receiver subscribes to)."""
    return WEBHOOK_EVENT_OF_REASON.get(notice.reason, notice.reason)


def encode(hook: Webhook, notice: Notice, *, namespace: str, name: str) -> tuple[bytes, str]:
    """The body and its content type."""
    rollout = f"{namespace}/{name}"
    if hook.format == "cloudEvents":
        document: dict[str, Any] = {
            "specversion": "1.0",
            "id": notice.id,
            "source": f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}/{name}",
            "type": f"io.modelrollout.rollout.{notice.reason.lower()}.v1",
            "subject": name,
            "time": notice.at,
            "datacontenttype": "application/json",
            "sequence": str(notice.seq),  # the CloudEvents sequence extension: a string
            "data": {
                **({"details": notice.details} if notice.details else {}),
                "rollout": rollout,
                "event": event_of(notice),
                "reason": notice.reason,
                "message": notice.message,
                "version": notice.version,
                "severity": notice.severity,
            },
        }
        return _dumps(document), CLOUDEVENTS_TYPE
    if hook.format == "slack":
        mark = ":warning: " if notice.severity == "Warning" else ""
        text = f"{mark}*{rollout}* {event_of(notice)} ({notice.version}): {notice.message}"
        return _dumps({"text": text}), "application/json"
    document = {"rollout": rollout, "event": event_of(notice), "message": notice.message,
                "version": notice.version, "id": notice.id, "sequence": notice.seq}  # fmt: skip
    return _dumps(document), "application/json"


def _dumps(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":"), sort_keys=True).encode()


def sign(body: bytes, key: str) -> str:
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class Answer:
    """How a POST went: delivered, or the error and how long the receiver asked us to wait."""

    ok: bool
    error: str | None = None
    retry_after: float | None = None


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds from a Retry-After header: delay-seconds, or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, moment.timestamp() - (time.time() if now is None else now))


def post(url: str, body: bytes, content_type: str, signature: str | None = None) -> Answer:
    import requests  # noqa: PLC0415  (only once a notice is sent: 6 MiB an operator without
    # receivers never needs)

    headers = {"Content-Type": content_type}
    if signature is not None:
        headers[SIGNATURE_HEADER] = signature
    try:
        response = requests.post(url, data=body, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.RequestException as error:
        return Answer(False, f"{type(error).__name__}: {str(error)[:200]}")
    if 200 <= response.status_code < 300:
        return Answer(True)
    return Answer(False, f"HTTP {response.status_code}: {response.text[:200]}",
                  retry_after(response.headers.get("Retry-After")))  # fmt: skip
