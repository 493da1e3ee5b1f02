"""Plans and phases: creation (from a template), activation, pause, resume, completion."""

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from flags.models import Cohort, Flag
from flags.services import flag_lock, flag_state, flag_update
from monitoring.windows import parse_window
from phases.exceptions import InvalidPlan, PlanConflict
from phases.models import (
    ChecklistItem,
    Checkpoint,
    CohortAdmission,
    FreezeWindow,
    GateCriterion,
    Phase,
    PhaseTarget,
    PlanTemplate,
    RampStep,
    RollbackTo,
    RolloutPlan,
)
from phases.services import flagops, notify
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.core.services import audit_record, config_version_bump

LIVE_STATUSES = (RolloutPlan.Status.ACTIVE, RolloutPlan.Status.PAUSED)
COMPARATORS = {c.value for c in GateCriterion.Comparator}


def plan_state(plan: RolloutPlan) -> dict[str, Any]:
    active = plan.phases.filter(status=Phase.Status.ACTIVE).first()
    return {
        "name": plan.name,
        "description": plan.description,
        "status": plan.status,
        "status_reason": plan.status_reason,
        "held_reason": plan.held_reason,
        "timezone": plan.timezone,
        "step_hour": plan.step_hour,
        "allowed_weekdays": plan.allowed_weekdays,
        "rollback_to": plan.rollback_to,
        "active_phase": active.name if active else None,
        "version": plan.version,
    }


def local_now(plan: RolloutPlan, now: dt.datetime) -> dt.datetime:
    return now.astimezone(ZoneInfo(plan.timezone))


