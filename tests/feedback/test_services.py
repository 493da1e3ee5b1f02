import hashlib
import hmac
import json
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
import time_machine
from django.core import mail

from feedback import services
from feedback.exceptions import ExclusionNotPossible, InvalidFeedback, InvalidTransition
from feedback.models import FeedbackEvent, FeedbackItem
from flags.models import Flag
from flags.selectors import evaluate_flag
from phases.models import RolloutPlan
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry, WebhookEndpoint
from tests.feedback.conftest import FLAG, PLAN, START, SYSTEM, Receiver, file

pytestmark = pytest.mark.django_db


def _audit_actions(item: FeedbackItem) -> list[str]:
    entries = AuditEntry.objects.filter(object_type="feedback.feedbackitem", object_id=str(item.pk))
    return list(entries.order_by("created_at", "id").values_list("action", flat=True))


@pytest.mark.parametrize(
    ("kind", "priority", "target"),
    [
        ("blocker", "critical", timedelta(hours=1)),
        ("bug", "high", timedelta(hours=4)),
        ("usability", "medium", timedelta(days=1)),
        ("question", "medium", timedelta(days=1)),
        ("feature_request", "low", timedelta(days=3)),
        ("praise", "low", timedelta(days=3)),
    ],
)
def test_create__each_type__derived_priority_and_due_time(
    kind: str, priority: str, target: timedelta
) -> None:
    with time_machine.travel(START, tick=False):
        item = file(type=kind)
    assert (item.priority, item.status) == (priority, "new")
    assert item.created_at == START
    assert item.due_at == START + target
    assert [e.kind for e in item.events.all()] == ["created"]
    assert _audit_actions(item) == ["feedback.create"]


def test_create__blocker_on_a_live_plan__records_flag_state_notifies_by_email_and_webhook(
    live_plan: RolloutPlan, receiver: str, django_capture_on_commit_callbacks: object
) -> None:
    WebhookEndpoint.objects.create(name="ops", url=receiver, secret="s3cret")
    seen = evaluate_flag(key=FLAG, context={"targetingKey": "u-beta", "orgId": "org-1"})
    with django_capture_on_commit_callbacks(execute=True):
        item = file(
            type="blocker",
            text="Export crashes the app",
            flag_key=FLAG,
            unit="u-beta",
            org="org-1",
            app_version="2.3.1",
        )

    assert item.priority == "critical"
    assert (item.flag_value, item.flag_reason) == (seen.value, "TARGETING_MATCH")
    assert item.flag_percentage == Decimal(50)
    assert item.flag_cohort == "beta"
    assert (item.plan, item.plan_name) == (live_plan, PLAN)
    assert item.phase == live_plan.phases.get(status="active")
    assert item.phase_name == "Closed beta"

    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["releases@example.com"]
    assert message.subject == (
        f"[critical feedback] #{item.pk} Blocker on flag reports (Stripboard / Closed beta)"
    )
    assert "Export crashes the app" in message.body
    assert "Unit: u-beta" in message.body

    [(headers, body)] = Receiver.received
    signed = f"{headers['X-Rollout-Timestamp']}.".encode() + body
    expected = hmac.new(b"s3cret", signed, hashlib.sha256).hexdigest()
    assert headers["X-Rollout-Signature"] == f"sha256={expected}"
    payload = json.loads(body)
    assert payload["event"] == "feedback.critical"
    assert payload["data"]["id"] == item.pk
    assert payload["data"]["plan"] == PLAN


def test_create__bug__no_notification(
    beta_flag: str, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        item = file(type="bug", flag_key=FLAG, unit="someone-else")
    assert item.priority == "high"
    assert mail.outbox == []
    # Outside any live plan, and not in the cohort: the default 0 % → off.
    assert (item.flag_value, item.flag_reason, item.flag_percentage) == (False, "DEFAULT", 0)
    assert (item.plan, item.plan_name, item.flag_cohort) == (None, "", "")


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"text": "   "}, "text"),
        ({"text": "x" * 10_001}, "text"),
        ({"type": "rant"}, "type"),
        ({"rating": 0}, "rating"),
        ({"rating": 6}, "rating"),
        ({"rating": True}, "rating"),
        ({"flag_key": "no-such-flag"}, "flag"),
        ({"metadata": ["not", "an", "object"]}, "metadata"),
    ],
)
def test_create__bad_input__names_the_field_and_saves_nothing(
    beta_flag: str, kwargs: dict, field: str
) -> None:
    values = {"type": "bug", "text": "It broke"} | kwargs
    with pytest.raises(InvalidFeedback) as error:
        services.feedback_create(actor=SYSTEM, **values)
    assert error.value.field == field
    assert FeedbackItem.objects.count() == 0
    assert not AuditEntry.objects.filter(action="feedback.create").exists()


