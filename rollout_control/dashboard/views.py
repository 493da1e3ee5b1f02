"""The dashboard's pages. Reads come from selectors; every action is a POST (CSRF-protected)
that calls one service, which writes the audit log, then redirects back with a message."""

from collections.abc import Callable
from decimal import Decimal
from typing import Any

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from flags import services as flag_services
from flags.percentages import to_basis_points
from flags.selectors import cohort_list
from phases import services as phase_services
from phases.models import ChecklistItem, Decision, Phase, RolloutPlan
from phases.selectors import rollback_effect
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.dashboard import charts, explain, forms, selectors
from rollout_control.dashboard.permissions import (
    is_release_manager,
    reader_required,
    release_manager_required,
)

HOME_REFRESH_SECONDS = 15


def _roles(request: HttpRequest) -> dict[str, bool]:
    manager = is_release_manager(request)
    return {"is_release_manager": manager, "is_support": not manager}


def _form_errors(form: Any) -> str:
    return " ".join(
        f"{'' if name == '__all__' else name.replace('_', ' ') + ': '}{error}"
        for name, errors in form.errors.items()
        for error in errors
    )


def _act(request: HttpRequest, call: Callable[[], str]) -> None:
    """Runs one service call; its success message, or the domain error's, goes to the user."""
    try:
        messages.success(request, call())
    except DomainError as exc:
        messages.error(request, exc.message)


# Home ---------------------------------------------------------------------------------------


def _home_context(request: HttpRequest) -> dict[str, Any]:
    now = timezone.now()
    return {
        "now": now,
        "summaries": selectors.live_plan_summaries(now),
        "status": selectors.service_status(now),
        "refresh_seconds": HOME_REFRESH_SECONDS,
        **_roles(request),
    }


@reader_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    context = _home_context(request)
    context["other_plans"] = selectors.plans_list().exclude(status__in=selectors.LIVE)[:20]
    return render(request, "dashboard/home.html", context)


@reader_required
@require_GET
def home_live(request: HttpRequest) -> HttpResponse:
    """The part of the home page that htmx polls."""
    return render(request, "dashboard/_live.html", _home_context(request))


# Plans --------------------------------------------------------------------------------------


@reader_required
@require_GET
def plans(request: HttpRequest) -> HttpResponse:
    return render(
        request, "dashboard/plans.html", {"plans": selectors.plans_list(), **_roles(request)}
    )


def _plan(plan_id: int) -> RolloutPlan:
    plan = selectors.plan_get(plan_id)
    if plan is None:
        raise Http404("No such plan.")
    return plan


