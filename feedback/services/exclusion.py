"""Taking the reporting unit of a blocker off the flag: support asks, a release manager acts."""

from django.db import transaction
from django.utils import timezone

from feedback.exceptions import ExclusionNotPossible
from feedback.models import FeedbackEvent, FeedbackItem
from feedback.services.common import locked_item, record_change
from flags.models import Flag
from flags.services import flag_update
from rollout_control.core.actors import Actor
from rollout_control.core.notifications import notify


def _check_excludable(item: FeedbackItem) -> None:
    if not item.can_exclude_unit:
        raise ExclusionNotPossible(
            "Only a blocker or critical item that names a flag and a unit can exclude the unit."
        )


def feedback_request_exclusion(
    *, item: FeedbackItem, actor: Actor, reason: str = ""
) -> FeedbackItem:
    """Support asks a release manager to take the reporting unit off the flag."""
    with transaction.atomic():
        item = locked_item(item)
        _check_excludable(item)
        if item.exclusion_requested_at or item.unit_excluded_at:
            return item
        now = timezone.now()
        item.exclusion_requested_at, item.exclusion_requested_by = now, actor.label[:150]
        item.updated_at = now
        item.save(update_fields=["exclusion_requested_at", "exclusion_requested_by", "updated_at"])
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.EXCLUSION_REQUESTED,
            action="feedback.exclusion_request",
            before=None,
            after={"flag": item.flag_key, "unit": item.unit},
            reason=reason,
            at=now,
        )
        notify(
            event="feedback.exclusion_requested",
            subject=f"[feedback] Exclude {item.unit} from {item.flag_key}? (#{item.pk})",
            text=(
                f"{actor.label} asks a release manager to put unit {item.unit} on the exclusion "
                f"list of flag {item.flag_key} because of blocker #{item.pk}.\n\n"
                f"{reason}\n\n{item.text[:2000]}"
            ),
            data={"id": item.pk, "flag": item.flag_key, "unit": item.unit},
        )
    return item


def feedback_exclude_unit(*, item: FeedbackItem, actor: Actor, reason: str = "") -> FeedbackItem:
    """Puts the reporting unit on the flag's exclusion list (release managers). A manual flag
    change: a live plan that owns the flag is paused, and says why."""
    with transaction.atomic():
        item = locked_item(item)
        _check_excludable(item)
        if item.unit_excluded_at:
            return item
        why = reason.strip() or f"Blocker #{item.pk} reported by {item.unit}"
        # Lock the flag row before reading its list: two exclusions at once must both land.
        excluded = (
            Flag.objects.select_for_update()
            .filter(name=item.flag_key)
            .values_list("excluded_units", flat=True)
            .first()
        )
        if excluded is None:
            raise ExclusionNotPossible(f"Flag {item.flag_key!r} no longer exists.")
        if item.unit not in excluded:
            flag_update(
                key=item.flag_key,
                actor=actor,
                changes={"excluded_units": [*excluded, item.unit]},
                reason=f"{why} (feedback #{item.pk})",
                source="manual",
            )
        now = timezone.now()
        item.unit_excluded_at = now
        item.updated_at = now
        item.save(update_fields=["unit_excluded_at", "updated_at"])
        record_change(
            item,
            actor=actor,
            kind=FeedbackEvent.Kind.UNIT_EXCLUDED,
            action="feedback.exclude_unit",
            before=None,
            after={"flag": item.flag_key, "unit": item.unit},
            reason=why,
            at=now,
        )
    return item