def test_set_priority__needs_a_reason_and_moves_the_deadline() -> None:
    with time_machine.travel(START, tick=False):
        item = file(type="feature_request")
    assert item.due_at == START + timedelta(days=3)
    with pytest.raises(InvalidFeedback) as error:
        services.feedback_set_priority(item=item, priority="high", reason=" ", actor=SYSTEM)
    assert error.value.field == "reason"

    item = services.feedback_set_priority(
        item=item, priority="high", reason="Blocks a paying customer", actor=SYSTEM
    )
    assert (item.priority, item.due_at) == ("high", START + timedelta(hours=4))
    event = item.events.get(kind="priority")
    assert (event.before["priority"], event.after["priority"]) == ("low", "high")
    assert event.reason == "Blocks a paying customer"
    assert _audit_actions(item) == ["feedback.create", "feedback.priority"]


def test_set_priority__raised_to_critical__notifies(
    django_capture_on_commit_callbacks: object,
) -> None:
    item = file(type="bug")
    with django_capture_on_commit_callbacks(execute=True):
        services.feedback_set_priority(
            item=item, priority="critical", reason="Data loss", actor=SYSTEM
        )
    assert len(mail.outbox) == 1
    assert "raised it to critical: Data loss" in mail.outbox[0].body


def test_workflow__new_to_resolved__history_audit_and_time_to_resolution(
    support_user: object,
) -> None:
    actor = Actor.for_user(support_user)
    with time_machine.travel(START, tick=False) as clock:
        item = file(type="bug")
        clock.shift(timedelta(minutes=30))
        item = services.feedback_transition(item=item, status="triaged", actor=actor)
        item = services.feedback_assign(item=item, assignee=support_user, actor=actor)
        services.feedback_comment(item=item, text="Reproduced on 2.3.1", actor=actor)
        item = services.feedback_transition(item=item, status="in_progress", actor=actor)
        clock.shift(timedelta(hours=5))
        item = services.feedback_transition(
            item=item, status="resolved", actor=actor, reason="Fixed in 2.3.2"
        )

    assert item.status == "resolved"
    assert item.first_response_at == START + timedelta(minutes=30)
    assert item.answered_in_time is True
    assert item.closed_at == START + timedelta(hours=5, minutes=30)
    assert item.time_to_resolution == timedelta(hours=5, minutes=30)
    assert item.assignee == support_user
    history = [(e.kind, e.actor_label) for e in item.events.all()]
    assert history == [
        ("created", "test"),
        ("status", "sam"),
        ("assigned", "sam"),
        ("commented", "sam"),
        ("status", "sam"),
        ("status", "sam"),
    ]
    statuses = [(e.before["status"], e.after["status"]) for e in item.events.filter(kind="status")]
    assert statuses == [("new", "triaged"), ("triaged", "in_progress"), ("in_progress", "resolved")]
    # One audit entry per change, never two.
    assert Counter(_audit_actions(item)) == {
        "feedback.create": 1,
        "feedback.status": 3,
        "feedback.assign": 1,
        "feedback.comment": 1,
    }
    assert item.comments.get().author == support_user


def test_workflow__reopen__clears_resolution() -> None:
    item = file()
    for status in ("triaged", "resolved", "in_progress"):
        item = services.feedback_transition(item=item, status=status, actor=SYSTEM)
    assert (item.closed_at, item.time_to_resolution) == (None, None)


@pytest.mark.parametrize("target", ["resolved", "in_progress"])
def test_transition__skipping_triage__conflict_and_nothing_changes(target: str) -> None:
    item = file()
    with pytest.raises(InvalidTransition, match="Cannot go from new"):
        services.feedback_transition(item=item, status=target, actor=SYSTEM)
    item.refresh_from_db()
    assert item.status == "new"
    assert item.first_response_at is None
    assert _audit_actions(item) == ["feedback.create"]