@reader_required
@require_GET
def plan(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(plan_id)
    now = timezone.now()
    flags = selectors.plan_flags(plan)
    summary = selectors.plan_summary(plan, {f.name: f for f in flags}, now)
    review = summary.gate.last_review if summary.gate else None
    percentage_charts = charts.percentage_charts(plan, flags, now)
    guardrail_charts = charts.guardrail_charts(plan, now)
    outcome_charts = charts.outcome_charts(plan, flags, now)
    drawn = [
        c
        for c in percentage_charts + guardrail_charts + outcome_charts
        if not c.get("empty") and (c["kind"] != "guardrail" or c["values"])
    ]
    context = {
        "now": now,
        "plan": plan,
        "summary": summary,
        "flags": flags,
        "review": review,
        "has_signed": bool(summary.gate)
        and any(s.user_id == request.user.pk for s in summary.gate.signoffs),
        "decision_kinds": Decision.Kind.choices,
        "history": selectors.plan_history(plan),
        "steps": selectors.ramp_steps(plan),
        "incidents": selectors.incidents(plan),
        "percentage_charts": percentage_charts,
        "guardrail_charts": guardrail_charts,
        "outcome_charts": outcome_charts,
        "chart_data": drawn,
        "can_pause": plan.status == RolloutPlan.Status.ACTIVE,
        "can_resume": plan.status == RolloutPlan.Status.PAUSED,
        "can_roll_back": plan.status in selectors.LIVE,
        "rollback_effect": rollback_effect(plan) if plan.status in selectors.LIVE else [],
        "can_restart": plan.status == RolloutPlan.Status.ROLLED_BACK,
        **_roles(request),
    }
    return render(request, "dashboard/plan.html", context)


def _back_to_plan(plan: RolloutPlan, anchor: str = "") -> HttpResponse:
    return redirect(reverse("dashboard:plan", args=[plan.pk]) + (f"#{anchor}" if anchor else ""))


@require_POST
@release_manager_required
def plan_pause(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(plan_id)
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the plan pauses: " + _form_errors(form))
        return _back_to_plan(plan)
    actor, reason = Actor.for_user(request.user), form.cleaned_data["reason"]

    def call() -> str:
        phase_services.plan_pause(plan=plan, actor=actor, reason=reason)
        return f"Paused {plan.name}: ramps stop until it is resumed."

    _act(request, call)
    return _back_to_plan(plan)


@require_POST
@release_manager_required
def plan_resume(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(plan_id)
    form = forms.OptionalReasonForm(request.POST)
    reason = form.cleaned_data["reason"] if form.is_valid() else ""
    actor = Actor.for_user(request.user)

    def call() -> str:
        phase_services.plan_resume(plan=plan, actor=actor, reason=reason)
        return f"Resumed {plan.name}."

    _act(request, call)
    return _back_to_plan(plan)


@require_POST
@release_manager_required
def plan_rollback(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(plan_id)
    form = forms.ReasonForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the plan rolls back: " + _form_errors(form))
        return _back_to_plan(plan)
    actor, reason = Actor.for_user(request.user), form.cleaned_data["reason"]

    def call() -> str:
        incident = phase_services.plan_rollback(
            plan=plan, trigger="manual", actor=actor, reason=reason
        )
        return f"Rolled back: {incident.restored_to.get('outcome', '')}. Incident recorded."

    _act(request, call)
    return _back_to_plan(plan)


@require_POST
@release_manager_required
def plan_restart(request: HttpRequest, plan_id: int) -> HttpResponse:
    plan = _plan(plan_id)
    actor = Actor.for_user(request.user)
    _act(
        request,
        lambda: f"Restarted {phase_services.plan_restart_phase(plan=plan, actor=actor).name}.",
    )
    return _back_to_plan(plan)


# Gates --------------------------------------------------------------------------------------


def _phase(phase_id: int) -> Phase:
    return get_object_or_404(Phase.objects.select_related("plan"), pk=phase_id)


@require_POST
@release_manager_required
def gate_run(request: HttpRequest, phase_id: int) -> HttpResponse:
    phase = _phase(phase_id)
    actor = Actor.for_user(request.user)

    def call() -> str:
        review = phase_services.evaluate_gate(phase=phase, actor=actor)
        passed = sum(1 for r in review.results if r["verdict"] == "pass")
        return f"Gate run: {passed} of {len(review.results)} criteria passed."

    _act(request, call)
    return _back_to_plan(phase.plan, "gate")


@require_POST
@reader_required
def gate_sign_off(request: HttpRequest, phase_id: int) -> HttpResponse:
    """Support staff and release managers sign off; only release managers decide."""
    phase = _phase(phase_id)
    form = forms.SignOffForm(request.POST)
    comment = form.cleaned_data["comment"] if form.is_valid() else ""

    def call() -> str:
        signoff = phase_services.sign_off(phase=phase, user=request.user, comment=comment)
        return f"Signed off {phase.name} as {signoff.role.replace('_', ' ')}."

    _act(request, call)
    return _back_to_plan(phase.plan, "gate")


@require_POST
@reader_required
def gate_checklist(request: HttpRequest, phase_id: int) -> HttpResponse:
    phase = _phase(phase_id)
    form = forms.ChecklistForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back_to_plan(phase.plan, "gate")
    item = get_object_or_404(ChecklistItem, pk=form.cleaned_data["item"], phase=phase)
    ticked = form.cleaned_data["ticked"]

    def call() -> str:
        phase_services.checklist_tick(item=item, user=request.user, ticked=ticked)
        return f"{'Ticked' if ticked else 'Unticked'}: {item.text}"

    _act(request, call)
    return _back_to_plan(phase.plan, "gate")


@require_POST
@release_manager_required
def gate_decide(request: HttpRequest, phase_id: int) -> HttpResponse:
    phase = _phase(phase_id)
    form = forms.DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back_to_plan(phase.plan, "gate")
    data = form.cleaned_data

    def call() -> str:
        decision = phase_services.decide(
            phase=phase,
            kind=data["kind"],
            user=request.user,
            comment=data["comment"],
            override_reason=data["override_reason"],
        )
        return f"{decision.get_kind_display()} recorded for {phase.name}."

    _act(request, call)
    return _back_to_plan(phase.plan, "gate")


# Flags --------------------------------------------------------------------------------------


@reader_required
@require_GET
def flags(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "").strip()[:100]
    queryset = selectors.flags_with_rules().filter(archived=False).order_by("name")
    if search:
        queryset = queryset.filter(name__icontains=search)
    owners = selectors.live_plans_by_flag()
    rows = [
        {"flag": flag, "state": selectors.flag_state_label(flag), "plan": owners.get(flag.name)}
        for flag in queryset
    ]
    return render(
        request, "dashboard/flags.html", {"rows": rows, "search": search, **_roles(request)}
    )


def _flag(key: str) -> Any:
    flag = selectors.flags_with_rules().filter(name=key).first()
    if flag is None:
        raise Http404("No such flag.")
    return flag


def _tester(request: HttpRequest, key: str) -> dict[str, Any]:
    if "context" not in request.GET:
        return {"tester_form": forms.EvaluateForm(initial={"context": '{"targetingKey": ""}'})}
    form = forms.EvaluateForm(request.GET)
    answer = (
        explain.flag_answer(key=key, context=form.cleaned_data["context"])
        if (form.is_valid())
        else None
    )
    return {"tester_form": form, "answer": answer}


@reader_required
@require_GET
def flag(request: HttpRequest, key: str) -> HttpResponse:
    flag = _flag(key)
    rule_cohorts = [rule.cohort.pk for rule in flag.cohort_rules.all()]
    cohorts = {c.pk: c for c in cohort_list().filter(pk__in=rule_cohorts)}
    context = {
        "flag": flag,
        "state": selectors.flag_state_label(flag),
        "rules": [(rule, cohorts.get(rule.cohort.pk)) for rule in flag.cohort_rules.all()],
        "plan": selectors.live_plans_by_flag().get(flag.name),
        "audit": selectors.flag_audit(flag),
        **_tester(request, flag.name),
        **_roles(request),
    }
    return render(request, "dashboard/flag.html", context)


@reader_required
@require_GET
def flag_evaluate(request: HttpRequest, key: str) -> HttpResponse:
    """The evaluation tester's result, for htmx (the flag page renders it too, without JS)."""
    flag = _flag(key)
    return render(request, "dashboard/_evaluation.html", {"flag": flag, **_tester(request, key)})


def _back_to_flag(key: str, anchor: str = "") -> HttpResponse:
    return redirect(reverse("dashboard:flag", args=[key]) + (f"#{anchor}" if anchor else ""))


def _plan_paused_note(request: HttpRequest, key: str, before: RolloutPlan | None) -> None:
    """A person changing a flag its plan governs pauses the plan (phases does it); say so."""
    if before is None or before.status != RolloutPlan.Status.ACTIVE:
        return
    before.refresh_from_db(fields=["status", "status_reason"])
    if before.status == RolloutPlan.Status.PAUSED:
        messages.warning(request, f"Plan “{before.name}”: {before.status_reason}")


@require_POST
@release_manager_required
def flag_percentage(request: HttpRequest, key: str) -> HttpResponse:
    _flag(key)
    form = forms.PercentageForm(request.POST)
    if not form.is_valid():
        messages.error(request, _form_errors(form))
        return _back_to_flag(key, "percentage")
    data, actor = form.cleaned_data, Actor.for_user(request.user)
    owner = selectors.live_plans_by_flag().get(key)
    percentage: Decimal = data["percentage"]

    def call() -> str:
        cohort = None if data["rule"] == "default" else data["rule"]
        flag_services.flag_set_rule_percentage(
            key=key,
            cohort=cohort,
            basis_points=to_basis_points(percentage, field="percentage"),
            actor=actor,
            reason=data["reason"],
            base_version=data["version"],
        )
        who = "everyone else" if cohort is None else f"cohort {cohort}"
        return f"{key}: {who} now at {percentage.normalize():f} %."

    _act(request, call)
    _plan_paused_note(request, key, owner)
    return _back_to_flag(key, "percentage")


@require_POST
@release_manager_required
def flag_kill_switch(request: HttpRequest, key: str) -> HttpResponse:
    _flag(key)
    form = forms.KillSwitchForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Say why the kill switch changes: " + _form_errors(form))
        return _back_to_flag(key, "kill-switch")
    killed, reason = form.cleaned_data["killed"], form.cleaned_data["reason"]
    actor = Actor.for_user(request.user)
    owner = selectors.live_plans_by_flag().get(key)

    def call() -> str:
        flag_services.flag_set_kill_switch(
            key=key,
            killed=killed,
            actor=actor,
            reason=reason,
            base_version=form.cleaned_data["version"],
        )
        return f"{key}: kill switch {'on — off for everyone' if killed else 'off'}."

    _act(request, call)
    _plan_paused_note(request, key, owner)
    return _back_to_flag(key, "kill-switch")


# Why does this unit see this? ---------------------------------------------------------------


@reader_required
@require_GET
def why(request: HttpRequest) -> HttpResponse:
    form = forms.UnitForm(request.GET if "unit" in request.GET else None)
    report = None
    if form.is_valid():
        report = explain.unit_report(unit=form.cleaned_data["unit"], context=form.context())
    return render(
        request, "dashboard/why.html", {"form": form, "report": report, **_roles(request)}
    )
