"""Editing a plan's own settings (name, description, time zone, step hour, weekdays, what a
rollback goes back to)."""

from typing import Any

from django.db import transaction

from phases.exceptions import InvalidPlan, PlanConflict
from phases.models import RollbackTo, RolloutPlan
from phases.services.plans import _locked, _save, _validate_settings, plan_state
from rollout_control.core.actors import Actor
from rollout_control.core.services import audit_record, check_version

EDITABLE = ("name", "description", "timezone", "step_hour", "allowed_weekdays", "rollback_to")


def plan_update(
    *,
    plan: RolloutPlan,
    actor: Actor,
    changes: dict[str, Any],
    expected_version: int | None = None,
    base_version: int | None = None,
    reason: str = "",
) -> RolloutPlan:
    """Applies `changes` (fields of EDITABLE) all or nothing, audited before → after, and bumps
    the version. A plan changed meanwhile raises and nothing is written: VersionMismatch (412) for
    `expected_version` (If-Match), VersionConflict (409) for `base_version` (the version the edit
    started from). Both are compared under the row lock, so of two edits from one version
    exactly one wins. An edit that changes nothing writes nothing."""
    unknown = set(changes) - set(EDITABLE)
    if unknown:
        raise InvalidPlan("Not a setting a plan edit can change.", field=min(unknown))
    with transaction.atomic():
        plan = _locked(plan)
        check_version(
            label=f"Plan {plan.pk}",
            current=plan.version,
            expected=expected_version,
            base=base_version,
        )
        if plan.status == RolloutPlan.Status.COMPLETED:
            raise PlanConflict("A completed plan cannot be changed.")
        values = {name: changes.get(name, getattr(plan, name)) for name in EDITABLE}
        if not str(values["name"]).strip():
            raise InvalidPlan("A plan needs a name.", field="name")
        values["allowed_weekdays"] = sorted(set(values["allowed_weekdays"]))
        _validate_settings(values["timezone"], values["step_hour"], values["allowed_weekdays"])
        if values["rollback_to"] not in RollbackTo.values:
            raise InvalidPlan(f"Use one of {', '.join(RollbackTo.values)}.", field="rollback_to")
        changed = [name for name in EDITABLE if values[name] != getattr(plan, name)]
        if not changed:
            return plan
        before = plan_state(plan)
        for name in changed:
            setattr(plan, name, values[name])
        _save(plan, *changed)
        audit_record(
            actor=actor,
            action="plan.update",
            obj=plan,
            before=before,
            after=plan_state(plan),
            reason=reason,
        )
    return plan
