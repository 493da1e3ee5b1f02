"""Reads for the dashboard's pages: where each plan stands, its gate, guardrails and history.

The home page polls these every few seconds, so they stay a fixed number of queries per plan
(flags and their rules are prefetched; gate criteria are read live, one metric query each)."""

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.db.models import Prefetch, Q, QuerySet

from flags.models import Flag, FlagCohortRule
from monitoring.exceptions import InvalidQuery, UnknownMetric
from monitoring.providers import MetricResult
from monitoring.selectors import ComponentStatus, metric_value, scheduler_status
from phases.models import (
    ChecklistItem,
    Decision,
    DegradationState,
    GateCriterion,
    GateReview,
    Guardrail,
    Incident,
    Phase,
    PhaseTarget,
    RampStep,
    RolloutPlan,
    SignOff,
)
from phases.services import skip_reason
from phases.services.gates import criterion_result
from phases.services.plans import local_now
from rollout_control.core.models import AuditEntry
from rollout_control.core.selectors import audit_entries_for

LIVE = (RolloutPlan.Status.ACTIVE, RolloutPlan.Status.PAUSED)
MAX_BP = 10_000
COMPARATORS = dict(GateCriterion.Comparator.choices)
PASS, FAIL, INSUFFICIENT, ERROR = "pass", "fail", "insufficient_data", "error"
VERDICT_LABELS = {PASS: "Pass", FAIL: "Fail", INSUFFICIENT: "No data", ERROR: "Error"}


def percent(basis_points: int | None) -> str:
    """Basis points as a percentage for people: 40, 12.5, 33.33."""
    if basis_points is None:
        return "—"
    whole, rest = divmod(basis_points, 100)
    return str(whole) if rest == 0 else f"{basis_points / 100:.2f}".rstrip("0").rstrip(".")


def number(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.6f}".rstrip("0").rstrip(".") if value != int(value) else str(int(value))


# Flags --------------------------------------------------------------------------------------


def flags_with_rules() -> QuerySet[Flag]:
    rules = FlagCohortRule.objects.select_related("cohort").order_by("position")
    return Flag.objects.prefetch_related(Prefetch("cohort_rules", queryset=rules))


def flag_bp(flag: Flag, cohort_key: str | None) -> int:
    """The percentage (basis points) that applies to a cohort's rule, or the default; 0 when the
    flag has no rule for that cohort. Reads prefetched rules."""
    if cohort_key is None:
        return flag.basis_points
    for rule in flag.cohort_rules.all():
        if rule.cohort.key == cohort_key:
            return rule.basis_points
    return 0


def flag_state_label(flag: Flag) -> tuple[str, str]:
    """(label, badge class) for the flag's overall state."""
    if flag.archived:
        return "Archived", "muted"
    if flag.everyone is False:
        return "Kill switch on", "bad"
    if flag.everyone is True:
        return "Forced on", "good"
    return "Rules", "info"


def live_plans_by_flag() -> dict[str, RolloutPlan]:
    """{flag key: the live plan that owns it} (a flag belongs to at most one live plan)."""
    rows = (
        PhaseTarget.objects.filter(phase__plan__status__in=LIVE)
        .values_list("flag__name", "phase__plan_id")
        .distinct()
    )
    plans = {p.pk: p for p in RolloutPlan.objects.filter(status__in=LIVE)}
    return {key: plans[plan_id] for key, plan_id in rows if plan_id in plans}


# Plans: progress ----------------------------------------------------------------------------


@dataclass
class TargetProgress:
    target: PhaseTarget
    flag: Flag
    current_bp: int
    killed: bool
    forced_on: bool
    next_step_at: dt.datetime | None
    step_due: bool
    note: str

    @property
    def cohort_label(self) -> str:
        return self.target.cohort.name if self.target.cohort_id else "Everyone else"

    @property
    def effective_bp(self) -> int:
        if self.killed:
            return 0
        return MAX_BP if self.forced_on else self.current_bp

    @property
    def width(self) -> str:
        return f"{self.effective_bp / 100:.2f}"

    @property
    def target_left(self) -> str:
        return f"{self.target.target_bp / 100:.2f}"

    @property
    def current_label(self) -> str:
        return percent(self.effective_bp)

    @property
    def target_label(self) -> str:
        return percent(self.target.target_bp)

    @property
    def reached(self) -> bool:
        return self.current_bp >= self.target.target_bp


