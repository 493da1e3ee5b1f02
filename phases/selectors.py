"""Reads for plans: lists, detail, and the preview of the next step and of a rollback."""

import datetime as dt
from dataclasses import replace
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from flags.evaluation import FlagRuleSnap, FlagSnap, Snapshot, evaluate, to_percentage
from flags.exposure import Exposure
from flags.models import CohortMember
from flags.selectors import flag_snapshot
from phases.models import Guardrail, Phase, PhaseTarget, RolloutPlan
from phases.services.flagops import flag_current_bp
from phases.services.plans import LIVE_STATUSES, local_now
from phases.services.ramps import skip_reason


def plan_list(*, status: str | None = None) -> QuerySet[RolloutPlan]:
    queryset = RolloutPlan.objects.select_related("template").prefetch_related(
        Prefetch("phases", queryset=Phase.objects.order_by("position"))
    )
    return queryset.filter(status=status) if status else queryset


def active_phase(plan: RolloutPlan) -> Phase | None:
    return plan.phases.filter(status=Phase.Status.ACTIVE).first()


def _cohort_size(cohort_id: int) -> int:
    return CohortMember.objects.filter(cohort_id=cohort_id).values("unit").distinct().count()


def _next_step_at(plan: RolloutPlan, now: dt.datetime) -> dt.datetime:
    local = local_now(plan, now)
    candidate = local.replace(hour=plan.step_hour, minute=0, second=0, microsecond=0)
    if candidate <= local:
        candidate += dt.timedelta(days=1)
    for _ in range(14):
        if candidate.weekday() in plan.allowed_weekdays:
            break
        candidate += dt.timedelta(days=1)
    return candidate


def _target_preview(target: PhaseTarget) -> dict[str, Any]:
    cohort_key = target.cohort.key if target.cohort_id else None
    before = flag_current_bp(target.flag.name, cohort_key)
    after = min(before + target.step_bp, target.target_bp) if before < target.target_bp else before
    row: dict[str, Any] = {
        "flag": target.flag.name,
        "cohort": cohort_key,
        "before": float(Decimal(before) / 100),
        "after": float(Decimal(after) / 100),
        "target": float(Decimal(target.target_bp) / 100),
        "units_added": None,
    }
    if target.cohort_id:
        # Units are bucketed uniformly: the share that crosses the threshold is (after - before).
        row["units_added"] = round(_cohort_size(target.cohort_id) * (after - before) / 10_000)
    return row


def _admission_preview(phase: Phase) -> list[dict[str, Any]]:
    rows = []
    for admission in phase.admissions.select_related("cohort"):
        done = list(admission.batches.values_list("units", flat=True))
        admitted = sum(len(units) for units in done)
        size = admission.batch_sizes[min(len(done), len(admission.batch_sizes) - 1)]
        if admission.cap is not None:
            size = max(0, min(size, admission.cap - admitted))
        members = set(admission.cohort.memberships.values_list("unit", flat=True))
        upcoming = [unit for unit in admission.waiting_list if unit not in members][:size]
        rows.append(
            {"cohort": admission.cohort.key, "admitted_so_far": admitted, "next_batch": upcoming}
        )
    return rows


KNOWN_UNITS_LIMIT = 20_000  # per flag: a preview is a person's question, not a batch job


def _as_snap(flag: FlagSnap, exposure: Exposure) -> FlagSnap:
    return replace(
        flag,
        everyone=False if exposure.killed else True if exposure.forced_on else None,
        basis_points=exposure.basis_points,
        rules=tuple(FlagRuleSnap(cohort, points) for cohort, points in exposure.rules),
        excluded_units=exposure.excluded,
    )


def _describe(exposure: Exposure) -> dict[str, Any]:
    return {
        "kill_switch": exposure.killed,
        "forced_on": exposure.forced_on,
        "rollout_percentage": to_percentage(exposure.basis_points),
        "cohort_rules": [
            {"cohort": cohort, "percentage": to_percentage(points)}
            for cohort, points in exposure.rules
        ],
        "excluded_units": len(exposure.excluded),
    }


def _known_units(cohort_keys: set[str]) -> dict[str, set[str]]:
    """Cohort members and opt-ins of these cohorts, by the attribute they are matched on
    (targetingKey: users; orgId: organisations; ...)."""
    by_attribute: dict[str, set[str]] = {}
    rows = CohortMember.objects.filter(cohort__key__in=cohort_keys).values_list(
        "cohort__match_attribute", "unit"
    )
    for attribute, unit in rows[:KNOWN_UNITS_LIMIT]:
        by_attribute.setdefault(attribute, set()).add(unit)
    return by_attribute


def rollback_effect(plan: RolloutPlan, *, mode: str | None = None) -> list[dict[str, Any]]:
    """Per flag: before → after of a rollback now, and which known units and organisations
    (cohort members and opt-ins) would lose the feature. Nothing is written."""
    from phases.services.rollback import rollback_preview

    snapshot = flag_snapshot()
    rows = []
    for row in rollback_preview(plan, mode=mode):
        key, before, after = row["flag"], row["before"], row["after"]
        flag = snapshot.flags.get(key)
        losing: dict[str, list[str]] = {}
        if flag is not None and before != after:
            was = Snapshot(
                flags={key: _as_snap(flag, before)}, cohorts=snapshot.cohorts, version=-1,
                built_at=0.0,
            )  # fmt: skip
            will = Snapshot(
                flags={key: _as_snap(flag, after)}, cohorts=snapshot.cohorts, version=-2,
                built_at=0.0,
            )  # fmt: skip
            cohorts = {cohort for cohort, _ in before.rules}
            for attribute, units in _known_units(cohorts).items():
                for unit in sorted(units):
                    context = {attribute: unit, flag.stickiness: unit}
                    if evaluate(was, key, context).value and not evaluate(will, key, context).value:
                        losing.setdefault(attribute, []).append(unit)
        lost = sorted(unit for units in losing.values() for unit in units)
        rows.append(
            {
                "flag": key,
                "restores_to": row["point"].label,
                "before": _describe(before),
                "after": _describe(after),
                "changes": before != after,
                "known_units_losing": lost[:200],
                "known_units_losing_count": len(lost),
                "users_losing_count": len(losing.get("targetingKey", [])),
                "organisations_losing_count": len(losing.get("orgId", [])),
            }
        )
    return rows


def plan_preview(*, plan: RolloutPlan, now: dt.datetime | None = None) -> dict[str, Any]:
    """What the next step will do (per flag before → after, units added) and who would lose the
    feature on rollback."""
    now = now or timezone.now()
    phase = active_phase(plan)
    return {
        "plan": plan.pk,
        "status": plan.status,
        "phase": phase.name if phase else None,
        "next_step_at": _next_step_at(plan, now).isoformat() if phase else None,
        "blocked_by": skip_reason(plan, now) if phase else None,
        "targets": [_target_preview(t) for t in phase.targets.select_related("flag", "cohort")]
        if phase
        else [],
        "admissions": _admission_preview(phase) if phase else [],
        "rollback": rollback_effect(plan),
    }


def guardrail_checks_needed() -> bool:
    """Whether a live plan has a guardrail in force (plan-wide, or on its active phase): only
    then does a stop of the guardrail checks need an alert (monitoring.heartbeats)."""
    in_force = Q(phase__isnull=True) | Q(phase__status=Phase.Status.ACTIVE)
    return Guardrail.objects.filter(in_force, enabled=True, plan__status__in=LIVE_STATUSES).exists()
