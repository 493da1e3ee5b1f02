"""Guardrails: checked every minute while a plan is live.

Each check is stored (unique per guardrail and minute, so two schedulers or a retried task do
not count twice). Failures count up, passes reset, insufficient data does neither. At
`failures_to_act` consecutive failures a guardrail acts once per breach: alert, pause or roll
back. A pause or rollback guardrail whose latest decisive check failed holds the ramps. After
each run the plan's live configuration is followed toward a verified safe point
(phases.services.rollback.safe_point_observe).
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
    RollbackTo,
    RolloutPlan,
    comparison_holds,
)
from phases.services.plans import LIVE_STATUSES, plan_pause, plan_set_held
from phases.services.rollback import plan_rollback, safe_point_observe
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.core.notifications import notify
from rollout_control.core.services import audit_record

logger = logging.getLogger(__name__)
PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_data"
# A check that could not be computed (a failing query, a provider error). Like insufficient
# data it neither counts as a failure nor resets the count; it is recorded with its reason.
ERROR = "error"


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
        "rollback_to": guardrail.rollback_to,
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
    rollback_to: str = "",
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
    if rollback_to and rollback_to not in RollbackTo.values:
        raise InvalidPlan(f"Use one of {', '.join(RollbackTo.values)}.", field="rollback_to")
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
            rollback_to=rollback_to,
            filters=filters or {},
        )
        audit_record(
            actor=actor, action="guardrail.create", obj=guardrail, after=guardrail_state(guardrail)
        )
    return guardrail


def error_reason(exc: Exception) -> str:
    """What went wrong, for a check or a gate review: short, without a traceback."""
    message = exc.message if isinstance(exc, DomainError) else str(exc).strip()
    return f"{type(exc).__name__}: {message}"[:500]


def _verdict(guardrail: Guardrail, now: dt.datetime) -> tuple[str, float | None, int, str]:
    """(verdict, value, samples, detail). Any exception from the query is this guardrail's
    `error`, never the caller's: the others must still be checked (issue 13)."""
    try:
        # A savepoint: a failed SQL query must not poison the check's transaction.
        with transaction.atomic():
            result = metric_value(
                name=guardrail.metric,
                window=parse_window(guardrail.window),
                filters=guardrail.filters,
                now=now,
            )
    except UnknownMetric:
        return INSUFFICIENT, None, 0, f"no metric named {guardrail.metric!r} yet"
    except Exception as exc:
        logger.exception("guardrail %s: %s could not be computed", guardrail.pk, guardrail.metric)
        return ERROR, None, 0, error_reason(exc)
    if result.status == ERROR:
        return ERROR, None, result.samples, result.detail or "the metric could not be computed"
    too_few = bool(guardrail.min_samples) and result.samples < guardrail.min_samples
    if result.status != "ok" or result.value is None or too_few:
        detail = result.detail or f"{result.samples} samples (need {guardrail.min_samples})"
        return INSUFFICIENT, result.value, result.samples, detail
    failing = comparison_holds(guardrail.comparator, result.value, guardrail.threshold)
    return (FAIL if failing else PASS), result.value, result.samples, ""


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
            guardrail=guardrail,
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
        verdict, value, samples, detail = _verdict(guardrail, now)
        if verdict == FAIL:
            guardrail.consecutive_failures += 1
        elif verdict == PASS:
            guardrail.consecutive_failures, guardrail.acted_at = 0, None
        if verdict in (PASS, FAIL):
            guardrail.last_verdict, guardrail.last_value = verdict, value
        guardrail.last_error = detail if verdict == ERROR else ""
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
                "last_error",
            ]
        )
        check.verdict, check.value, check.samples, check.detail = verdict, value, samples, detail
        check.save(update_fields=["verdict", "value", "samples", "detail", "acted"])
    return check


def _check_crashed(guardrail: Guardrail, now: dt.datetime, exc: Exception) -> None:
    """Records `error` for a check that raised past _verdict (acting on it, say), so that the
    page shows it; the check's own transaction has rolled back. Never raises."""
    interval = settings.GUARDRAIL_INTERVAL_SECONDS
    minute = dt.datetime.fromtimestamp(int(now.timestamp()) // interval * interval, tz=dt.UTC)
    reason = error_reason(exc)
    try:
        with transaction.atomic():
            GuardrailCheck.objects.get_or_create(
                guardrail_id=guardrail.pk,
                minute=minute,
                defaults={"checked_at": now, "verdict": ERROR, "detail": reason},
            )
            Guardrail.objects.filter(pk=guardrail.pk).update(last_error=reason, last_checked_at=now)
    except Exception:
        logger.exception("guardrail %s: could not record the error", guardrail.pk)


def guardrails_in_force(plan: RolloutPlan) -> list[Guardrail]:
    phase = plan.phases.filter(status=Phase.Status.ACTIVE).first()
    scope = Q(phase__isnull=True) | Q(phase=phase) if phase else Q(phase__isnull=True)
    return list(plan.guardrails.filter(scope, enabled=True))


def check_guardrails(*, now: dt.datetime) -> dict[str, int]:
    checked = 0
    for plan in RolloutPlan.objects.filter(status__in=LIVE_STATUSES):
        guardrails = guardrails_in_force(plan)
        for guardrail in guardrails:
            # One guardrail that cannot be checked never stops the others (issue 13).
            try:
                if check_one(guardrail=guardrail, now=now) is not None:
                    checked += 1
            except Exception as exc:
                logger.exception("guardrail %s: check failed", guardrail.pk)
                _check_crashed(guardrail, now, exc)
        plan.refresh_from_db()
        if plan.status not in LIVE_STATUSES or not guardrails:
            continue
        try:
            _hold_and_observe(plan, guardrails, now)
        except Exception:
            # A lock held too long (lock_timeout) or a failing query on one plan: the other
            # plans are still checked, and this one is held and observed at the next run.
            logger.exception("plan %s: holding or safe-point observation failed", plan.pk)
    return {"checked": checked}


def _hold_and_observe(plan: RolloutPlan, guardrails: list[Guardrail], now: dt.datetime) -> None:
    fresh = [Guardrail.objects.get(pk=g.pk) for g in guardrails]
    holding = [
        g.name for g in fresh if g.action != Guardrail.Action.ALERT and g.last_verdict == FAIL
    ]
    plan_set_held(
        plan=plan,
        reason=("failing: " + ", ".join(holding)) if holding else "",
        actor=Actor.system("guardrails"),
    )
    with transaction.atomic():
        safe_point_observe(plan=plan, guardrails=fresh, now=now)
