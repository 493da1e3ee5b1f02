"""Alert windows: one immediate alert per flag and priority per FEEDBACK_ALERT_WINDOW_MINUTES.

A flood of blockers on one flag (70 reports in a minute queued 210 webhook deliveries and as
many e-mails, issue 14) tells the team one thing: that flag is in trouble. The first item alerts
at once and opens a window; items arriving while it is open are held on the window's row and
sent as one digest ("12 more …") by beat when it ends, which opens the next window.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction

from feedback.models import FeedbackAlertWindow, FeedbackItem
from rollout_control.core.notifications import notify

DIGEST_LISTED = 50  # items listed by name in a digest; the rest are counted


def _window() -> timedelta:
    return timedelta(minutes=settings.FEEDBACK_ALERT_WINDOW_MINUTES)


def alert_window_claim(*, item: FeedbackItem, now: datetime) -> bool:
    """True when `item` should alert now (a window opens); False when it is held for the
    digest. Called inside the item's transaction: the window row is locked until it commits,
    so two items at once cannot both alert."""
    if settings.FEEDBACK_ALERT_WINDOW_MINUTES <= 0:
        return True
    with transaction.atomic():
        window, created = FeedbackAlertWindow.objects.select_for_update().get_or_create(
            flag_key=item.flag_key, priority=item.priority, defaults={"ends_at": now + _window()}
        )
        if created:
            return True
        if window.ends_at <= now and not window.held:
            window.ends_at = now + _window()
            window.save(update_fields=["ends_at"])
            return True
        window.held = [*window.held, item.pk]
        window.save(update_fields=["held"])
        return False


def _digest_text(items: list[FeedbackItem], total: int) -> str:
    lines = [
        f"#{item.pk} {item.get_type_display()} from {item.unit or '-'}: "
        f"{(item.text.strip().splitlines() or [''])[0][:120]}"
        for item in items[:DIGEST_LISTED]
    ]
    if total > DIGEST_LISTED:
        lines.append(f"… and {total - DIGEST_LISTED} more (see the feedback queue).")
    return "\n".join(lines)


def feedback_send_alert_digests(*, now: datetime) -> int:
    """Sends the digest of every window that has ended with items held; each digest opens the
    next window, so a flood yields one message per window. Two runs at once take different
    windows (SKIP LOCKED); a window's held list is emptied in the same transaction."""
    sent = 0
    with transaction.atomic():
        windows = list(
            FeedbackAlertWindow.objects.select_for_update(skip_locked=True)
            .filter(ends_at__lte=now)
            .exclude(held=[])
            .order_by("pk")
        )
        for window in windows:
            items = list(FeedbackItem.objects.filter(pk__in=window.held).order_by("pk"))
            window.held, window.ends_at = [], now + _window()
            window.save(update_fields=["held", "ends_at"])
            if not items:
                continue
            where = f" on flag {window.flag_key}" if window.flag_key else ""
            notify(
                event="feedback.critical",
                subject=f"[{window.priority} feedback] {len(items)} more{where}",
                text=(
                    f"{len(items)} more {window.priority} item(s){where} arrived within "
                    f"{settings.FEEDBACK_ALERT_WINDOW_MINUTES} minutes of the last alert:\n\n"
                    + _digest_text(items, len(items))
                ),
                data={
                    "digest": True,
                    "flag": window.flag_key or None,
                    "priority": window.priority,
                    "count": len(items),
                    "ids": [item.pk for item in items],
                },
            )
            sent += 1
    return sent
