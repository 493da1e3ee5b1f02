"""What every feedback service shares: the response targets, the workflow, the state the
audit log records, and writing one history event plus one audit entry per change."""

import json
from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from feedback.exceptions import InvalidFeedback
from feedback.models import (
    MAX_TEXT,
    FeedbackEvent,
    FeedbackItem,
    FeedbackPriority,
    FeedbackStatus,
    FeedbackType,
)
from feedback.services.alerts import alert_window_claim
from rollout_control.core.actors import Actor
from rollout_control.core.notifications import notify
from rollout_control.core.services import audit_record

Priority, Status, Type = FeedbackPriority, FeedbackStatus, FeedbackType

# From the response times our users promise their beta testers (seeds: "Response Times").
RESPONSE_TARGETS: dict[str, timedelta] = {
    Priority.CRITICAL: timedelta(hours=1),
    Priority.HIGH: timedelta(hours=4),
    Priority.MEDIUM: timedelta(days=1),
    Priority.LOW: timedelta(days=3),
}
DERIVED_PRIORITY: dict[str, str] = {
    Type.BLOCKER: Priority.CRITICAL,
    Type.BUG: Priority.HIGH,
    Type.USABILITY: Priority.MEDIUM,
    Type.QUESTION: Priority.MEDIUM,
    Type.FEATURE_REQUEST: Priority.LOW,
    Type.PRAISE: Priority.LOW,
}
# new → triaged → in progress → resolved / closed / duplicate; finished items can be reopened.
TRANSITIONS: dict[str, frozenset[str]] = {
    Status.NEW: frozenset({Status.TRIAGED, Status.CLOSED, Status.DUPLICATE}),
    Status.TRIAGED: frozenset(
        {Status.IN_PROGRESS, Status.RESOLVED, Status.CLOSED, Status.DUPLICATE}
    ),
    Status.IN_PROGRESS: frozenset(
        {Status.TRIAGED, Status.RESOLVED, Status.CLOSED, Status.DUPLICATE}
    ),
    Status.RESOLVED: frozenset({Status.IN_PROGRESS}),
    Status.CLOSED: frozenset({Status.TRIAGED}),
    Status.DUPLICATE: frozenset({Status.TRIAGED}),
}
MAX_JSON_BYTES = 10_000


def derive_priority(feedback_type: str) -> str:
    return DERIVED_PRIORITY[feedback_type]


def due_at_for(priority: str, created_at: datetime) -> datetime:
    return created_at + RESPONSE_TARGETS[priority]


def feedback_state(item: FeedbackItem) -> dict[str, Any]:
    """What the audit log records before and after a change (the text is on the item)."""
    return {
        "type": item.type,
        "priority": item.priority,
        "status": item.status,
        "assignee": item.assignee.get_username() if item.assignee_id else None,
        "duplicate_of": item.duplicate_of_id,
        "due_at": item.due_at.isoformat(),
        "rating": item.rating,
        "flag": item.flag_key or None,
        "unit": item.unit or None,
        "plan": item.plan_name or None,
        "phase": item.phase_name or None,
    }


def record_change(
    item: FeedbackItem,
    *,
    actor: Actor,
    kind: str,
    action: str,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    reason: str = "",
    at: datetime | None = None,
) -> None:
    """The item's history event and the audit entry for one change."""
    FeedbackEvent.objects.create(
        item=item,
        kind=kind,
        actor_label=actor.label[:150],
        before=before,
        after=after,
        reason=reason,
        created_at=at or timezone.now(),
    )
    audit_record(
        actor=actor,
        action=action,
        obj=item,
        before=before,
        after=after,
        reason=reason,
    )


def locked_item(item: FeedbackItem | int) -> FeedbackItem:
    pk = item if isinstance(item, int) else item.pk
    # The row alone, no join: after waiting for a concurrent change PostgreSQL re-reads the
    # locked row but not a joined one, so a select_related assignee could be the stale (None)
    # one while assignee_id is the new one (a 500 in concurrent triage, issue 14).
    return FeedbackItem.objects.select_for_update().get(pk=pk)


def json_field(value: Any, name: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidFeedback("Must be a JSON object.", field=name)
    if len(json.dumps(value, default=str)) > MAX_JSON_BYTES:
        raise InvalidFeedback(f"At most {MAX_JSON_BYTES} bytes as JSON.", field=name)
    return value


def clean_text(text: Any, name: str = "text") -> str:
    """Kept as sent, indentation and trailing lines included (steps to reproduce, pasted
    logs): docs/api.md promises text is stored as sent. Blank (whitespace only) is refused."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidFeedback("This field may not be blank.", field=name)
    if len(text) > MAX_TEXT:
        raise InvalidFeedback(f"At most {MAX_TEXT} characters.", field=name)
    return text


def notify_critical(item: FeedbackItem, *, why: str) -> None:
    # One alert per flag and priority per window; the rest go out as a digest (alerts.py).
    if not alert_window_claim(item=item, now=timezone.now()):
        return
    where = f" on flag {item.flag_key}" if item.flag_key else ""
    plan = f" ({item.plan_name} / {item.phase_name})" if item.plan_name else ""
    notify(
        event="feedback.critical",
        subject=f"[critical feedback] #{item.pk} {item.get_type_display()}{where}{plan}",
        text=(
            f"{why}. Answer by {item.due_at:%Y-%m-%d %H:%M} UTC.\n\n"
            f"Unit: {item.unit or '-'}  Organisation: {item.org or '-'}  "
            f"App version: {item.app_version or '-'}\n\n{item.text[:2000]}"
        ),
        data={
            "id": item.pk,
            "type": item.type,
            "priority": item.priority,
            "flag": item.flag_key or None,
            "unit": item.unit or None,
            "plan": item.plan_name or None,
            "phase": item.phase_name or None,
            "due_at": item.due_at.isoformat(),
        },
    )
