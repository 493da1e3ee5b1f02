"""Triage: priority, workflow, assignee, comments, one by one or in bulk."""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from feedback.exceptions import InvalidFeedback, InvalidTransition
from feedback.models import FeedbackComment, FeedbackEvent, FeedbackItem
from feedback.services.common import (
    TRANSITIONS,
    Priority,
    Status,
    clean_text,
    due_at_for,
    feedback_state,
    locked_item,
    notify_critical,
    record_change,
)
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT, user_has_role


def _is_person(actor: Actor) -> bool:
    """Staff (a login or a token) answer an item; beat and other system actors never do."""
    return actor.type != AuditEntry.ActorType.SYSTEM


def feedback_set_priority(
    *, item: FeedbackItem, priority: str, reason: str, actor: Actor
) -> FeedbackItem:
    """Staff override of the derived priority; the response deadline follows it."""
    if priority not in Priority.values:
        raise InvalidFeedback(f"Must be one of {', '.join(Priority.values)}.", field="priority")
    if not (reason or "").strip():
        raise InvalidFeedback("Say why the priority changes.", field="reason")
    with transaction.atomic():
        item = locked_item(item)
        if item.priority == priority:
            return item
        before = feedback_state(item)
        now = timezone.now()
        item.priority = priority
        item.due_at = due_at_for(priority, item.created_at)
        if item.overdue_at and item.due_at > now:
            item.overdue_at = None  # a later deadline: beat may warn again if it passes
        item.updated_at = now
        item.save(update_fields=["priority", "due_at", "overdue_at", "updated_at"])
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.PRIORITY,
            action="feedback.priority",
            before=before,
            after=feedback_state(item),
            reason=reason.strip(),
        )
        if priority == Priority.CRITICAL and item.is_open:
            notify_critical(item, why=f"{actor.label} raised it to critical: {reason.strip()}")
    return item


def _original(duplicate_of: FeedbackItem | None, item: FeedbackItem) -> FeedbackItem:
    if duplicate_of is None:
        raise InvalidFeedback("Name the original item.", field="duplicate_of")
    # Point at the root (read fresh: the caller's copy may be stale), so no chain forms.
    original = FeedbackItem.objects.get(pk=duplicate_of.pk)
    while original.duplicate_of_id is not None:
        original = FeedbackItem.objects.get(pk=original.duplicate_of_id)
    if original.pk == item.pk:
        raise InvalidFeedback("An item cannot duplicate itself.", field="duplicate_of")
    return original


def feedback_transition(
    *,
    item: FeedbackItem,
    status: str,
    actor: Actor,
    duplicate_of: FeedbackItem | None = None,
    reason: str = "",
) -> FeedbackItem:
    """Moves an item along the workflow. A person's first move (out of `new`, necessarily) is
    its first response; resolving records the time to resolution."""
    if status not in Status.values:
        raise InvalidFeedback(f"Must be one of {', '.join(Status.values)}.", field="status")
    with transaction.atomic():
        item = locked_item(item)
        if status == item.status:
            return item
        if status not in TRANSITIONS[item.status]:
            allowed = ", ".join(sorted(TRANSITIONS[item.status])) or "none"
            raise InvalidTransition(
                f"Cannot go from {item.status} to {status} (allowed: {allowed}).", field="status"
            )
        before = feedback_state(item)
        now = timezone.now()
        item.duplicate_of = _original(duplicate_of, item) if status == Status.DUPLICATE else None
        item.status = status
        if item.first_response_at is None and _is_person(actor):
            item.first_response_at = now
        if status in FeedbackItem.OPEN_STATUSES:
            item.closed_at, item.time_to_resolution = None, None
        else:
            item.closed_at = now
            resolved = status == Status.RESOLVED
            item.time_to_resolution = now - item.created_at if resolved else None
        item.updated_at = now
        item.save(
            update_fields=[
                "status",
                "duplicate_of",
                "first_response_at",
                "closed_at",
                "time_to_resolution",
                "updated_at",
            ]
        )
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.STATUS,
            action="feedback.status",
            before=before,
            after=feedback_state(item),
            reason=reason,
        )
    return item


def staff_user(username: str) -> AbstractBaseUser:
    """An active user with the support or release_manager role, by username."""
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None or not (user_has_role(user, SUPPORT) or user_has_role(user, RELEASE_MANAGER)):
        raise InvalidFeedback(
            f"{username!r} is not an active support or release manager user.", field="assignee"
        )
    return user


