"""Guardrails: checked every minute while a plan is live.

Each check is stored (unique per guardrail and minute, so two schedulers or a retried task do
not count twice). Failures count up, passes reset, insufficient data does neither. At
`failures_to_act` consecutive failures a guardrail acts once per breach: alert, pause or roll
back. A pause or rollback guardrail whose latest decisive check failed holds the ramps. When
every guardrail of a plan passes, the plan's flag configuration is checkpointed.
"""

import datetime as dt
import logging
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q

from monitoring.exceptions import UnknownMetric
from monitoring.models import MetricDefinition
from monitoring.selectors import metric_value
from monitoring.windows import parse_window
from phases.exceptions import InvalidPlan
from phases.models import (
    GateCriterion,
    Guardrail,
    GuardrailCheck,
    Incident,
    Phase,
    RolloutPlan,
    comparison_holds,
)
from phases.services.plans import LIVE_STATUSES, plan_pause, plan_set_held
from phases.services.rollback import checkpoint_take, plan_rollback
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.core.notifications import notify
from rollout_control.core.services import audit_record

logger = logging.getLogger(__name__)
PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_data"


def guardrail_state(guardrail: Guardrail) -> dict[str, Any]:
    return {
        "name": guardrail.name,
        "metric": guardrail.metric,
        "comparator": guardrail.comparator,
        "threshold": guardrail.threshold,
        "window": guardrail.window,
        "failures_to_act": guardrail.failures_to_act,
        "action": guardrail.action,
        "trigger": guardrail.trigger,
        "enabled": guardrail.enabled,
    }


def guardrail_create(
    *,
    plan: RolloutPlan,
    actor: Actor,
    name: str,
    metric: str,
    comparator: str,
    threshold: float,
    action: str,
    window: str = "5m",
    failures_to_act: int = 3,
    min_samples: int = 0,
    trigger: str = "",
    filters: dict[str, str] | None = None,
    phase: Phase | None = None,
) -> Guardrail:
    if not MetricDefinition.objects.filter(name=metric).exists():
        raise InvalidPlan(f"No metric named {metric!r}.", field="metric")
    if comparator not in GateCriterion.Comparator.values:
        comparators = ", ".join(GateCriterion.Comparator.values)
        raise InvalidPlan(f"Use one of {comparators}.", field="comparator")
    if action not in Guardrail.Action.values:
        raise InvalidPlan(f"Use one of {', '.join(Guardrail.Action.values)}.", field="action")
    if (
        isinstance(failures_to_act, bool)
        or not isinstance(failures_to_act, int)
        or failures_to_act < 1
    ):
        raise InvalidPlan("Must be at least 1.", field="failures_to_act")
    if action == Guardrail.Action.ROLLBACK and trigger not in Incident.Trigger.values:
        raise InvalidPlan(
            f"A rollback guardrail names its trigger: {', '.join(Incident.Trigger.values)}.",
            field="trigger",
        )
    try:
        parse_window(window)
    except DomainError as exc:
        raise InvalidPlan(exc.message, field="window") from None
    if phase is not None and phase.plan_id != plan.pk:
        raise InvalidPlan("That phase belongs to another plan.", field="phase")
    with transaction.atomic():
        guardrail = Guardrail.objects.create(
            plan=plan,
            phase=phase,
            name=name,
            metric=metric,
            comparator=comparator,
            threshold=float(threshold),
            action=action,
            window=window,
            failures_to_act=failures_to_act,
            min_samples=min_samples,
            trigger=trigger,
            filters=filters or {},
        )
        audit_record(
            actor=actor, action="guardrail.create", obj=guardrail, after=guardrail_state(guardrail)
        )
    return guardrail


def _verdict(guardrail: Guardrail, now: dt.datetime) -> tuple[str, float | None, int]:
    try:
        result = metric_value(
            name=guardrail.metric,
            window=parse_window(guardrail.window),
            filters=guardrail.filters,
            now=now,
        )
    except UnknownMetric:
        return INSUFFICIENT, None, 0
    too_few = bool(guardrail.min_samples) and result.samples < guardrail.min_samples
    if result.status != "ok" or result.value is None or too_few:
        return INSUFFICIENT, result.value, result.samples
    failing = comparison_holds(guardrail.comparator, result.value, guardrail.threshold)
    return (FAIL if failing else PASS), result.value, result.samples