def _next_step(
    plan: RolloutPlan, target: PhaseTarget, current_bp: int, stepped_today: bool, now: dt.datetime
) -> tuple[dt.datetime | None, bool]:
    """When this target steps next, and whether today's step is still due (the scheduler runs
    every 15 minutes, so a due step happens at its next run)."""
    if plan.status != RolloutPlan.Status.ACTIVE or target.step_bp == 0:
        return None, False
    if current_bp >= target.target_bp:
        return None, False
    local = local_now(plan, now)
    candidate = local.replace(hour=plan.step_hour, minute=0, second=0, microsecond=0)
    allowed = set(plan.allowed_weekdays)
    if candidate <= local and not stepped_today and local.weekday() in allowed:
        return candidate, True
    if candidate <= local:
        candidate += dt.timedelta(days=1)
    for _ in range(14):
        if candidate.weekday() in allowed:
            return candidate, False
        candidate += dt.timedelta(days=1)
    return None, False


def target_progress(
    plan: RolloutPlan, phase: Phase, flags: dict[str, Flag], now: dt.datetime
) -> list[TargetProgress]:
    today = local_now(plan, now).date()
    stepped = set(
        RampStep.objects.filter(target__phase=phase, local_date=today).values_list(
            "target_id", flat=True
        )
    )
    blocked = skip_reason(plan, now) if plan.status == RolloutPlan.Status.ACTIVE else None
    rows = []
    for target in phase.targets.select_related("flag", "cohort").order_by("flag__name", "id"):
        flag = flags.get(target.flag.name) or target.flag
        current = flag_bp(flag, target.cohort.key if target.cohort_id else None)
        next_at, due = _next_step(plan, target, current, target.pk in stepped, now)
        if flag.everyone is False:
            note = "kill switch on"
        elif plan.status == RolloutPlan.Status.PAUSED:
            note = "plan paused"
        elif current >= target.target_bp:
            note = "at target"
        elif target.step_bp == 0:
            note = "no daily step"
        elif blocked:
            note = blocked
        else:
            note = ""
        rows.append(
            TargetProgress(
                target=target,
                flag=flag,
                current_bp=current,
                killed=flag.everyone is False,
                forced_on=flag.everyone is True,
                next_step_at=next_at,
                step_due=due,
                note=note,
            )
        )
    return rows


# Guardrails ---------------------------------------------------------------------------------


@dataclass
class GuardrailStatus:
    level: str  # green | amber | red | none
    label: str
    failing: list[Guardrail]
    guardrails: list[Guardrail]
    last_checked_at: dt.datetime | None
    erroring: list[Guardrail] = field(default_factory=list)  # latest check: `error`


def guardrails_in_force(plan: RolloutPlan, phase: Phase | None) -> list[Guardrail]:
    scope = Q(phase__isnull=True) | Q(phase=phase) if phase else Q(phase__isnull=True)
    return list(plan.guardrails.filter(scope, enabled=True).order_by("id"))


def guardrail_status(guardrails: list[Guardrail]) -> GuardrailStatus:
    """Red when a guardrail that pauses or rolls back fails, amber when only alerts fail, green
    when the rest pass. "Insufficient data" neither fails nor passes (as in the checks); a
    guardrail that cannot be computed (`error`) is amber and listed with its reason."""
    failing = [g for g in guardrails if g.last_verdict == FAIL]
    erroring = [g for g in guardrails if g.last_error]
    checked = [g.last_checked_at for g in guardrails if g.last_checked_at]
    last = max(checked) if checked else None
    if any(g.action != Guardrail.Action.ALERT for g in failing):
        level, label = "red", "Failing"
    elif failing:
        level, label = "amber", "Alerting"
    elif erroring:
        level, label = "amber", "Error"
    elif any(g.last_verdict == PASS for g in guardrails):
        level, label = "green", "Passing"
    else:
        level, label = "none", "No data yet" if guardrails else "No guardrails"
    return GuardrailStatus(level, label, failing, guardrails, last, erroring)


# Gates --------------------------------------------------------------------------------------


