"""The beat task's work: stamp and announce items past their response time."""

from datetime import datetime

from django.db import transaction
from django.utils import timezone

from feedback import metrics
from feedback.models import FeedbackEvent, FeedbackItem
from feedback.services.common import record_change
from rollout_control.core.actors import Actor
from rollout_control.core.notifications import notify

OVERDUE_BATCH = 500


def feedback_mark_overdue(*, now: datetime | None = None) -> list[int]:
    """Stamps open, unanswered items past their deadline and notifies the team once about them.
    Two runs at once each take different rows (SKIP LOCKED); a stamped item is never re-sent."""
    now = now or timezone.now()
    actor = Actor.system("feedback.overdue")
    with transaction.atomic():
        items = list(
            FeedbackItem.objects.select_for_update(skip_locked=True, of=("self",))
            .filter(
                status__in=FeedbackItem.OPEN_STATUSES,
                first_response_at__isnull=True,
                overdue_at__isnull=True,
                due_at__lte=now,
            )
            .select_related("assignee")
            .order_by("due_at", "pk")[:OVERDUE_BATCH]
        )
        for item in items:
            item.overdue_at = now
            item.save(update_fields=["overdue_at"])
            late = now - item.due_at
            record_change(
                item,
                actor=actor,
                kind=FeedbackEvent.Kind.OVERDUE,
                action="feedback.overdue",
                before={"overdue_at": None},
                after={"overdue_at": now.isoformat(), "late_seconds": int(late.total_seconds())},
                at=now,
            )
        if items:
            _notify_overdue(items, now)
    metrics.overdue_total.inc(len(items))
    return [item.pk for item in items]


def _notify_overdue(items: list[FeedbackItem], now: datetime) -> None:
    lines = [
        f"#{i.pk} {i.get_priority_display()} {i.get_type_display()}"
        f" (due {i.due_at:%Y-%m-%d %H:%M} UTC, assignee {i.assignee or 'nobody'}): {i.text[:100]}"
        for i in items
    ]
    notify(
        event="feedback.overdue",
        subject=f"[feedback] {len(items)} item(s) past their response time",
        text="Not answered within the response target:\n\n" + "\n".join(lines),
        data={
            "items": [
                {"id": i.pk, "priority": i.priority, "due_at": i.due_at.isoformat()} for i in items
            ],
            "checked_at": now.isoformat(),
        },
    )
