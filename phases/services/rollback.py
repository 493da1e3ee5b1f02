"""Safe points and rollback.

The rollback rule: a rollback, automatic or manual, never increases any unit's exposure. For
every flag of the plan it applies `flags.exposure.capped(current, safe)`: each percentage goes
down to the safe point's (never up), a kill switch or exclusion that is on stays on, and
whatever a person set after the safe point is kept except where it must be lowered.

The safe point is the last *verified* one: a configuration that stayed live with every
guardrail in force passing (with data) for at least one full guardrail window after its last
change (`safe_point_observe`, called by every guardrail run). Where there is none, it is the
baseline taken just before the current phase began (for the first phase, the flags as they were
before the plan). A plan or guardrail may say `off` instead: every flag's kill switch goes on;
`data_corruption_detected` means off unless its guardrail says otherwise.

The rollback runs in one transaction, once per breach: the plan's flags and then the plan are
locked (a person's change locks a flag and then, to pause the plan, the plan: same order), and a
plan already rolled back is left alone, however many workers see the breach.
"""

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.db import transaction
from django.utils import timezone

from flags.exposure import Exposure, capped, exposure_of, switched_off
from flags.services import flag_lower, flag_set_kill_switch, flag_state
from monitoring.windows import parse_window
from phases.exceptions import PlanConflict
from phases.models import (
    Checkpoint,
    Guardrail,
    GuardrailCheck,
    Incident,
    Phase,
    RollbackTo,
    RolloutPlan,
)
from phases.services import notify
from phases.services.plans import (
    LIVE_STATUSES,
    _save,
    locked_with_flags,
    phase_activate,
    plan_config,
    plan_flags,
    plan_state,
)
from rollout_control.core.actors import Actor
from rollout_control.core.services import audit_record

ALREADY_SAFE = "already at the safe point"


# --- safe points ------------------------------------------------------------------------------


def _all_passing(guardrails: list[Guardrail]) -> bool:
    """Every guardrail's latest check passed with data (insufficient data or an error cannot
    vouch for a configuration)."""
    if not guardrails:
        return False
    for guardrail in guardrails:
        latest = GuardrailCheck.objects.filter(guardrail=guardrail).order_by("-minute").first()
        if latest is None or latest.verdict != "pass":
            return False
    return True


def safe_point_observe(
    *, plan: RolloutPlan, guardrails: list[Guardrail], now: dt.datetime
) -> Checkpoint | None:
    """After a guardrail run: follow the live configuration toward a verified safe point.
    Returns the checkpoint verified by this call, if any."""
    plan = RolloutPlan.objects.select_for_update().get(pk=plan.pk)  # one observer at a time
    passing = _all_passing(guardrails)
    config = plan_config(plan)
    latest = plan.checkpoints.filter(kind=Checkpoint.Kind.OBSERVED).first()
    if latest is None or latest.config != config:
        if latest is not None and latest.verified_at is None:
            latest.delete()  # superseded before it was verified: never a safe point
        if not passing:
            return None
        phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
        Checkpoint.objects.create(
            plan=plan, phase=phase, config=config, created_at=now, passing_since=now
        )
        return None
    if not passing:
        if latest.verified_at is None and latest.passing_since is not None:
            latest.passing_since = None
            latest.save(update_fields=["passing_since"])
        return None
    if latest.passing_since is None:
        latest.passing_since = now
        latest.save(update_fields=["passing_since"])
    window = max(parse_window(g.window) for g in guardrails)
    if latest.verified_at is None and now - latest.passing_since >= window:
        latest.verified_at = now
        latest.save(update_fields=["verified_at"])
        return latest
    return None


# --- what a rollback goes back to ----------------------------------------------------------------


@dataclass(frozen=True)
class RestorePoint:
    kind: str  # "off", "safe_point", "baseline" or "none" (nothing recorded: off)
    checkpoint: Checkpoint | None

    @property
    def label(self) -> str:
        if self.kind == "safe_point" and self.checkpoint is not None:
            verified = self.checkpoint.verified_at or self.checkpoint.created_at
            return f"the safe point verified at {verified:%Y-%m-%d %H:%M} UTC"
        if self.kind == "baseline" and self.checkpoint is not None:
            phase = self.checkpoint.phase.name if self.checkpoint.phase else "the phase"
            return f"the flags as they were before {phase} began"
        if self.kind == "none":
            return "off (no safe point or baseline is recorded)"
        return "off (kill switch on)"

    def as_dict(self) -> dict[str, Any]:
        checkpoint = self.checkpoint
        return {
            "kind": self.kind,
            "label": self.label,
            "checkpoint": checkpoint.pk if checkpoint else None,
            "verified_at": checkpoint.verified_at.isoformat()
            if checkpoint and checkpoint.verified_at
            else None,
        }

    def lowered(self, flag_key: str, current: Exposure) -> Exposure:
        """The flag after the rollback: never more than `current` for any unit."""
        if self.checkpoint is None:
            return switched_off(current)
        state = self.checkpoint.config.get(flag_key)
        if state is None:  # the flag joined the plan after this point: it was not part of it
            return switched_off(current)
        return capped(current, exposure_of(state))


def rollback_mode(plan: RolloutPlan, trigger: str, guardrail: Guardrail | None = None) -> str:
    if guardrail is not None and guardrail.rollback_to:
        return guardrail.rollback_to
    if trigger == Incident.Trigger.DATA_CORRUPTION_DETECTED:
        return RollbackTo.OFF
    return plan.rollback_to