@dataclass
class CriterionStatus:
    description: str
    metric: str
    comparator: str
    threshold: str
    window: str
    observed: str
    samples: int | None
    verdict: str
    detail: str = ""
    last: "CriterionStatus | None" = None

    @property
    def verdict_label(self) -> str:
        return VERDICT_LABELS.get(self.verdict, self.verdict or "Not run")


@dataclass
class GateReadiness:
    phase: Phase
    criteria: list[CriterionStatus]
    required_signoffs: list[tuple[str, bool]]
    signoffs: list[SignOff]
    checklist: list[ChecklistItem]
    days_left: int
    last_review: GateReview | None
    next_phase: Phase | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def passing(self) -> int:
        return sum(1 for c in self.criteria if c.verdict == PASS)

    @property
    def open_items(self) -> int:
        return sum(1 for item in self.checklist if item.ticked_at is None)

    @property
    def ready(self) -> bool:
        return not self.problems


def _criterion_row(r: dict[str, Any]) -> CriterionStatus:
    verdict = r["verdict"]
    detail = r.get("detail") or ("not enough samples" if verdict == INSUFFICIENT else "")
    return CriterionStatus(
        description=r["description"],
        metric=r["metric"],
        comparator=COMPARATORS.get(r["comparator"], r["comparator"]),
        threshold=number(r["threshold"]),
        window=r["window"],
        observed=number(r["observed"]),
        samples=r.get("samples"),
        verdict=verdict,
        # A criterion that cannot be computed says so plainly, with the reason.
        detail=f"error: {detail}" if verdict == ERROR else detail,
    )


def criterion_now(criterion: GateCriterion, now: dt.datetime) -> CriterionStatus:
    """The criterion's verdict from the metrics right now, computed by the gate's own function;
    a gate run records the same as an immutable review."""
    return _criterion_row(criterion_result(criterion, now))


def review_rows(review: GateReview) -> list[CriterionStatus]:
    return [_criterion_row(r) for r in review.results]


def gate_readiness(phase: Phase, now: dt.datetime) -> GateReadiness:
    criteria = [criterion_now(c, now) for c in phase.criteria.all()]
    last_review = phase.reviews.first()
    if last_review is not None:
        past = {(r.description, r.metric): r for r in review_rows(last_review)}
        for row in criteria:
            row.last = past.get((row.description, row.metric))
    signoffs = list(phase.signoffs.select_related("user").order_by("created_at"))
    signed = {s.role for s in signoffs}
    required = [(role, role in signed) for role in phase.required_signoffs]
    checklist = list(phase.checklist.select_related("ticked_by"))
    days_left = 0
    if phase.started_at and phase.min_duration_days:
        ends = phase.started_at + dt.timedelta(days=phase.min_duration_days)
        days_left = max(0, (ends - now + dt.timedelta(hours=23, minutes=59)).days)
    readiness = GateReadiness(
        phase=phase,
        criteria=criteria,
        required_signoffs=required,
        signoffs=signoffs,
        checklist=checklist,
        days_left=days_left,
        last_review=last_review,
        next_phase=phase.plan.phases.filter(position__gt=phase.position)
        .order_by("position")
        .first(),
    )
    not_passing = [c for c in criteria if c.verdict != PASS]
    if not_passing:
        readiness.problems.append(f"{len(not_passing)} of {len(criteria)} criteria not passing")
    missing = [role.replace("_", " ") for role, done in required if not done]
    if missing:
        readiness.problems.append("sign-off missing from " + ", ".join(missing))
    if readiness.open_items:
        readiness.problems.append(f"{readiness.open_items} checklist item(s) open")
    if days_left:
        readiness.problems.append(f"minimum duration: {days_left} day(s) to go")
    return readiness


# Whole-service status -----------------------------------------------------------------------


@dataclass
class MetricReading:
    value: str
    status: str
    detail: str

    @property
    def ok(self) -> bool:
        return self.status == "ok"


def metric_reading(
    name: str, window: dt.timedelta, filters: dict[str, str] | None = None
) -> MetricReading:
    """A metric for a status tile; a metric whose provider is not there yet reads as no data."""
    try:
        result: MetricResult = metric_value(name=name, window=window, filters=filters)
    except (UnknownMetric, InvalidQuery):
        return MetricReading("—", "insufficient_data", f"{name} is not defined")
    if result.status != "ok" or result.value is None:
        return MetricReading("—", result.status, result.detail or "no data yet")
    return MetricReading(number(result.value), result.status, "")


