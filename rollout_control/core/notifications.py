"""Alerts to people and systems: e-mail to the team and signed webhooks, written to the outbox
with the change and sent by Celery with retries and backoff after it commits (core/outbox.py).

Generic webhooks POST `{"event", "sent_at", "data"}` with headers
`X-Rollout-Timestamp: <unix seconds>` and
`X-Rollout-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<raw body>")>`.
A receiver recomputes the HMAC over the timestamp, a dot and the exact body bytes, compares in
constant time, and rejects timestamps older than a few minutes (replays). Slack-style webhooks
get `{"text": "..."}` and no signature.
"""

import hashlib
import hmac
import json
import logging
import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from rollout_control.core import outbound
from rollout_control.core.models import OutboxMessage, WebhookDelivery, WebhookEndpoint
from rollout_control.core.outbox import outbox_add, outbox_email
from rollout_control.core.validators import one_line

TIMEOUT_SECONDS = 5
logger = logging.getLogger(__name__)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def notify(
    *,
    event: str,
    subject: str,
    text: str,
    data: dict[str, Any] | None = None,
    email: bool = True,
    immediate: bool = False,
) -> list[int]:
    """Queues an e-mail to the team and one delivery per interested webhook endpoint; with
    `immediate`, sends them now, in this thread (for alerts about Celery itself)."""
    # Subjects are built from names (plans, guardrails, units): a line break in one would make
    # every e-mail about it fail (BadHeaderError). Names are refused with control characters;
    # this covers those stored earlier or set where no serializer looks.
    subject = one_line(subject)
    payload = {
        "event": event,
        "sent_at": timezone.now().isoformat(),
        "subject": subject,
        "text": text,
        "data": data or {},
    }
    deliveries = [
        WebhookDelivery.objects.create(endpoint=endpoint, event=event, payload=payload).pk
        for endpoint in WebhookEndpoint.objects.filter(enabled=True)
        if endpoint.wants(event)
    ]
    recipients = list(settings.TEAM_EMAILS) if email else []
    if immediate:
        _send_now(deliveries, subject, text, recipients)
        return deliveries
    # Kept in the database with the change (core/outbox.py): a broker that is away when the
    # transaction commits delays these messages; it neither loses them nor fails the request.
    for delivery_id in deliveries:
        outbox_add(kind=OutboxMessage.Kind.WEBHOOK, payload={"delivery_id": delivery_id})
    if recipients:
        outbox_email(subject=subject, body=text, recipients=recipients)
    return deliveries


def _send_now(deliveries: list[int], subject: str, text: str, recipients: list[str]) -> None:
    from django.core.mail import send_mail

    for delivery_id in deliveries:
        try:
            webhook_deliver(delivery_id=delivery_id)
        except OSError:
            logger.warning("webhook delivery %s failed; see the admin", delivery_id)
    if recipients:
        try:
            send_mail(subject, text, settings.DEFAULT_FROM_EMAIL, recipients)
        except OSError:
            logger.warning("alert e-mail %r could not be sent", subject)


def _body(delivery: WebhookDelivery) -> bytes:
    payload = delivery.payload
    if delivery.endpoint.kind == WebhookEndpoint.Kind.SLACK:
        return json.dumps({"text": f"*{payload['subject']}*\n{payload['text']}"}).encode()
    return json.dumps(
        {
            "event": payload["event"],
            "sent_at": payload["sent_at"],
            "data": payload["data"] | {"subject": payload["subject"], "text": payload["text"]},
        },
        separators=(",", ":"),
    ).encode()


def webhook_deliver(*, delivery_id: int) -> bool:
    """One attempt, to a checked address (rollout_control/core/outbound.py). Records the outcome
    on the delivery and its endpoint; raises OSError on a failure so the task retries with
    backoff, except for a refused target (False: retrying cannot help)."""
    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    if delivery.delivered_at:
        return True  # a retried task after a success: nothing to do
    endpoint = delivery.endpoint
    body = _body(delivery)
    headers = {"Content-Type": "application/json", "User-Agent": "rollout-control/1"}
    if endpoint.kind == WebhookEndpoint.Kind.GENERIC and endpoint.secret:
        timestamp = str(int(time.time()))
        headers |= {
            "X-Rollout-Timestamp": timestamp,
            "X-Rollout-Signature": sign(endpoint.secret, timestamp, body),
        }
    delivery.attempts += 1
    now = timezone.now()
    retry = True
    try:
        status = outbound.post(endpoint.url, body, headers, TIMEOUT_SECONDS)
    except outbound.Unresolvable as exc:
        status, error = None, exc.message
    except outbound.TargetRefused as exc:
        # Saved before the rule, or the name now resolves inside: retrying will not help.
        status, error, retry = None, f"Refused: {exc.message}", False
    except outbound.DeliveryFailed as exc:
        status, error = exc.status, exc.message
    else:
        error = ""
    delivery.response_status = status
    if status is not None and 200 <= status < 300:
        delivery.delivered_at, delivery.last_error = now, ""
        delivery.save(update_fields=["attempts", "response_status", "delivered_at", "last_error"])
        WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_success_at=now)
        return True
    delivery.last_error = error
    delivery.save(update_fields=["attempts", "response_status", "last_error"])
    WebhookEndpoint.objects.filter(pk=endpoint.pk).update(last_failure_at=now, last_error=error)
    if not retry:
        logger.warning("webhook %s refused: %s", endpoint.name, error)
        return False
    raise OSError(f"webhook {endpoint.name} failed: {error}")