def restore_point(plan: RolloutPlan, *, mode: str) -> RestorePoint:
    if mode == RollbackTo.OFF:
        return RestorePoint("off", None)
    verified = (
        plan.checkpoints.filter(kind=Checkpoint.Kind.OBSERVED, verified_at__isnull=False)
        .order_by("-verified_at", "-id")
        .first()
    )
    if verified is not None:
        return RestorePoint("safe_point", verified)
    phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
    baselines = plan.checkpoints.filter(kind=Checkpoint.Kind.BASELINE)
    baseline = (baselines.filter(phase=phase) if phase else baselines).first()
    if baseline is not None:
        return RestorePoint("baseline", baseline)
    return RestorePoint("none", None)


def rollback_preview(plan: RolloutPlan, *, mode: str | None = None) -> list[dict[str, Any]]:
    """Per flag: before → after of a rollback now (nothing is written)."""
    point = restore_point(plan, mode=mode or plan.rollback_to)
    rows = []
    for flag in plan_flags(plan):
        before = flag_state(flag)
        current = exposure_of(before)
        after = point.lowered(flag.name, current)
        rows.append({"flag": flag.name, "before": current, "after": after, "point": point})
    return rows


# --- rollback -----------------------------------------------------------------------------------


def _lower_flags(
    plan: RolloutPlan, point: RestorePoint, actor: Actor, trigger: str
) -> list[dict[str, Any]]:
    steps: list[dict[str, Any]] = []
    for flag in plan_flags(plan):
        changed = flag_lower(
            key=flag.name,
            to=lambda current, key=flag.name: point.lowered(key, current),
            actor=actor,
            reason=f"rollback ({trigger}) to {point.label}",
            source="plan",
        )
        if changed is None:
            steps.append({"action": "unchanged", "flag": flag.name, "detail": ALREADY_SAFE})
            continue
        before, after = changed
        steps.append(
            {
                "action": "disabled" if after["kill_switch"] and not before["kill_switch"]
                else "lowered",
                "flag": flag.name,
                "before": _summary(before),
                "after": _summary(after),
            }
        )  # fmt: skip
    return steps


def _summary(state: dict[str, Any]) -> dict[str, Any]:
    return {
        "kill_switch": state["kill_switch"],
        "forced_on": state["forced_on"],
        "rollout_percentage": state["rollout_percentage"],
        "cohort_rules": state["cohort_rules"],
        "excluded_units": len(state["excluded_units"]),
    }


def plan_rollback(
    *,
    plan: RolloutPlan,
    trigger: str,
    actor: Actor,
    reason: str = "",
    observed: dict[str, Any] | None = None,
    now: dt.datetime | None = None,
    mode: str | None = None,
    guardrail: Guardrail | None = None,
) -> Incident:
    now = now or timezone.now()
    if trigger not in Incident.Trigger.values:
        raise PlanConflict(f"Unknown trigger {trigger!r}.")
    if mode is not None and mode not in RollbackTo.values:
        raise PlanConflict(f"Roll back to one of {', '.join(RollbackTo.values)}.")
    with transaction.atomic():
        plan = locked_with_flags(plan)
        if plan.status == RolloutPlan.Status.ROLLED_BACK:
            return plan.incidents.first()
        if plan.status not in LIVE_STATUSES:
            raise PlanConflict(f"A {plan.status} plan cannot be rolled back.")
        before = plan_state(plan)
        point = restore_point(plan, mode=mode or rollback_mode(plan, trigger, guardrail))
        steps = _lower_flags(plan, point, actor, trigger)
        phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
        if phase is not None:
            phase.status, phase.ended_at = Phase.Status.ROLLED_BACK, now
            phase.save(update_fields=["status", "ended_at"])
        plan.status, plan.status_reason = RolloutPlan.Status.ROLLED_BACK, reason or trigger
        _save(plan, "status", "status_reason")
        lowered = [step for step in steps if step["action"] != "unchanged"]
        outcome = (
            f"{len(lowered)} flag(s) lowered to {point.label}"
            if lowered
            else f"nothing to take away: {ALREADY_SAFE} ({point.label})"
        )
        recipients = notify.send_team_note(
            "plan.rolled_back",
            f"[rollback] {plan.name}: {trigger}",
            f"{plan.name} was rolled back ({trigger}) by {actor.label}: {outcome}.\n{reason}\n\n"
            "Steps:\n" + "\n".join(f"- {step['action']} {step['flag']}" for step in steps),
            {
                "plan": plan.name,
                "plan_id": plan.pk,
                "trigger": trigger,
                "observed": observed or {},
                "restored_to": point.as_dict(),
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
            restored_to=point.as_dict() | {"outcome": outcome},
            steps=steps,
            actor_label=actor.label,
            created_at=now,
        )
        audit_record(
            actor=actor,
            action="plan.rollback",
            obj=plan,
            before=before,
            after=plan_state(plan) | {"restored_to": point.as_dict(), "outcome": outcome},
            reason=reason or trigger,
        )
    return incident


def plan_restart_phase(*, plan: RolloutPlan, actor: Actor, now: dt.datetime | None = None) -> Phase:
    """After a rollback: the rolled-back phase starts again (its targets, admissions, kickoff)."""
    now = now or timezone.now()
    with transaction.atomic():
        plan = locked_with_flags(plan)
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
        for flag in plan_flags(plan):
            # A person restarts the phase: the kill switches the rollback turned on go; one a
            # person turned on stays (kill_switch_source says who).
            if flag.everyone is False and flag.kill_switch_source == "plan":
                flag_set_kill_switch(
                    key=flag.name, killed=False, actor=actor, reason="phase restarted",
                    source="plan",
                )  # fmt: skip
        audit_record(
            actor=actor,
            action="plan.restart_phase",
            obj=plan,
            before=before,
            after=plan_state(plan),
        )
        return phase_activate(phase=phase, actor=actor, now=now)