def degradation_state() -> DegradationState | None:
    return DegradationState.objects.first()


DEGRADATION_LABELS = {
    0: ("Normal", "good"),
    1: ("Non-essential features off", "warn"),
    2: ("Non-essential and ramping features off", "bad"),
}


@dataclass
class ServiceStatus:
    scheduler: list[ComponentStatus]
    degradation: DegradationState | None
    open_critical: MetricReading

    @property
    def degradation_label(self) -> tuple[str, str]:
        level = self.degradation.level if self.degradation else 0
        return DEGRADATION_LABELS.get(level, (f"Level {level}", "bad"))


def service_status(now: dt.datetime) -> ServiceStatus:
    return ServiceStatus(
        scheduler=scheduler_status(now=now),
        degradation=degradation_state(),
        open_critical=metric_reading("feedback_open_critical", dt.timedelta(days=1)),
    )


# Plans --------------------------------------------------------------------------------------


@dataclass
class PlanSummary:
    plan: RolloutPlan
    phases: list[Phase]
    active: Phase | None
    targets: list[TargetProgress]
    guardrails: GuardrailStatus
    gate: GateReadiness | None
    open_critical: MetricReading

    @property
    def next_step_at(self) -> dt.datetime | None:
        times = [t.next_step_at for t in self.targets if t.next_step_at]
        return min(times) if times else None

    @property
    def next_index(self) -> int | None:
        """The index (in phases) of the phase after the current one, if it is still to come."""
        after = self.active.position if self.active else -1
        for index, phase in enumerate(self.phases):
            if phase.status == Phase.Status.PENDING and phase.position > after:
                return index
        return None


def plans_list() -> QuerySet[RolloutPlan]:
    return RolloutPlan.objects.prefetch_related(
        Prefetch("phases", queryset=Phase.objects.order_by("position"))
    ).order_by("-created_at")


def plan_summary(plan: RolloutPlan, flags: dict[str, Flag], now: dt.datetime) -> PlanSummary:
    phases = list(plan.phases.all())
    active = next((p for p in phases if p.status == Phase.Status.ACTIVE), None)
    return PlanSummary(
        plan=plan,
        phases=phases,
        active=active,
        targets=target_progress(plan, active, flags, now) if active else [],
        guardrails=guardrail_status(guardrails_in_force(plan, active)),
        gate=gate_readiness(active, now) if active else None,
        open_critical=metric_reading(
            "feedback_open_critical", dt.timedelta(days=1), {"plan": plan.name}
        ),
    )


def live_plan_summaries(now: dt.datetime) -> list[PlanSummary]:
    plans = list(plans_list().filter(status__in=LIVE))
    keys = set(
        PhaseTarget.objects.filter(phase__plan__in=plans).values_list("flag__name", flat=True)
    )
    flags = {f.name: f for f in flags_with_rules().filter(name__in=keys)}
    return [plan_summary(plan, flags, now) for plan in plans]


def plan_flags(plan: RolloutPlan) -> list[Flag]:
    keys = PhaseTarget.objects.filter(phase__plan=plan).values_list("flag__name", flat=True)
    return list(flags_with_rules().filter(name__in=set(keys)).order_by("name"))


def plan_get(plan_id: int) -> RolloutPlan | None:
    return plans_list().filter(pk=plan_id).first()


def plan_detail(plan: RolloutPlan, now: dt.datetime) -> PlanSummary:
    flags = {f.name: f for f in plan_flags(plan)}
    return plan_summary(plan, flags, now)


@dataclass
class HistoryItem:
    at: dt.datetime
    kind: str
    title: str
    detail: str
    by: str


