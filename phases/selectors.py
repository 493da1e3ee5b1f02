"""Reads for plans: lists, detail, and the preview of the next step and of a rollback."""

import datetime as dt
from decimal import Decimal
from typing import Any

from django.db.models import Prefetch, QuerySet
from django.utils import timezone

from flags.evaluation import evaluate
from flags.models import CohortMember
from flags.selectors import flag_snapshot
from phases.models import Phase, PhaseTarget, RolloutPlan
from phases.services.flagops import flag_current_bp
from phases.services.plans import local_now
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


def _rollback_losers(plan: RolloutPlan, phase: Phase | None) -> list[dict[str, Any]]:
    """Known units (cohort members) that have a flag on now and would not after a rollback."""
    from phases.services.rollback import plan_config

    checkpoint = plan.checkpoints.first()
    snapshot = flag_snapshot()
    current = plan_config(plan)
    rows = []
    for key, state in current.items():
        restored = checkpoint.config.get(key) if checkpoint else None
        cohorts = {rule["cohort"] for rule in state["cohort_rules"]}
        units = set(
            CohortMember.objects.filter(cohort__key__in=cohorts).values_list("unit", flat=True)[
                :5_000
            ]
        )
        losing = []
        for unit in sorted(units):
            context = {"targetingKey": unit, "orgId": unit}
            if evaluate(snapshot, key, context).value and not _would_be_on(
                restored, unit, key, snapshot
            ):
                losing.append(unit)
        rows.append(
            {
                "flag": key,
                "restores_to": "kill switch"
                if restored is None
                else f"{restored['rollout_percentage']} %",
                "default_percentage_now": state["rollout_percentage"],
                "known_units_losing": losing[:200],
                "known_units_losing_count": len(losing),
            }
        )
    return rows


def _would_be_on(state: dict[str, Any] | None, unit: str, key: str, snapshot: Any) -> bool:
    if state is None or state["kill_switch"]:
        return False
    from dataclasses import replace

    from flags.evaluation import FlagRuleSnap, Snapshot

    flag = snapshot.flags[key]
    restored = replace(
        flag,
        everyone=True if state["forced_on"] else None,
        basis_points=int(Decimal(str(state["rollout_percentage"])) * 100),
        rules=tuple(
            FlagRuleSnap(r["cohort"], int(Decimal(str(r["percentage"])) * 100))
            for r in state["cohort_rules"]
        ),
        excluded_units=frozenset(state["excluded_units"]),
    )
    alt = Snapshot(
        flags={**snapshot.flags, key: restored}, cohorts=snapshot.cohorts, version=-1, built_at=0.0
    )
    return evaluate(alt, key, {"targetingKey": unit, "orgId": unit}).value


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
        "rollback": _rollback_losers(plan, phase),
    }
