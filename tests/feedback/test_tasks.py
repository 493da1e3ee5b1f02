from datetime import timedelta

import pytest
import time_machine
from django.core import mail

from feedback import services
from feedback.models import FeedbackItem
from feedback.tasks import mark_overdue
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry
from rollout_control.schedule import BEAT_SCHEDULE
from tests.feedback.conftest import START, SYSTEM, file

pytestmark = pytest.mark.django_db


def test_beat_schedule__runs_the_overdue_task_every_five_minutes() -> None:
    [entry] = [e for e in BEAT_SCHEDULE.values() if e["task"] == "feedback.tasks.mark_overdue"]
    assert entry["schedule"] == 300.0


def test_mark_overdue__past_due_unanswered_items__stamped_and_announced_once(
    support_user: object, django_capture_on_commit_callbacks: object
) -> None:
    with time_machine.travel(START, tick=False) as clock:
        blocker = file(type="blocker", text="Cannot log in")  # due in 1 hour
        answered = file(type="blocker", text="Crash on export")
        bug = file(type="bug", text="Typo")  # due in 4 hours
        services.feedback_comment(item=answered, text="On it", actor=Actor.for_user(support_user))
        clock.shift(timedelta(minutes=59))
        with django_capture_on_commit_callbacks(execute=True):
            assert mark_overdue.delay().get() == 0
        assert mail.outbox == []

        clock.shift(timedelta(minutes=2))
        with django_capture_on_commit_callbacks(execute=True):
            assert mark_overdue.delay().get() == 1
            assert mark_overdue.delay().get() == 0  # a double beat announces nothing twice

    blocker.refresh_from_db()
    assert blocker.overdue_at == START + timedelta(minutes=61)
    assert blocker.is_overdue(START + timedelta(minutes=61))
    assert FeedbackItem.objects.get(pk=answered.pk).overdue_at is None
    assert FeedbackItem.objects.get(pk=bug.pk).overdue_at is None
    [message] = mail.outbox
    assert message.subject == "[feedback] 1 item(s) past their response time"
    assert f"#{blocker.pk} Critical Blocker" in message.body
    assert "Cannot log in" in message.body
    event = blocker.events.get(kind="overdue")
    assert (event.actor_label, event.after["late_seconds"]) == ("feedback.overdue", 60)
    entry = AuditEntry.objects.get(action="feedback.overdue")
    assert (entry.actor_type, entry.object_id) == ("system", str(blocker.pk))


def test_mark_overdue__priority_lowered__deadline_moves_and_can_warn_again() -> None:
    with time_machine.travel(START, tick=False) as clock:
        item = file(type="blocker")
        clock.shift(timedelta(hours=2))
        assert services.feedback_mark_overdue() == [item.pk]
        item = services.feedback_set_priority(
            item=item, priority="medium", reason="Only one user", actor=SYSTEM
        )
        assert (item.overdue_at, item.is_overdue()) == (None, False)
        clock.shift(timedelta(days=1))
        assert services.feedback_mark_overdue() == [item.pk]


def test_mark_overdue__closed_item__never_overdue() -> None:
    with time_machine.travel(START, tick=False) as clock:
        item = file(type="blocker")
        services.feedback_transition(item=item, status="closed", actor=SYSTEM, reason="spam")
        clock.shift(timedelta(days=2))
        assert services.feedback_mark_overdue() == []
