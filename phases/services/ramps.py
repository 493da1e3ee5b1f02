"""Daily ramps and cohort admissions, exactly once.

A target steps at most once per plan-local date: the RampStep row (unique on target and date)
is inserted in the same transaction as the flag change, so a second beat, a retried task or a
second worker fails on the constraint and changes nothing. A three-day outage is one step, not
three. Admissions work the same way, unique on (admission, period).
"""

import datetime as dt
import logging

from django.db import IntegrityError, transaction

from flags.services import flag_lock, flag_state
from phases.models import (
    AdmissionBatch,
    CohortAdmission,
    Phase,
    PhaseTarget,
    RampSkip,
    RampStep,
    RolloutPlan,
)
from phases.services import flagops
from phases.services.plans import local_now
from rollout_control.core.actors import Actor

logger = logging.getLogger(__name__)


def skip_reason(plan: RolloutPlan, now: dt.datetime) -> str | None:
    """Why ramps do not move today, or None. Not-yet-the-step-hour is not a skip."""
    local = local_now(plan, now)
    if local.weekday() not in plan.allowed_weekdays:
        return f"{local:%A} is not an allowed day"
    for window in plan.freeze_windows.all():
        if window.starts_at <= now < window.ends_at:
            return f"freeze window: {window.reason or 'no reason given'}"
    if plan.held_reason:
        return f"held by guardrail: {plan.held_reason}"
    return None


def _due_plans(now: dt.datetime) -> list[tuple[RolloutPlan, Phase, dt.date]]:
    due = []
    plans = RolloutPlan.objects.filter(status=RolloutPlan.Status.ACTIVE).prefetch_related(
        "freeze_windows"
    )
    for plan in plans:
        local = local_now(plan, now)
        if local.hour < plan.step_hour:
            continue
        reason = skip_reason(plan, now)
        if reason:
            RampSkip.objects.get_or_create(
                plan=plan, local_date=local.date(), defaults={"reason": reason}
            )
            continue
        phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
        if phase is not None:
            due.append((plan, phase, local.date()))
    return due


def step_target(*, target: PhaseTarget, day: dt.date, actor: Actor, now: dt.datetime) -> bool:
    """One step for one target on one plan-local date; False when there is nothing to do, the
    step was already taken (by this run, an earlier one, or a concurrent worker), or the plan
    stopped ramping meanwhile.

    The flag's row is locked before its percentage is read, and the plan is read after that: a
    person's change that committed first is seen (it paused the plan, so nothing steps), and one
    that comes later waits for this step and then wins."""
    if target.step_bp == 0:
        return False
    cohort_key = target.cohort.key if target.cohort_id else None
    with transaction.atomic():
        flag = flag_lock(target.flag.name)
        phase = Phase.objects.select_related("plan").get(pk=target.phase_id)
        plan = phase.plan
        if (
            plan.status != RolloutPlan.Status.ACTIVE
            or plan.held_reason
            or phase.status != Phase.Status.ACTIVE
        ):
            return False
        current = flagops.current_bp(flag_state(flag), cohort_key) or 0
        if current >= target.target_bp:
            return False
        new = min(current + target.step_bp, target.target_bp)
        try:
            with transaction.atomic():
                RampStep.objects.create(
                    target=target, local_date=day, from_bp=current, to_bp=new, created_at=now
                )
        except IntegrityError:
            return False
        flagops.set_bp(
            flag_key=target.flag.name,
            cohort_key=cohort_key,
            basis_points=new,
            actor=actor,
            reason=f"{plan.name}: daily ramp {current / 100}% → {new / 100}%",
        )
    return True


def advance_ramps(*, now: dt.datetime, actor: Actor | None = None) -> dict[str, int]:
    actor = actor or Actor.system("advance_rollouts")
    stepped = 0
    for _plan, phase, day in _due_plans(now):
        for target in phase.targets.select_related("flag", "cohort", "phase__plan"):
            if step_target(target=target, day=day, actor=actor, now=now):
                stepped += 1
    return {"stepped": stepped}


def _period(admission: CohortAdmission, now: dt.datetime) -> int:
    plan = admission.phase.plan
    started = local_now(plan, admission.phase.started_at).date()
    return (local_now(plan, now).date() - started).days // admission.period_days


def admit_one(*, admission: CohortAdmission, now: dt.datetime, actor: Actor) -> list[str]:
    """Admits this period's batch (once): the next units of the waiting list, sized by the next
    entry of batch_sizes (the last one repeats), never past the cap."""
    from flags.models import CohortMember
    from flags.services import cohort_members_add

    period = _period(admission, now)
    with transaction.atomic():
        previous = list(admission.batches.values_list("units", flat=True))
        try:
            with transaction.atomic():
                batch = AdmissionBatch.objects.create(
                    admission=admission, period_index=period, created_at=now
                )
        except IntegrityError:
            return []
        admitted = sum(len(units) for units in previous)
        size = admission.batch_sizes[min(len(previous), len(admission.batch_sizes) - 1)]
        if admission.cap is not None:
            size = max(0, min(size, admission.cap - admitted))
        members = set(
            CohortMember.objects.filter(
                cohort=admission.cohort, kind=CohortMember.Kind.MEMBER
            ).values_list("unit", flat=True)
        )
        units = [unit for unit in admission.waiting_list if unit not in members][:size]
        batch.units = units
        batch.save(update_fields=["units"])
        if units:
            cohort_members_add(key=admission.cohort.key, units=units, actor=actor)
    return units


def admit_cohorts(*, now: dt.datetime, actor: Actor | None = None) -> dict[str, int]:
    actor = actor or Actor.system("admit_cohorts")
    admitted = 0
    for _plan, phase, _day in _due_plans(now):
        for admission in phase.admissions.select_related("cohort", "phase__plan"):
            admitted += len(admit_one(admission=admission, now=now, actor=actor))
    return {"admitted": admitted}