def test_duplicate__needs_original_and_points_at_the_root() -> None:
    original, first_copy, second_copy = file(text="a"), file(text="b"), file(text="c")
    with pytest.raises(InvalidFeedback) as error:
        services.feedback_transition(item=first_copy, status="duplicate", actor=SYSTEM)
    assert error.value.field == "duplicate_of"
    with pytest.raises(InvalidFeedback, match="itself"):
        services.feedback_transition(
            item=first_copy, status="duplicate", duplicate_of=first_copy, actor=SYSTEM
        )
    services.feedback_transition(
        item=first_copy, status="duplicate", duplicate_of=original, actor=SYSTEM
    )
    second = services.feedback_transition(
        item=second_copy, status="duplicate", duplicate_of=first_copy, actor=SYSTEM
    )
    assert second.duplicate_of == original
    assert set(original.duplicates.values_list("pk", flat=True)) == {first_copy.pk, second.pk}
    # Not a duplicate after all: back to triage, the link is gone.
    back = services.feedback_transition(item=second, status="triaged", actor=SYSTEM)
    assert back.duplicate_of is None


def test_assign__user_without_a_staff_role__refused(django_user_model: object) -> None:
    outsider = django_user_model.objects.create_user(username="eve", password="x")
    with pytest.raises(InvalidFeedback) as error:
        services.feedback_assign(item=file(), assignee=outsider, actor=SYSTEM)
    assert error.value.field == "assignee"


def test_bulk_transition__reports_skipped_items_and_changes_the_rest(support_user: object) -> None:
    actor = Actor.for_user(support_user)
    new, triaged, resolved = file(), file(), file()
    services.feedback_transition(item=triaged, status="triaged", actor=actor)
    for status in ("triaged", "resolved"):
        services.feedback_transition(item=resolved, status=status, actor=actor)

    result = services.feedback_bulk_transition(
        ids=[new.pk, triaged.pk, resolved.pk, 999_999], status="resolved", actor=actor
    )
    assert result.changed == [triaged.pk]
    assert result.skipped == {
        new.pk: "Cannot go from new to resolved (allowed: closed, duplicate, triaged).",
        resolved.pk: "no change",
    }
    assert FeedbackItem.objects.get(pk=triaged.pk).status == "resolved"

    result = services.feedback_bulk_assign(
        ids=[new.pk, triaged.pk], assignee=support_user, actor=actor
    )
    assert result.changed == [new.pk, triaged.pk]
    assert FeedbackItem.objects.filter(assignee=support_user).count() == 2
    assert AuditEntry.objects.filter(action="feedback.assign").count() == 2


def test_exclusion__support_asks_release_manager_excludes__plan_paused_unit_off(
    live_plan: RolloutPlan,
    support_user: object,
    release_manager: object,
    django_capture_on_commit_callbacks: object,
) -> None:
    item = file(type="blocker", flag_key=FLAG, unit="u-beta")
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.feedback_request_exclusion(
            item=item, actor=Actor.for_user(support_user), reason="Cannot work at all"
        )
    assert [m.subject for m in mail.outbox] == [
        f"[feedback] Exclude u-beta from reports? (#{item.pk})"
    ]
    assert Flag.objects.get(name=FLAG).excluded_units == []  # asking changes no flag

    item = services.feedback_exclude_unit(
        item=item, actor=Actor.for_user(release_manager), reason="Until 2.3.2 ships"
    )
    assert item.unit_excluded_at is not None
    assert Flag.objects.get(name=FLAG).excluded_units == ["u-beta"]
    evaluation = evaluate_flag(key=FLAG, context={"targetingKey": "u-beta"})
    assert (evaluation.value, evaluation.reason) == (False, "TARGETING_MATCH")
    live_plan.refresh_from_db()
    assert live_plan.status == "paused"
    assert "changed by hand by rita" in live_plan.status_reason
    assert [e.kind for e in item.events.all()] == [
        "created",
        "exclusion_requested",
        "unit_excluded",
    ]
    flag_pk = str(Flag.objects.get(name=FLAG).pk)
    by_rita = AuditEntry.objects.filter(action="flag.update", object_id=flag_pk, actor_label="rita")
    [flag_entry] = by_rita
    assert flag_entry.after["excluded_units"] == ["u-beta"]
    assert flag_entry.reason == f"Until 2.3.2 ships (feedback #{item.pk})"
    # A second click changes nothing.
    services.feedback_exclude_unit(item=item, actor=Actor.for_user(release_manager))
    assert by_rita.count() == 1


def test_exclusion__praise_without_a_unit__not_possible(beta_flag: str) -> None:
    with pytest.raises(ExclusionNotPossible):
        services.feedback_exclude_unit(item=file(type="praise", flag_key=FLAG), actor=SYSTEM)
    with pytest.raises(ExclusionNotPossible):
        services.feedback_request_exclusion(item=file(type="blocker"), actor=SYSTEM)
    kinds = ["exclusion_requested", "unit_excluded"]
    assert not FeedbackEvent.objects.filter(kind__in=kinds).exists()
