from celery import shared_task
from django.utils import timezone

from feedback.services import feedback_mark_overdue, feedback_send_alert_digests


@shared_task(name="feedback.tasks.mark_overdue", ignore_result=True)
def mark_overdue() -> int:
    """Every 5 minutes: stamp and announce items past their response time. An item is stamped
    once, so a double beat or a retry never notifies twice."""
    return len(feedback_mark_overdue(now=timezone.now()))


@shared_task(name="feedback.tasks.send_alert_digests", ignore_result=True)
def send_alert_digests() -> int:
    """Every minute: one digest per flag and priority whose alert window has ended with items
    held (feedback/services/alerts.py). A window's list is emptied as its digest is queued."""
    return feedback_send_alert_digests(now=timezone.now())
