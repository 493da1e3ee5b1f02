"""Every write to feedback: intake, triage, assignment, comments, overdue marking, exclusions.

Each function is one transaction that writes one history event and one audit entry per item it
changes. Notifications (critical items, overdue items, exclusion requests) are queued with
`core.notifications.notify`, which sends them through Celery after the commit.
"""

from feedback.services.alerts import feedback_send_alert_digests
from feedback.services.common import (
    DERIVED_PRIORITY,
    RESPONSE_TARGETS,
    TRANSITIONS,
    derive_priority,
    due_at_for,
    feedback_state,
)
from feedback.services.exclusion import feedback_exclude_unit, feedback_request_exclusion
from feedback.services.intake import FlagSeen, feedback_create
from feedback.services.overdue import feedback_mark_overdue
from feedback.services.triage import (
    BULK_STATUSES,
    BulkResult,
    feedback_assign,
    feedback_bulk_assign,
    feedback_bulk_transition,
    feedback_comment,
    feedback_set_priority,
    feedback_transition,
    feedback_update,
    staff_user,
)

__all__ = [
    "BULK_STATUSES",
    "DERIVED_PRIORITY",
    "RESPONSE_TARGETS",
    "TRANSITIONS",
    "BulkResult",
    "FlagSeen",
    "derive_priority",
    "due_at_for",
    "feedback_assign",
    "feedback_bulk_assign",
    "feedback_bulk_transition",
    "feedback_comment",
    "feedback_create",
    "feedback_exclude_unit",
    "feedback_mark_overdue",
    "feedback_request_exclusion",
    "feedback_send_alert_digests",
    "feedback_set_priority",
    "feedback_state",
    "feedback_transition",
    "feedback_update",
    "staff_user",
]
