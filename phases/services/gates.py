"""Go/no-go gates: run a review, tick the checklist, sign off, decide.

Reviews are immutable records. GO over a failing automatic criterion (or an unticked checklist,
or a phase younger than its minimum duration) needs a written override, recorded as such.
Required sign-offs cannot be overridden, nobody signs twice, and the person deciding GO cannot
be the only signer. Phases are never skipped.
"""

import datetime as dt
import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction
from django.utils import timezone

from monitoring.exceptions import UnknownMetric
from monitoring.selectors import metric_value
from monitoring.windows import parse_window
from phases.exceptions import GateFailing, NotAllowed, PhaseNotActive, PlanConflict
from phases.models import (
    ChecklistItem,
    Decision,
    GateCriterion,
    GateReview,
    Phase,
    RolloutPlan,
    SignOff,
    comparison_holds,
)
from phases.services import notify
from phases.services.guardrails import ERROR, error_reason
from phases.services.plans import _save, locked_with_flags, phase_activate, plan_state
from phases.services.rollback import plan_rollback
from rollout_control.core.actors import Actor
from rollout_control.core.roles import RELEASE_MANAGER, ROLES, user_has_role
from rollout_control.core.services import audit_record

PASS, FAIL, INSUFFICIENT = "pass", "fail", "insufficient_data"
logger = logging.getLogger(__name__)


def criterion_result(criterion: GateCriterion, now: dt.datetime) -> dict[str, Any]:
    """One criterion's observed value and verdict, as a review records it (the dashboard shows
    the same live). A criterion that cannot be computed is `error` with the reason: the other
    criteria are still computed, and an error is not a pass."""
    row: dict[str, Any] = {
        "criterion": criterion.pk,
        "kind": criterion.kind,
        "description": criterion.description,
        "metric": criterion.metric,
        "comparator": criterion.comparator,
        "threshold": criterion.threshold,
        "window": criterion.window,
        "filters": criterion.filters,
    }
    try:
        # A savepoint: a failed SQL query must not poison the review's transaction.
        with transaction.atomic():
            result = metric_value(
                name=criterion.metric,
                window=parse_window(criterion.window),
                filters=criterion.filters,
                now=now,
            )
    except UnknownMetric:
        return row | {
            "observed": None,
            "samples": 0,
            "verdict": INSUFFICIENT,
            "detail": "metric not available yet",
        }
    except Exception as exc:
        logger.exception("criterion %s: %s could not be computed", criterion.pk, criterion.metric)
        return row | {"observed": None, "samples": 0, "verdict": ERROR, "detail": error_reason(exc)}
    too_few = bool(criterion.min_samples) and result.samples < criterion.min_samples
    if result.status == ERROR:
        verdict = ERROR
    elif result.status != "ok" or result.value is None or too_few:
        verdict = INSUFFICIENT
    else:
        holds = comparison_holds(criterion.comparator, result.value, criterion.threshold)
        verdict = PASS if holds else FAIL
    return row | {
        "observed": result.value,
        "samples": result.samples,
        "verdict": verdict,
        "detail": result.detail,
    }


def _active(phase: Phase) -> Phase:
    phase = Phase.objects.select_for_update().select_related("plan").get(pk=phase.pk)
    if phase.status != Phase.Status.ACTIVE:
        raise PhaseNotActive(f"{phase.name} is {phase.status}, not active.")
    return phase


def evaluate_gate(*, phase: Phase, actor: Actor, now: dt.datetime | None = None) -> GateReview:
    now = now or timezone.now()
    with transaction.atomic():
        phase = _active(phase)
        results = [criterion_result(c, now) for c in phase.criteria.all()]
        checklist = [
            {
                "text": i.text,
                "ticked": i.ticked_at is not None,
                "by": i.ticked_by.get_username() if i.ticked_by else None,
            }
            for i in phase.checklist.select_related("ticked_by")
        ]
        signoffs = [
            {
                "user": s.user.get_username(),
                "role": s.role,
                "at": s.created_at.isoformat(),
                "token": _token_ref(s),
            }
            for s in phase.signoffs.select_related("user")
        ]
        review = GateReview.objects.create(
            phase=phase,
            created_at=now,
            created_by=actor.label,
            passed=all(r["verdict"] == PASS for r in results),
            results=results,
            checklist=checklist,
            signoffs=signoffs,
        )
        audit_record(
            actor=actor,
            action="gate.review",
            obj=phase,
            after={"review": review.pk, "passed": review.passed, "results": results},
        )
    return review


def checklist_tick(
    *,
    item: ChecklistItem,
    user: AbstractBaseUser,
    ticked: bool = True,
    now: dt.datetime | None = None,
) -> ChecklistItem:
    with transaction.atomic():
        _active(item.phase)
        item = ChecklistItem.objects.select_for_update().get(pk=item.pk)
        before = {"ticked": item.ticked_at is not None}
        if before["ticked"] == ticked:
            return item
        item.ticked_by, item.ticked_at = (user, now or timezone.now()) if ticked else (None, None)
        item.save(update_fields=["ticked_by", "ticked_at"])
        audit_record(
            actor=Actor.for_user(user),
            action="gate.checklist",
            obj=item,
            before=before,
            after={"ticked": ticked},
        )
    return item


def _token_ref(row: SignOff | Decision) -> dict[str, Any] | None:
    """The token a sign-off or decision was made with, as recorded (it may be gone since)."""
    if not row.token_name:
        return None
    return {"id": row.token_id, "name": row.token_name}


def _person_actor(user: AbstractBaseUser, actor: Actor | None) -> Actor:
    """The actor of a person's gate action: their token (which names them), or them."""
    if actor is None or actor.user_id != user.pk:
        return Actor.for_user(user)
    return actor