def plan_history(plan: RolloutPlan, limit: int = 100) -> list[HistoryItem]:
    """Gate reviews, decisions, incidents and the plan's own changes (pause, resume, hold),
    newest first. Ramp steps have their own table (there are many)."""
    items: list[HistoryItem] = []
    for review in GateReview.objects.filter(phase__plan=plan).select_related("phase")[:limit]:
        passed = sum(1 for r in review.results if r["verdict"] == PASS)
        items.append(
            HistoryItem(
                review.created_at,
                "review",
                f"Gate review: {review.phase.name}",
                f"{passed} of {len(review.results)} criteria passed",
                review.created_by,
            )
        )
    for decision in Decision.objects.filter(phase__plan=plan).select_related("phase", "user")[
        :limit
    ]:
        detail = decision.comment
        if decision.override_reason:
            detail = f"{detail} (override: {decision.override_reason})".strip()
        items.append(
            HistoryItem(
                decision.created_at,
                "decision",
                f"{decision.get_kind_display()}: {decision.phase.name}",
                detail,
                decision.user.get_username(),
            )
        )
    for incident in Incident.objects.filter(plan=plan)[:limit]:
        items.append(
            HistoryItem(
                incident.created_at,
                "incident",
                f"Rollback ({incident.get_trigger_display()})",
                incident.reason,
                incident.actor_label,
            )
        )
    plan_actions = {
        "plan.activate": "Activated",
        "plan.pause": "Paused",
        "plan.resume": "Resumed",
        "plan.hold": "Ramps held by guardrails",
        "plan.release": "Ramps released",
        "plan.restart_phase": "Phase restarted",
        "plan.complete": "Completed",
    }
    entries = audit_entries_for(object_type="phases.rolloutplan", object_id=str(plan.pk)).filter(
        action__in=plan_actions
    )
    for entry in entries.order_by("-created_at")[:limit]:
        items.append(
            HistoryItem(
                entry.created_at,
                "plan",
                plan_actions[entry.action],
                entry.reason,
                entry.actor_label,
            )
        )
    items.sort(key=lambda item: item.at, reverse=True)
    return items[:limit]


def ramp_steps(plan: RolloutPlan, limit: int = 200) -> list[RampStep]:
    return list(
        RampStep.objects.filter(target__phase__plan=plan)
        .select_related("target__flag", "target__cohort", "target__phase")
        .order_by("-created_at", "-id")[:limit]
    )


def incidents(plan: RolloutPlan) -> QuerySet[Incident]:
    return plan.incidents.all()


# Audit --------------------------------------------------------------------------------------


@dataclass
class Change:
    name: str
    before: Any
    after: Any


@dataclass
class AuditRow:
    entry: AuditEntry
    changes: list[Change]


def _rules_diff(before: list[dict], after: list[dict]) -> list[Change]:
    """Cohort rules, one change per cohort whose rule appeared, went or changed percentage."""
    old = {rule["cohort"]: rule["percentage"] for rule in before}
    new = {rule["cohort"]: rule["percentage"] for rule in after}
    return [
        Change(
            f"cohort {cohort}",
            None if old.get(cohort) is None else f"{old[cohort]} %",
            None if new.get(cohort) is None else f"{new[cohort]} %",
        )
        for cohort in [*new, *(c for c in old if c not in new)]
        if old.get(cohort) != new.get(cohort)
    ]


_LABELS = {"rollout_percentage": "everyone else", "kill_switch": "kill switch"}


def _diff(before: Any, after: Any) -> list[Change]:
    """What changed between two audited states, field by field (the version always does)."""
    if not isinstance(before, dict) or not isinstance(after, dict):
        return [] if before == after else [Change("", before, after)]
    changes = []
    for name in [*after, *(n for n in before if n not in after)]:
        old, new = before.get(name), after.get(name)
        if name == "version" or old == new:
            continue
        if name == "cohort_rules" and isinstance(old, list) and isinstance(new, list):
            changes.extend(_rules_diff(old, new))
        elif name == "rollout_percentage":
            changes.append(
                Change(_LABELS[name], f"{old} %" if old is not None else None, f"{new} %")
            )
        else:
            changes.append(Change(_LABELS.get(name, name), old, new))
    return changes


def flag_audit(flag: Flag, limit: int = 50) -> list[AuditRow]:
    entries = audit_entries_for(object_type="flags.flag", object_id=str(flag.pk)).order_by(
        "-created_at", "-id"
    )[:limit]
    return [AuditRow(entry, _diff(entry.before or {}, entry.after or {})) for entry in entries]
