"""Work that needs the broker, kept in the database first (a transactional outbox).

A service that owes a message (an e-mail, a webhook delivery) calls `outbox_add` inside its own
transaction: the row commits with the change or not at all. After the commit the row's id is
pushed to Celery (`core.tasks.outbox_send`). When the broker is away the push fails, is logged,
and the request still answers: the row waits, and `core.tasks.outbox_drain` (beat, every 30 s)
pushes it once the broker is back. A push lost with an unpersisted Redis is pushed again after
REDISPATCH_AFTER.

Nothing is sent twice: however many copies of the task run (a push on commit and a drain, a
redelivered message), each first claims the row with a conditional update, and only the one that
claimed it sends; the others find it claimed, sent or not yet due, and do nothing.
"""

import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from rollout_control.core.models import OutboxMessage
from rollout_control.core.validators import one_line

logger = logging.getLogger(__name__)

# A run holds its row this long: longer than any handler takes (webhooks time out in 5 s).
LEASE = timedelta(minutes=5)
# The drain re-pushes a row it pushed that has not run after REDISPATCH_AFTER (a Redis restarted
# without persistence forgets its queue). It may also push a row just pushed on commit: the
# claim in outbox_run makes the second copy a no-op.
REDISPATCH_AFTER = timedelta(minutes=5)
DRAIN_BATCH = 500
# Failed sends are retried with backoff (15 s, 30 s, ... at most 10 minutes apart), then given up.
MAX_ATTEMPTS = 10
BACKOFF_SECONDS = 15
BACKOFF_MAX_SECONDS = 600
# Sent rows are kept a week for the admin, then deleted by the drain.
KEEP_SENT = timedelta(days=7)
# After a failed push this process stops trying the broker for a while: during an outage each
# attempt costs the request most of a second, and the drain catches up anyway.
BROKER_PAUSE_SECONDS = 5.0

_broker_paused_until = 0.0


class GiveUp(Exception):
    """A send that retrying cannot help (a refused webhook target)."""


def _send_email(payload: dict[str, Any]) -> None:
    # one_line: a BadHeaderError is not retried, so a bad subject would lose the message.
    send_mail(
        one_line(payload["subject"]),
        payload["body"],
        settings.DEFAULT_FROM_EMAIL,
        payload["recipients"],
    )


def _deliver_webhook(payload: dict[str, Any]) -> None:
    from rollout_control.core.notifications import webhook_deliver

    if not webhook_deliver(delivery_id=payload["delivery_id"]):
        raise GiveUp("webhook target refused; see the delivery in the admin")


HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    OutboxMessage.Kind.EMAIL: _send_email,
    OutboxMessage.Kind.WEBHOOK: _deliver_webhook,
}


def outbox_add(*, kind: OutboxMessage.Kind, payload: dict[str, Any]) -> int:
    """Adds a message in the caller's transaction; it is pushed to the broker after the commit."""
    message = OutboxMessage.objects.create(kind=kind, payload=payload)
    transaction.on_commit(lambda: _push(message.pk))
    return message.pk


def outbox_email(*, subject: str, body: str, recipients: list[str]) -> int:
    return outbox_add(
        kind=OutboxMessage.Kind.EMAIL,
        payload={"subject": subject, "body": body, "recipients": list(recipients)},
    )


def _push(message_id: int) -> bool:
    """Hands the row's id to Celery. False when the broker is away: the drain pushes it later."""
    global _broker_paused_until
    if time.monotonic() < _broker_paused_until:
        return False
    from rollout_control.core.tasks import outbox_send

    try:
        outbox_send.apply_async(kwargs={"message_id": message_id})
    except Exception:  # kombu wraps most broker errors, not all; the row is the fallback
        _broker_paused_until = time.monotonic() + BROKER_PAUSE_SECONDS
        logger.warning("broker unavailable; outbox message %s waits for the drain", message_id)
        return False
    return True


def _due(now: Any) -> Q:
    return (Q(available_at__isnull=True) | Q(available_at__lte=now)) & (
        Q(locked_until__isnull=True) | Q(locked_until__lt=now)
    )


def outbox_run(*, message_id: int) -> bool:
    """Sends one message if this call claims it; True when it was sent by this call."""
    now = timezone.now()
    pending = OutboxMessage.objects.filter(
        _due(now), pk=message_id, sent_at__isnull=True, failed_at__isnull=True
    )
    if not pending.update(locked_until=now + LEASE, attempts=F("attempts") + 1):
        return False  # sent, given up, not due yet, or another worker is sending it
    message = OutboxMessage.objects.get(pk=message_id)
    try:
        HANDLERS[message.kind](message.payload)
    except OSError as exc:  # network, SMTP (smtplib's errors are OSErrors): try again later
        _failed(message, str(exc)[:500], retry=message.attempts < MAX_ATTEMPTS)
        return False
    except Exception as exc:  # a refused target, a deleted delivery, a bug: retrying cannot help
        logger.exception("outbox message %s (%s) given up", message.pk, message.kind)
        _failed(message, f"{type(exc).__name__}: {exc}"[:500], retry=False)
        return False
    OutboxMessage.objects.filter(pk=message_id).update(
        sent_at=timezone.now(), locked_until=None, last_error=""
    )
    return True


def _failed(message: OutboxMessage, error: str, *, retry: bool) -> None:
    now = timezone.now()
    if retry:
        delay = min(BACKOFF_MAX_SECONDS, BACKOFF_SECONDS * 2 ** (message.attempts - 1))
        changes = {"available_at": now + timedelta(seconds=delay), "dispatched_at": None}
    else:
        logger.error("outbox message %s (%s) failed for good: %s", message.pk, message.kind, error)
        changes = {"failed_at": now}
    OutboxMessage.objects.filter(pk=message.pk).update(
        locked_until=None, last_error=error, **changes
    )


def outbox_drain() -> int:
    """Pushes the messages that are due and not on their way; returns how many were pushed.
    Stops at the first broker error (the rest wait for the next drain)."""
    from rollout_control.core.tasks import outbox_send

    now = timezone.now()
    OutboxMessage.objects.filter(sent_at__lt=now - KEEP_SENT).delete()
    not_pushed = Q(dispatched_at__isnull=True) | Q(dispatched_at__lt=now - REDISPATCH_AFTER)
    ready = OutboxMessage.objects.filter(
        _due(now), not_pushed, sent_at__isnull=True, failed_at__isnull=True
    )
    pushed = 0
    for message_id in ready.values_list("pk", flat=True)[:DRAIN_BATCH]:
        # Claimed for pushing, so two drains at once push each row once.
        claim = OutboxMessage.objects.filter(not_pushed, pk=message_id)
        if not claim.update(dispatched_at=now):
            continue
        try:
            outbox_send.apply_async(kwargs={"message_id": message_id})
        except Exception:  # the broker went away again: this row and the rest wait
            OutboxMessage.objects.filter(pk=message_id).update(dispatched_at=None)
            logger.warning("broker unavailable; outbox drain stopped after %s", pushed)
            break
        pushed += 1
    return pushed
