from celery import shared_task
from django.utils import timezone

from feedback.services import feedback_mark_overdue


@shared_task(name="feedback.tasks.mark_overdue", ignore_result=True)
def mark_overdue() -> int:
    """Every 5 minutes: stamp and announce items past their response time. An item is stamped
    once, so a double beat or a retry never notifies twice."""
    return len(feedback_mark_overdue(now=timezone.now()))
