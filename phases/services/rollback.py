"""Checkpoints and rollback. A rollback restores every flag of the plan to the last checkpoint
(the kill switch when there is none), in one transaction, once per breach: the plan row is
locked and a plan already rolled back is left alone, however many workers see the breach."""

import datetime as dt
from typing import Any

from django.db import transaction
from django.utils import timezone

from flags.services import flag_state
from phases.exceptions import PlanConflict
from phases.models import Checkpoint, Incident, Phase, RolloutPlan
from phases.services import flagops, notify
from phases.services.plans import (
    LIVE_STATUSES,
    _locked,
    _save,
    phase_activate,
    plan_flags,
    plan_state,
)
from rollout_control.core.actors import Actor
from rollout_control.core.services import audit_record


def plan_config(plan: RolloutPlan) -> dict[str, Any]:
    return {flag.name: flag_state(flag) for flag in plan_flags(plan)}


def checkpoint_take(*, plan: RolloutPlan, now: dt.datetime | None = None) -> Checkpoint | None:
    """Records the plan's flag configuration unless it equals the last checkpoint."""
    config = plan_config(plan)
    last = plan.checkpoints.first()
    if last is not None and last.config == config:
        return None
    return Checkpoint.objects.create(plan=plan, config=config, created_at=now or timezone.now())


def plan_rollback(
    *,
    plan: RolloutPlan,
    trigger: str,
    actor: Actor,
    reason: str = "",
    observed: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
) -> Incident:
    now = now or timezone.now()
    with transaction.atomic():
        plan = _locked(plan)
        if plan.status == RolloutPlan.Status.ROLLED_BACK:
            return plan.incidents.first()
        if plan.status not in LIVE_STATUSES:
            raise PlanConflict(f"A {plan.status} plan cannot be rolled back.")
        if trigger not in Incident.Trigger.values:
            raise PlanConflict(f"Unknown trigger {trigger!r}.")
        before = plan_state(plan)
        checkpoint = plan.checkpoints.first()
        steps: list[dict[str, Any]] = []
        for flag in plan_flags(plan):
            state = checkpoint.config.get(flag.name) if checkpoint else None
            flagops.restore_state(
                flag_key=flag.name, state=state, actor=actor, reason=f"rollback ({trigger})"
            )
            if state is None:
                steps.append(
                    {
                        "action": "disabled",
                        "flag": flag.name,
                        "detail": "kill switch (no checkpoint)",
                    }
                )
            else:
                steps.append(
                    {
                        "action": "restored",
                        "flag": flag.name,
                        "percentage": state["rollout_percentage"],
                    }
                )
        phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
        if phase is not None:
            phase.status, phase.ended_at = Phase.Status.ROLLED_BACK, now
            phase.save(update_fields=["status", "ended_at"])
        plan.status, plan.status_reason = RolloutPlan.Status.ROLLED_BACK, reason or trigger
        _save(plan, "status", "status_reason")
        recipients = notify.send_team_note(
            "plan.rolled_back",
            f"[rollback] {plan.name}: {trigger}",
            f"{plan.name} was rolled back ({trigger}) by {actor.label}.\n{reason}\n\nSteps:\n"
            + "\n".join(f"- {step['action']} {step['flag']}" for step in steps),
            {
                "plan": plan.name,
                "plan_id": plan.pk,
                "trigger": trigger,
                "observed": observed or {},
                "steps": steps,
            },
        )
        steps.append({"action": "team_alerted", "recipients": recipients})
        incident = Incident.objects.create(
            plan=plan,
            phase=phase,
            trigger=trigger,
            reason=reason,
            observed=observed or {},
            steps=steps,
            actor_label=actor.label,
            created_at=now,
        )
        audit_record(
            actor=actor,
            action="plan.rollback",
            obj=plan,
            before=before,
            after=plan_state(plan),
            reason=reason or trigger,
        )
    return incident


def plan_restart_phase(*, plan: RolloutPlan, actor: Actor, now: dt.datetime | None = None) -> Phase:
    """After a rollback: the rolled-back phase starts again (its targets, admissions, kickoff)."""
    now = now or timezone.now()
    with transaction.atomic():
        plan = _locked(plan)
        if plan.status != RolloutPlan.Status.ROLLED_BACK:
            raise PlanConflict("Only a rolled-back plan can restart its phase.")
        phase = plan.phases.filter(status=Phase.Status.ROLLED_BACK).order_by("-position").first()
        if phase is None:
            raise PlanConflict("This plan has no rolled-back phase to restart.")
        before = plan_state(plan)
        plan.status, plan.status_reason = RolloutPlan.Status.ACTIVE, ""
        _save(plan, "status", "status_reason")
        phase.status = Phase.Status.PENDING
        phase.save(update_fields=["status"])
        audit_record(
            actor=actor,
            action="plan.restart_phase",
            obj=plan,
            before=before,
            after=plan_state(plan),
        )
        return phase_activate(phase=phase, actor=actor, now=now)