def _percent(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 100:
        raise InvalidPlan("Must be a number from 0 to 100.", field=field)
    points = round(value * 100)
    if abs(points - value * 100) > 1e-6:
        raise InvalidPlan("At most two decimal places.", field=field)
    return points


def _lookup(model: type, mapping: dict[str, str], slot: str, field: str) -> Any:
    key = mapping.get(slot)
    if not key:
        raise InvalidPlan(
            f"Map the template's {slot!r} to an existing key.", field=f"{field}.{slot}"
        )
    lookup = {"name": key} if model is Flag else {"key": key}
    found = model.objects.filter(**lookup).first()
    if found is None:
        raise InvalidPlan(f"No {model.__name__.lower()} with key {key!r}.", field=f"{field}.{slot}")
    return found


def _validate_settings(timezone_name: str, step_hour: Any, weekdays: Any) -> None:
    try:
        ZoneInfo(timezone_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidPlan(f"Unknown time zone {timezone_name!r}.", field="timezone") from None
    if isinstance(step_hour, bool) or not isinstance(step_hour, int) or not 0 <= step_hour <= 23:
        raise InvalidPlan("Must be an hour from 0 to 23.", field="step_hour")
    if not isinstance(weekdays, list) or not weekdays or any(d not in range(7) for d in weekdays):
        raise InvalidPlan(
            "A non-empty list of weekdays, 0 (Monday) to 6.", field="allowed_weekdays"
        )


def _build_phase(
    plan: RolloutPlan,
    position: int,
    spec: dict[str, Any],
    ctx: dict[str, Any],
    start: dt.date | None,
) -> dt.date | None:
    field = f"phases[{position}]"
    days = spec.get("min_duration_days", 0)
    phase = Phase.objects.create(
        plan=plan,
        position=position,
        name=spec["name"],
        description=spec.get("description", ""),
        min_duration_days=days,
        planned_start=start,
        planned_end=start + dt.timedelta(days=days) if start and days else None,
        required_signoffs=spec.get("required_signoffs", []),
        kickoff_subject=spec.get("kickoff", {}).get("subject", ""),
        kickoff_body=spec.get("kickoff", {}).get("body", ""),
    )
    for index, target in enumerate(spec.get("targets", [])):
        where = f"{field}.targets[{index}]"
        start_bp = _percent(target.get("start", 0), f"{where}.start")
        step_bp = _percent(target.get("step", 0), f"{where}.step")
        target_bp = _percent(target.get("target", 100), f"{where}.target")
        if target_bp < start_bp:
            raise InvalidPlan("The target may not be below the start.", field=f"{where}.target")
        cohort = ctx["cohorts"][target["cohort"]] if target.get("cohort") else None
        PhaseTarget.objects.create(
            phase=phase,
            flag=ctx["flags"][target["flag"]],
            cohort=cohort,
            start_bp=start_bp,
            step_bp=step_bp,
            target_bp=target_bp,
        )
    for index, admission in enumerate(spec.get("admissions", [])):
        where = f"{field}.admissions[{index}]"
        sizes = admission.get("batch_sizes", [])
        if not sizes or any(isinstance(n, bool) or not isinstance(n, int) or n < 1 for n in sizes):
            raise InvalidPlan(
                "Batch sizes are whole numbers of at least 1.", field=f"{where}.batch_sizes"
            )
        CohortAdmission.objects.create(
            phase=phase,
            cohort=ctx["cohorts"][admission["cohort"]],
            waiting_list=list(ctx["waiting_lists"].get(admission["cohort"], [])),
            batch_sizes=sizes,
            period_days=admission.get("period_days", 7),
            cap=admission.get("cap"),
        )
    for index, criterion in enumerate(spec.get("criteria", [])):
        where = f"{field}.criteria[{index}]"
        if criterion.get("comparator") not in COMPARATORS:
            raise InvalidPlan(
                f"Use one of {', '.join(sorted(COMPARATORS))}.", field=f"{where}.comparator"
            )
        try:
            parse_window(criterion.get("window", "24h"))
        except DomainError as exc:
            raise InvalidPlan(exc.message, field=f"{where}.window") from None
        filters = dict(criterion.get("filters", {}))
        if criterion.get("flag"):
            filters["flag"] = ctx["flags"][criterion["flag"]].name
        _scope_feedback(criterion["metric"], filters, plan)
        GateCriterion.objects.create(
            phase=phase,
            kind=criterion.get("kind", GateCriterion.Kind.METRIC),
            description=criterion.get("description", criterion["metric"]),
            metric=criterion["metric"],
            comparator=criterion["comparator"],
            threshold=float(criterion["threshold"]),
            window=criterion.get("window", "24h"),
            min_samples=criterion.get("min_samples", 0),
            filters=filters,
        )
    for text in spec.get("checklist", []):
        ChecklistItem.objects.create(phase=phase, text=text)
    return start + dt.timedelta(days=days) if start else None


def _scope_feedback(metric: str, filters: dict[str, Any], plan: RolloutPlan) -> None:
    """Feedback metrics count a plan's own feedback, not every plan's."""
    from monitoring.models import MetricDefinition

    if MetricDefinition.objects.filter(name=metric, source="feedback").exists():
        filters.setdefault("plan", plan.name)


def _guardrail_from_spec(
    plan: RolloutPlan, index: int, spec: dict[str, Any], ctx: dict[str, Any], actor: Actor
) -> None:
    from phases.services.guardrails import guardrail_create

    values = dict(spec)
    filters = dict(values.pop("filters", {}))
    if values.get("flag"):
        filters["flag"] = ctx["flags"][values.pop("flag")].name
    _scope_feedback(values["metric"], filters, plan)
    try:
        guardrail_create(plan=plan, actor=actor, filters=filters, **values)
    except DomainError as exc:
        raise InvalidPlan(exc.message, field=f"guardrails[{index}].{exc.field}") from None


def plan_create(
    *,
    name: str,
    definition: dict[str, Any],
    actor: Actor,
    flags: dict[str, str],
    cohorts: dict[str, str] | None = None,
    waiting_lists: dict[str, list[str]] | None = None,
    template: PlanTemplate | None = None,
    timezone_name: str | None = None,
    step_hour: int | None = None,
    start_date: dt.date | None = None,
) -> RolloutPlan:
    """A draft plan from a definition (a template's, usually); slots map to real flags/cohorts."""
    if not name.strip():
        raise InvalidPlan("A plan needs a name.", field="name")
    cohorts, waiting_lists = cohorts or {}, waiting_lists or {}
    tz_name = timezone_name or definition.get("timezone", "UTC")
    hour = definition.get("step_hour", 9) if step_hour is None else step_hour
    weekdays = definition.get("allowed_weekdays", list(range(7)))
    _validate_settings(tz_name, hour, weekdays)
    rollback_to = definition.get("rollback_to", RollbackTo.SAFE_POINT)
    if rollback_to not in RollbackTo.values:
        raise InvalidPlan(f"Use one of {', '.join(RollbackTo.values)}.", field="rollback_to")
    with transaction.atomic():
        mapped = [flags[slot] for slot in definition.get("flags", []) if flags.get(slot)]
        if len(set(mapped)) != len(mapped):
            raise InvalidPlan(
                "Map each of the template's flags to a different flag.", field="flags"
            )
        ctx = {
            "flags": {
                slot: _lookup(Flag, flags, slot, "flags") for slot in definition.get("flags", [])
            },
            "cohorts": {
                slot: _lookup(Cohort, cohorts, slot, "cohorts")
                for slot in definition.get("cohorts", [])
            },
            "waiting_lists": {
                slot: [str(u) for u in units] for slot, units in waiting_lists.items()
            },
        }
        plan = RolloutPlan.objects.create(
            name=name,
            description=definition.get("description", ""),
            template=template,
            timezone=tz_name,
            step_hour=hour,
            allowed_weekdays=weekdays,
            rollback_to=rollback_to,
            created_by_id=actor.user_id,
        )
        start = start_date
        for position, spec in enumerate(definition.get("phases", [])):
            start = _build_phase(plan, position, spec, ctx, start)
        if not plan.phases.exists():
            raise InvalidPlan("A plan needs at least one phase.", field="phases")
        for index, spec in enumerate(definition.get("guardrails", [])):
            _guardrail_from_spec(plan, index, spec, ctx, actor)
        for slot, attribute in definition.get("stickiness", {}).items():
            flag = ctx["flags"][slot]
            if flag.stickiness != attribute:
                flag_update(
                    key=flag.name,
                    actor=actor,
                    changes={"stickiness": attribute},
                    reason=f"plan {name}",
                    source="plan",
                )
        audit_record(actor=actor, action="plan.create", obj=plan, after=plan_state(plan))
    return plan


def plan_create_from_template(*, template_key: str, actor: Actor, **kwargs: Any) -> RolloutPlan:
    template = PlanTemplate.objects.filter(key=template_key).first()
    if template is None:
        raise InvalidPlan(f"No template {template_key!r}.", field="template")
    return plan_create(definition=template.definition, template=template, actor=actor, **kwargs)


def plan_flags(plan: RolloutPlan) -> list[Flag]:
    return list(Flag.objects.filter(phase_targets__phase__plan=plan).distinct().order_by("name"))


def plan_config(plan: RolloutPlan) -> dict[str, Any]:
    return {flag.name: flag_state(flag) for flag in plan_flags(plan)}


def _baseline_take(plan: RolloutPlan, phase: Phase, now: dt.datetime) -> Checkpoint:
    """The flags just before `phase` changes them: where a rollback goes when no safe point has
    been verified (phases.services.rollback)."""
    return Checkpoint.objects.create(
        plan=plan,
        phase=phase,
        kind=Checkpoint.Kind.BASELINE,
        config=plan_config(plan),
        created_at=now,
    )


def _locked(plan: RolloutPlan) -> RolloutPlan:
    return RolloutPlan.objects.select_for_update().get(pk=plan.pk)


def locked_with_flags(plan: RolloutPlan) -> RolloutPlan:
    """The plan locked after its flags: the order a person's flag change takes (the flag, then
    the plan it pauses), so a write that changes flags from the plan cannot deadlock with it."""
    for flag in plan_flags(plan):
        flag_lock(flag.name)
    return _locked(plan)


def _save(plan: RolloutPlan, *fields: str) -> None:
    plan.version += 1
    plan.save(update_fields=[*fields, "version"])
    config_version_bump()  # the snapshot's plan/phase metadata follows


def plan_activate(
    *, plan: RolloutPlan, actor: Actor, now: dt.datetime | None = None
) -> RolloutPlan:
    now = now or timezone.now()
    with transaction.atomic():
        plan = locked_with_flags(plan)
        if plan.status != RolloutPlan.Status.DRAFT:
            raise PlanConflict(f"Only a draft plan can be activated; this one is {plan.status}.")
        keys = [flag.name for flag in plan_flags(plan)]
        clash = (
            RolloutPlan.objects.filter(
                status__in=LIVE_STATUSES, phases__targets__flag__name__in=keys
            )
            .exclude(pk=plan.pk)
            .distinct()
            .first()
        )
        if clash is not None:
            raise PlanConflict(
                f"A flag of this plan already belongs to the live plan {clash.name!r}."
            )
        before = plan_state(plan)
        plan.status, plan.activated_at, plan.status_reason = RolloutPlan.Status.ACTIVE, now, ""
        _save(plan, "status", "activated_at", "status_reason")
        audit_record(
            actor=actor, action="plan.activate", obj=plan, before=before, after=plan_state(plan)
        )
        phase_activate(phase=plan.phases.order_by("position").first(), actor=actor, now=now)
    return plan


def phase_activate(*, phase: Phase, actor: Actor, now: dt.datetime) -> Phase:
    """Starts a phase: its targets become the flags' rules (never lowering a percentage the flag
    already has for that cohort), which counts as that day's step; first admissions; kickoff."""
    from phases.services.ramps import admit_one

    phase = Phase.objects.select_for_update().get(pk=phase.pk)
    plan = phase.plan
    if plan.phases.filter(position__lt=phase.position).exclude(status=Phase.Status.PASSED).exists():
        raise PlanConflict("Phases are never skipped: an earlier phase has not passed.")
    _baseline_take(plan, phase, now)
    phase.status, phase.started_at = Phase.Status.ACTIVE, now
    phase.save(update_fields=["status", "started_at"])
    day = local_now(plan, now).date()
    for target in phase.targets.select_related("flag", "cohort"):
        cohort_key = target.cohort.key if target.cohort_id else None
        flag = flag_lock(target.flag.name)  # read and write under the lock (a person may race)
        current = flagops.current_bp(flag_state(flag), cohort_key) or 0
        start = max(current, target.start_bp) if current <= target.target_bp else target.target_bp
        try:
            with transaction.atomic():
                RampStep.objects.create(
                    target=target,
                    local_date=day,
                    from_bp=current,
                    to_bp=start,
                    reason="activation",
                    created_at=now,
                )
        except IntegrityError:
            pass  # restarted on a day this target already stepped: still no second step today
        if start != current:
            flagops.set_bp(
                flag_key=target.flag.name,
                cohort_key=cohort_key,
                basis_points=start,
                actor=actor,
                reason=f"{plan.name}: {phase.name} started",
            )
    for admission in phase.admissions.all():
        admit_one(admission=admission, now=now, actor=actor)
    audit_record(
        actor=actor,
        action="phase.activate",
        obj=phase,
        after={"status": phase.status, "started_at": now.isoformat()},
    )
    config_version_bump()
    notify.send_kickoff(phase)
    return phase


def plan_pause(*, plan: RolloutPlan, actor: Actor, reason: str) -> RolloutPlan:
    with transaction.atomic():
        plan = _locked(plan)
        if plan.status != RolloutPlan.Status.ACTIVE:
            raise PlanConflict(f"Only an active plan can be paused; this one is {plan.status}.")
        before = plan_state(plan)
        plan.status, plan.status_reason = RolloutPlan.Status.PAUSED, reason
        _save(plan, "status", "status_reason")
        audit_record(
            actor=actor,
            action="plan.pause",
            obj=plan,
            before=before,
            after=plan_state(plan),
            reason=reason,
        )
    return plan


def plan_resume(*, plan: RolloutPlan, actor: Actor, reason: str = "") -> RolloutPlan:
    with transaction.atomic():
        plan = _locked(plan)
        if plan.status != RolloutPlan.Status.PAUSED:
            raise PlanConflict(f"Only a paused plan can be resumed; this one is {plan.status}.")
        before = plan_state(plan)
        plan.status, plan.status_reason = RolloutPlan.Status.ACTIVE, ""
        _save(plan, "status", "status_reason")
        audit_record(
            actor=actor,
            action="plan.resume",
            obj=plan,
            before=before,
            after=plan_state(plan),
            reason=reason,
        )
    return plan


def plan_complete(
    *, plan: RolloutPlan, actor: Actor, now: dt.datetime | None = None, reason: str = ""
) -> RolloutPlan:
    now = now or timezone.now()
    with transaction.atomic():
        plan = _locked(plan)
        if plan.status in (RolloutPlan.Status.COMPLETED, RolloutPlan.Status.DRAFT):
            raise PlanConflict(f"A {plan.status} plan cannot be completed.")
        before = plan_state(plan)
        plan.phases.filter(status=Phase.Status.ACTIVE).update(
            status=Phase.Status.PASSED, ended_at=now
        )
        plan.status, plan.ended_at, plan.status_reason = RolloutPlan.Status.COMPLETED, now, reason
        _save(plan, "status", "ended_at", "status_reason")
        audit_record(
            actor=actor,
            action="plan.complete",
            obj=plan,
            before=before,
            after=plan_state(plan),
            reason=reason,
        )
    return plan


def plan_set_held(*, plan: RolloutPlan, reason: str, actor: Actor) -> bool:
    """Guardrails hold (reason) or release ("") the ramps. True when it changed."""
    with transaction.atomic():
        plan = _locked(plan)
        if plan.held_reason == reason:
            return False
        before = plan_state(plan)
        plan.held_reason = reason
        _save(plan, "held_reason")
        audit_record(
            actor=actor,
            action="plan.hold" if reason else "plan.release",
            obj=plan,
            before=before,
            after=plan_state(plan),
            reason=reason,
        )
    return True


def live_plan_for_flag(flag_key: str) -> RolloutPlan | None:
    return (
        RolloutPlan.objects.filter(status__in=LIVE_STATUSES, phases__targets__flag__name=flag_key)
        .distinct()
        .first()
    )


def plans_live() -> Any:
    return RolloutPlan.objects.filter(
        Q(status=RolloutPlan.Status.ACTIVE) | Q(status=RolloutPlan.Status.PAUSED)
    )


def freeze_window_add(
    *, plan: RolloutPlan, starts_at: dt.datetime, ends_at: dt.datetime, reason: str, actor: Actor
) -> FreezeWindow:
    """No ramps or admissions step inside a freeze window. Windows of a plan may not overlap."""
    if ends_at <= starts_at:
        raise InvalidPlan("A freeze window ends after it starts.", field="ends_at")
    with transaction.atomic():
        plan = _locked(plan)
        if plan.status in (RolloutPlan.Status.COMPLETED, RolloutPlan.Status.ROLLED_BACK):
            raise PlanConflict(f"A {plan.status} plan takes no freeze windows.")
        clash = plan.freeze_windows.filter(starts_at__lt=ends_at, ends_at__gt=starts_at).first()
        if clash is not None:
            raise InvalidPlan(f"Overlaps the freeze window {clash}.", field="starts_at")
        window = FreezeWindow.objects.create(
            plan=plan, starts_at=starts_at, ends_at=ends_at, reason=reason
        )
        after = {
            "starts_at": starts_at.isoformat(),
            "ends_at": ends_at.isoformat(),
            "reason": reason,
        }
        audit_record(actor=actor, action="plan.freeze_window_add", obj=plan, after=after)
    return window


def freeze_window_remove(*, window: FreezeWindow, actor: Actor) -> None:
    with transaction.atomic():
        before = {
            "starts_at": window.starts_at.isoformat(),
            "ends_at": window.ends_at.isoformat(),
            "reason": window.reason,
        }
        audit_record(
            actor=actor, action="plan.freeze_window_remove", obj=window.plan, before=before
        )
        window.delete()