def sign_off(
    *,
    phase: Phase,
    user: AbstractBaseUser,
    role: str | None = None,
    comment: str = "",
    actor: Actor | None = None,
) -> SignOff:
    """A release manager or support user signs the gate (once). Support may sign, never decide.
    `actor` is how they acted (an API token tied to them is recorded on the sign-off)."""
    actor = _person_actor(user, actor)
    with transaction.atomic():
        phase = _active(phase)
        held = [r for r in ROLES if user_has_role(user, r)]
        if not held:
            raise NotAllowed("Only release managers and support staff can sign off a gate.")
        if role is None:
            role = next((r for r in phase.required_signoffs if r in held), held[0])
        if role not in held:
            raise NotAllowed(f"You do not have the {role} role.", field="role")
        try:
            with transaction.atomic():
                signoff = SignOff.objects.create(
                    phase=phase,
                    user=user,
                    role=role,
                    comment=comment,
                    token_id=actor.token_id,
                    token_name=actor.token_name,
                )
        except IntegrityError:
            raise PlanConflict(
                f"{user.get_username()} has already signed off {phase.name}."
            ) from None
        audit_record(
            actor=actor,
            action="gate.sign_off",
            obj=phase,
            after={"user": user.get_username(), "role": role, "token": _token_ref(signoff)},
        )
    return signoff


def _go_problems(phase: Phase, review: GateReview, now: dt.datetime) -> list[str]:
    """What a GO would override: failing or insufficient criteria, open checklist, duration."""
    problems = [
        f"{r['description']}: {r['verdict']} (observed {r['observed']})"
        for r in review.results
        if r["verdict"] != PASS
    ]
    problems += [
        f"checklist not done: {i.text}" for i in phase.checklist.filter(ticked_at__isnull=True)
    ]
    if phase.started_at and now - phase.started_at < dt.timedelta(days=phase.min_duration_days):
        problems.append(f"minimum duration of {phase.min_duration_days} days not reached")
    return problems


def _check_signoffs(phase: Phase, user: AbstractBaseUser) -> None:
    signoffs = list(phase.signoffs.select_related("user"))
    missing = [role for role in phase.required_signoffs if role not in {s.role for s in signoffs}]
    if missing:
        raise GateFailing(f"Sign-off missing from: {', '.join(missing)}.")
    if phase.required_signoffs and {s.user_id for s in signoffs} == {user.pk}:
        raise GateFailing("The person deciding GO cannot be the only one who signed off.")


def decide(
    *,
    phase: Phase,
    kind: str,
    user: AbstractBaseUser,
    comment: str = "",
    override_reason: str = "",
    now: dt.datetime | None = None,
    actor: Actor | None = None,
) -> Decision:
    """`actor` is how the person acted (an API token tied to them is recorded on the decision)."""
    now = now or timezone.now()
    if not user_has_role(user, RELEASE_MANAGER):
        raise NotAllowed("Only a release manager can decide a gate.")
    if kind not in Decision.Kind.values:
        raise PlanConflict(f"Decide one of {', '.join(Decision.Kind.values)}.")
    actor = _person_actor(user, actor)
    with transaction.atomic():
        phase = _active(phase)
        plan = locked_with_flags(phase.plan)
        review = phase.reviews.first()
        if kind == Decision.Kind.NO_GO and not comment.strip():
            raise PlanConflict("Say why: a NO-GO needs a comment.")
        if kind == Decision.Kind.GO:
            if plan.status != RolloutPlan.Status.ACTIVE:
                raise PlanConflict(f"The plan is {plan.status}; resume it before deciding GO.")
            review = evaluate_gate(phase=phase, actor=actor, now=now)
            problems = _go_problems(phase, review, now)
            if problems and not override_reason.strip():
                raise GateFailing("GO needs a written override: " + "; ".join(problems))
            _check_signoffs(phase, user)
        decision = Decision.objects.create(
            phase=phase,
            review=review,
            kind=kind,
            user=user,
            comment=comment,
            override_reason=override_reason,
            token_id=actor.token_id,
            token_name=actor.token_name,
            created_at=now,
        )
        audit_record(
            actor=actor,
            action=f"gate.decide.{kind}",
            obj=phase,
            after={
                "decision": kind,
                "review": review.pk if review else None,
                "override": bool(override_reason),
                "token": _token_ref(decision),
            },
            reason=override_reason or comment,
        )
        if kind == Decision.Kind.GO:
            _go(plan, phase, actor, now)
        elif kind == Decision.Kind.ROLLBACK:
            plan_rollback(
                plan=plan,
                trigger="manual",
                actor=actor,
                reason=comment or "rollback decided at the gate",
                now=now,
            )
        notify.send_team_note(
            "gate.decision",
            f"[{decision.get_kind_display()}] {plan.name}: {phase.name}",
            f"{user.get_username()} decided {decision.get_kind_display()} for {phase.name}."
            f"\n{comment}\n" + (f"Override: {override_reason}\n" if override_reason else ""),
        )
    return decision


def _go(plan: RolloutPlan, phase: Phase, actor: Actor, now: dt.datetime) -> None:
    phase.status, phase.ended_at = Phase.Status.PASSED, now
    phase.save(update_fields=["status", "ended_at"])
    following = plan.phases.filter(position__gt=phase.position).order_by("position").first()
    if following is not None:
        phase_activate(phase=following, actor=actor, now=now)
        return
    before = plan_state(plan)
    plan.status, plan.ended_at = RolloutPlan.Status.COMPLETED, now
    _save(plan, "status", "ended_at")
    audit_record(
        actor=actor, action="plan.complete", obj=plan, before=before, after=plan_state(plan)
    )