def feedback_assign(
    *, item: FeedbackItem, assignee: AbstractBaseUser | None, actor: Actor
) -> FeedbackItem:
    if assignee is not None:
        assignee = staff_user(assignee.get_username())
    with transaction.atomic():
        item = locked_item(item)
        if item.assignee_id == (assignee.pk if assignee else None):
            return item
        before = feedback_state(item)
        item.assignee = assignee
        item.updated_at = timezone.now()
        item.save(update_fields=["assignee", "updated_at"])
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.ASSIGNED,
            action="feedback.assign",
            before=before,
            after=feedback_state(item),
        )
    return item


def feedback_comment(*, item: FeedbackItem, text: str, actor: Actor) -> FeedbackComment:
    """An internal comment. A person's first comment counts as the item's first response."""
    text = clean_text(text)
    with transaction.atomic():
        item = locked_item(item)
        now = timezone.now()
        comment = FeedbackComment.objects.create(
            item=item,
            author_id=actor.user_id,
            author_label=actor.label[:150],
            text=text,
            created_at=now,
        )
        fields = ["updated_at"]
        if item.first_response_at is None and _is_person(actor):
            item.first_response_at = now
            fields.append("first_response_at")
        item.updated_at = now
        item.save(update_fields=fields)
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.COMMENTED,
            action="feedback.comment",
            before=None,
            after={"comment": comment.pk, "text": text[:200]},
            at=now,
        )
    return comment


def feedback_update(
    *, item: FeedbackItem, actor: Actor, changes: dict[str, Any], reason: str = ""
) -> FeedbackItem:
    """Several changes at once (the API's PATCH), all or nothing: priority, assignee, status
    (with duplicate_of). Each change is recorded on its own."""
    with transaction.atomic():
        if "priority" in changes:
            item = feedback_set_priority(
                item=item, priority=changes["priority"], reason=reason, actor=actor
            )
        if "assignee" in changes:
            item = feedback_assign(item=item, assignee=changes["assignee"], actor=actor)
        if "status" in changes:
            item = feedback_transition(
                item=item,
                status=changes["status"],
                duplicate_of=changes.get("duplicate_of"),
                actor=actor,
                reason=reason,
            )
        elif "duplicate_of" in changes:
            raise InvalidFeedback("Set status to duplicate with it.", field="duplicate_of")
    return item


@dataclass
class BulkResult:
    changed: list[int] = field(default_factory=list)
    skipped: dict[int, str] = field(default_factory=dict)


def _bulk(ids: Iterable[int], change: Any) -> BulkResult:
    result = BulkResult()
    with transaction.atomic():
        # Locked in key order, as every bulk change does, so two bulks cannot deadlock.
        items = list(
            FeedbackItem.objects.select_for_update().filter(pk__in=list(ids)).order_by("pk")
        )
        for item in items:
            try:
                if change(item):
                    result.changed.append(item.pk)
                else:
                    result.skipped[item.pk] = "no change"
            except (InvalidFeedback, InvalidTransition) as exc:
                result.skipped[item.pk] = exc.message
    return result


def feedback_bulk_assign(
    *, ids: Iterable[int], assignee: AbstractBaseUser | None, actor: Actor
) -> BulkResult:
    if assignee is not None:
        assignee = staff_user(assignee.get_username())
    target = assignee.pk if assignee else None

    def change(item: FeedbackItem) -> bool:
        if item.assignee_id == target:
            return False
        feedback_assign(item=item, assignee=assignee, actor=actor)
        return True

    return _bulk(ids, change)


# Duplicates need an original each, and nothing moves back to new: neither is a bulk change.
BULK_STATUSES = (Status.TRIAGED, Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED)


def feedback_bulk_transition(*, ids: Iterable[int], status: str, actor: Actor) -> BulkResult:
    if status not in BULK_STATUSES:
        raise InvalidFeedback(
            "Choose triaged, in progress, resolved or closed (duplicates one by one).",
            field="status",
        )

    def change(item: FeedbackItem) -> bool:
        if item.status == status:
            return False
        feedback_transition(item=item, status=status, actor=actor, reason="bulk change")
        return True

    return _bulk(ids, change)
