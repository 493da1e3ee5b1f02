"""Intake: an item with its derived priority and deadline, and the flag state its unit saw."""

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import transaction
from django.utils import timezone

from feedback import metrics
from feedback.exceptions import InvalidFeedback
from feedback.models import FeedbackEvent, FeedbackItem, FeedbackSource
from feedback.services.common import (
    Priority,
    Type,
    clean_text,
    derive_priority,
    due_at_for,
    feedback_state,
    json_field,
    notify_critical,
    record_change,
)
from flags.selectors import evaluate_flag, flag_get
from phases.services import live_plan_for_flag
from rollout_control.core.actors import Actor


@dataclass(frozen=True, slots=True)
class FlagSeen:
    """The flag as the reporting unit saw it: evaluation plus the plan and phase owning it."""

    value: bool | None = None
    reason: str = ""
    percentage: Decimal | None = None
    cohort: str = ""
    plan: Any = None
    phase: Any = None


def _flag_seen(flag_key: str, unit: str, org: str, context: dict[str, Any]) -> FlagSeen:
    if flag_get(key=flag_key) is None:
        raise InvalidFeedback(f"No flag with key {flag_key!r}.", field="flag")
    evaluation_context = dict(context)
    if unit:
        evaluation_context["targetingKey"] = unit
    if org:
        evaluation_context.setdefault("orgId", org)
    evaluation = evaluate_flag(key=flag_key, context=evaluation_context)
    plan = live_plan_for_flag(flag_key)
    phase = plan.phases.filter(status="active").first() if plan is not None else None
    metadata = evaluation.metadata
    percentage = metadata.get("percentage")
    return FlagSeen(
        value=None if evaluation.error_code else evaluation.value,
        reason=evaluation.error_code or evaluation.reason,
        percentage=None if percentage is None else Decimal(str(percentage)),
        cohort=str(metadata.get("cohort") or ""),
        plan=plan,
        phase=phase,
    )


def feedback_create(
    *,
    type: str,
    text: str,
    actor: Actor,
    rating: int | None = None,
    flag_key: str = "",
    unit: str = "",
    org: str = "",
    app_version: str = "",
    metadata: dict[str, Any] | None = None,
    context: dict[str, Any] | None = None,
    source: str = FeedbackSource.API,
) -> FeedbackItem:
    """Stores an item with its derived priority and due time, and the flag state the unit saw.
    A critical item notifies the team at once."""
    if type not in Type.values:
        raise InvalidFeedback(f"Must be one of {', '.join(Type.values)}.", field="type")
    text = clean_text(text)
    if rating is not None and (isinstance(rating, bool) or rating not in range(1, 6)):
        raise InvalidFeedback("Must be a whole number from 1 to 5.", field="rating")
    metadata = json_field(metadata, "metadata")
    context = json_field(context, "context")
    seen = _flag_seen(flag_key, unit, org, context) if flag_key else FlagSeen()
    now = timezone.now()
    priority = derive_priority(type)
    with transaction.atomic():
        item = FeedbackItem.objects.create(
            type=type,
            text=text,
            rating=rating,
            priority=priority,
            flag_key=flag_key,
            unit=unit,
            org=org,
            app_version=app_version,
            metadata=metadata,
            flag_value=seen.value,
            flag_reason=seen.reason,
            flag_percentage=seen.percentage,
            flag_cohort=seen.cohort,
            plan=seen.plan,
            phase=seen.phase,
            plan_name=seen.plan.name if seen.plan else "",
            phase_name=seen.phase.name if seen.phase else "",
            source=source,
            submitted_by=actor.label[:150],
            created_at=now,
            updated_at=now,
            due_at=due_at_for(priority, now),
        )
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.CREATED,
            action="feedback.create",
            before=None,
            after=feedback_state(item),
            at=now,
        )
        if priority == Priority.CRITICAL:
            notify_critical(item, why=f"A {item.get_type_display().lower()} came in")
    metrics.items_total.labels(item.type, item.priority).inc()
    return item