def _act(guardrail: Guardrail, plan: RolloutPlan, value: float | None, now: dt.datetime) -> str:
    actor = Actor.system(f"guardrail:{guardrail.name}")
    observed = {
        "guardrail": guardrail.name,
        "metric": guardrail.metric,
        "value": value,
        "comparator": guardrail.comparator,
        "threshold": guardrail.threshold,
        "window": guardrail.window,
        "consecutive_failures": guardrail.consecutive_failures,
    }
    subject = f"[guardrail] {plan.name}: {guardrail.name} failing ({guardrail.metric} = {value})"
    if guardrail.action == Guardrail.Action.ROLLBACK:
        plan_rollback(
            plan=plan,
            trigger=guardrail.trigger,
            actor=actor,
            reason=subject,
            observed=observed,
            now=now,
        )
    elif guardrail.action == Guardrail.Action.PAUSE:
        if plan.status == RolloutPlan.Status.ACTIVE:
            plan_pause(plan=plan, actor=actor, reason=subject)
        notify(
            event="guardrail.pause",
            subject=subject,
            text=subject,
            data=observed | {"plan": plan.name},
        )
    else:
        notify(
            event="guardrail.alert",
            subject=subject,
            text=subject,
            data=observed | {"plan": plan.name},
        )
    return guardrail.action


def check_one(*, guardrail: Guardrail, now: dt.datetime) -> GuardrailCheck | None:
    """One check for this minute, or None when this minute was already checked."""
    # One check per guardrail per interval: the bucket start is the row's unique key.
    interval = settings.GUARDRAIL_INTERVAL_SECONDS
    minute = dt.datetime.fromtimestamp(int(now.timestamp()) // interval * interval, tz=dt.UTC)
    with transaction.atomic():
        guardrail = (
            Guardrail.objects.select_for_update().select_related("plan").get(pk=guardrail.pk)
        )
        try:
            with transaction.atomic():
                check = GuardrailCheck.objects.create(
                    guardrail=guardrail, minute=minute, checked_at=now, verdict=""
                )
        except IntegrityError:
            return None
        verdict, value, samples = _verdict(guardrail, now)
        if verdict == FAIL:
            guardrail.consecutive_failures += 1
        elif verdict == PASS:
            guardrail.consecutive_failures, guardrail.acted_at = 0, None
        if verdict != INSUFFICIENT:
            guardrail.last_verdict, guardrail.last_value = verdict, value
        guardrail.last_checked_at = now
        if (
            verdict == FAIL
            and guardrail.consecutive_failures >= guardrail.failures_to_act
            and guardrail.acted_at is None
        ):
            guardrail.acted_at = now
            check.acted = _act(guardrail, guardrail.plan, value, now)
        guardrail.save(
            update_fields=[
                "consecutive_failures",
                "acted_at",
                "last_verdict",
                "last_value",
                "last_checked_at",
            ]
        )
        check.verdict, check.value, check.samples = verdict, value, samples
        check.save(update_fields=["verdict", "value", "samples", "acted"])
    return check


def guardrails_in_force(plan: RolloutPlan) -> list[Guardrail]:
    phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
    scope = Q(phase__isnull=True) | Q(phase=phase) if phase else Q(phase__isnull=True)
    return list(plan.guardrails.filter(scope, enabled=True))


def check_guardrails(*, now: dt.datetime) -> dict[str, int]:
    checked = 0
    for plan in RolloutPlan.objects.filter(status__in=LIVE_STATUSES):
        guardrails = guardrails_in_force(plan)
        for guardrail in guardrails:
            if check_one(guardrail=guardrail, now=now) is not None:
                checked += 1
        plan.refresh_from_db()
        if plan.status not in LIVE_STATUSES or not guardrails:
            continue
        fresh = [Guardrail.objects.get(pk=g.pk) for g in guardrails]
        holding = [
            g.name for g in fresh if g.action != Guardrail.Action.ALERT and g.last_verdict == FAIL
        ]
        plan_set_held(
            plan=plan,
            reason=("failing: " + ", ".join(holding)) if holding else "",
            actor=Actor.system("guardrails"),
        )
        # Guardrails without data yet (e.g. satisfaction before any rating) do not block it.
        decisive = [g.last_verdict for g in fresh if g.last_verdict]
        if decisive and all(verdict == PASS for verdict in decisive):
            checkpoint_take(plan=plan, now=now)
    return {"checked": checked}
