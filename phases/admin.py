"""Our admin for plans and their gates. Every change goes through phases.services (and so the
audit log). What a plan accumulates (ramp steps, reviews, decisions, incidents, checkpoints) is
read-only, and so is what no service writes yet (plan settings, freeze windows, templates).

Roles are groups without model permissions: release managers and support staff may read plans
and work a gate (run it, tick the checklist, sign off); only release managers act on plans and
decide gates. Django's own model permissions still apply on top."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.html import format_html

from phases import selectors, services
from phases.models import (
    AdmissionBatch,
    ChecklistItem,
    Checkpoint,
    CohortAdmission,
    Decision,
    DegradationState,
    FreezeWindow,
    GateCriterion,
    GateReview,
    Guardrail,
    GuardrailCheck,
    Incident,
    Phase,
    PhaseTarget,
    PlanTemplate,
    RampSkip,
    RampStep,
    RolloutPlan,
    SignOff,
)
from rollout_control.core.actors import Actor
from rollout_control.core.exceptions import DomainError
from rollout_control.core.roles import is_reader, is_release_manager

COMPARATORS = dict(GateCriterion.Comparator.choices)
VERDICTS = {
    "pass": "Pass",
    "fail": "Fail",
    "insufficient_data": "Insufficient data",
    "error": "Error (cannot be computed)",
}




class _RoleReadable:
    def has_module_permission(self, request: HttpRequest) -> bool:
        return is_reader(request) or super().has_module_permission(request)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return is_reader(request) or super().has_view_permission(request, obj)


class _ReadOnly(_RoleReadable):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _gate_url(phase: Phase) -> str:
    return reverse("admin:phases_phase_gate", args=[phase.pk])


# Plans ----------------------------------------------------------------------------------------


class PhaseInline(_ReadOnly, admin.TabularInline):
    model = Phase
    extra = 0
    show_change_link = True
    fields = [
        "number",
        "name",
        "status",
        "min_duration_days",
        "planned_start",
        "planned_end",
        "started_at",
        "ended_at",
        "sign_offs",
        "gate",
    ]
    readonly_fields = fields

    @admin.display(description="Sign-offs from")
    def sign_offs(self, phase: Phase) -> str:
        return ", ".join(phase.required_signoffs) or "—"

    @admin.display(description="#")
    def number(self, phase: Phase) -> int:
        return phase.position + 1

    @admin.display(description="Gate")
    def gate(self, phase: Phase) -> str:
        label = "Run gate" if phase.status == Phase.Status.ACTIVE else "Gate page"
        return format_html('<a href="{}">{}</a>', _gate_url(phase), label)


class FreezeWindowInline(_ReadOnly, admin.TabularInline):
    # Read-only until phases.services has a freeze-window write (validating overlaps).
    model = FreezeWindow
    extra = 0
    fields = ["starts_at", "ends_at", "reason"]
    readonly_fields = fields


def _slot_lines(text: str, field: str) -> dict[str, str]:
    """`slot: key` per line."""
    mapping = {}
    for number, line in enumerate(filter(None, (ln.strip() for ln in text.splitlines())), 1):
        slot, sep, key = (part.strip() for part in line.partition(":"))
        if not sep or not slot or not key:
            raise forms.ValidationError(f"Line {number}: write 'slot: key'.", code=field)
        mapping[slot] = key
    return mapping


class PlanCreateForm(forms.Form):
    name = forms.CharField(max_length=200)
    template = forms.ModelChoiceField(PlanTemplate.objects.all(), to_field_name="key")
    flags = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="One per line: <code>template-slot: flag-key</code>",
    )
    cohorts = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 5}),
        help_text="One per line: <code>template-slot: cohort-key</code>",
    )
    waiting_lists = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="For admissions, one cohort slot per line: <code>slot: unit, unit, …</code>",
    )
    timezone = forms.CharField(required=False, help_text="Empty: the template's (UTC by default).")
    step_hour = forms.IntegerField(required=False, min_value=0, max_value=23)
    start_date = forms.DateField(required=False, help_text="YYYY-MM-DD, for the planned dates.")

    def clean_flags(self) -> dict[str, str]:
        return _slot_lines(self.cleaned_data["flags"], "flags")

    def clean_cohorts(self) -> dict[str, str]:
        return _slot_lines(self.cleaned_data["cohorts"], "cohorts")

    def clean_waiting_lists(self) -> dict[str, list[str]]:
        lines = _slot_lines(self.cleaned_data["waiting_lists"], "waiting_lists")
        return {
            slot: [u.strip() for u in units.split(",") if u.strip()]
            for slot, units in lines.items()
        }


class PauseForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Shown on the plan and in the audit log.",
    )


@admin.register(RolloutPlan)
class RolloutPlanAdmin(_RoleReadable, admin.ModelAdmin):
    list_display = [
        "name",
        "status",
        "active_phase",
        "template",
        "timezone",
        "held",
        "activated_at",
    ]
    list_filter = ["status", "template"]
    search_fields = ["name"]
    inlines = [PhaseInline, FreezeWindowInline]
    actions = ["activate", "pause", "resume"]
    change_form_template = "admin/phases/rolloutplan/change_form.html"
    fields = [
        "name",
        "description",
        "template",
        "status",
        "status_reason",
        "held_reason",
        "timezone",
        "step_hour",
        "allowed_weekdays",
        "created_by",
        "created_at",
        "activated_at",
        "ended_at",
        "version",
    ]
    readonly_fields = fields

    def get_queryset(self, request: HttpRequest) -> QuerySet[RolloutPlan]:
        return selectors.plan_list()  # phases prefetched: the list shows each plan's active one

    @admin.display(description="Active phase")
    def active_phase(self, plan: RolloutPlan) -> str:
        active = [p for p in plan.phases.all() if p.status == Phase.Status.ACTIVE]
        return active[0].name if active else "—"

    @admin.display(description="Held", boolean=True)
    def held(self, plan: RolloutPlan) -> bool:
        return plan.is_held

    def has_add_permission(self, request: HttpRequest) -> bool:
        return is_release_manager(request) or super().has_add_permission(request)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # a plan's settings have no update service; it changes through actions

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # plans end (complete, rolled back); their history stays readable

    def has_release_permission(self, request: HttpRequest) -> bool:
        return is_release_manager(request)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        plan = self.get_object(request, object_id)
        active = selectors.active_phase(plan) if plan is not None else None
        context = {**(extra_context or {}), "active_phase": active}
        return super().change_view(request, object_id, form_url, context)

    def add_view(
        self, request: HttpRequest, form_url: str = "", extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """A plan is made from a template by the service, never from a bare model form."""
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = PlanCreateForm(request.POST if request.method == "POST" else None)
        if form.is_valid():
            data = form.cleaned_data
            try:
                plan = services.plan_create_from_template(
                    template_key=data["template"].key,
                    actor=Actor.for_user(request.user),
                    name=data["name"],
                    flags=data["flags"],
                    cohorts=data["cohorts"],
                    waiting_lists=data["waiting_lists"],
                    timezone_name=data["timezone"] or None,
                    step_hour=data["step_hour"],
                    start_date=data["start_date"],
                )
            except DomainError as exc:
                form.add_error(None, f"{exc.field}: {exc.message}" if exc.field else exc.message)
            else:
                self.message_user(
                    request, f"Created the draft plan “{plan.name}”.", messages.SUCCESS
                )
                return redirect("admin:phases_rolloutplan_change", plan.pk)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Create a plan from a template",
            "form": form,
            "plan_templates": PlanTemplate.objects.all(),
        }
        return TemplateResponse(request, "admin/phases/plan_create.html", context)

    def _each(
        self, request: HttpRequest, plans: QuerySet[RolloutPlan], verb: str, call: Any
    ) -> None:
        done = 0
        for plan in plans:
            try:
                call(plan)
            except DomainError as exc:
                self.message_user(request, f"{plan.name}: {exc.message}", messages.ERROR)
            else:
                done += 1
        self.message_user(
            request, f"{verb} {done} plan(s).", messages.SUCCESS if done else messages.WARNING
        )

    @admin.action(description="Activate selected draft plans", permissions=["release"])
    def activate(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        actor = Actor.for_user(request.user)
        self._each(
            request, queryset, "Activated", lambda p: services.plan_activate(plan=p, actor=actor)
        )

    @admin.action(description="Pause selected plans…", permissions=["release"])
    def pause(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> HttpResponse | None:
        form = PauseForm(request.POST if "apply" in request.POST else None)
        if form.is_valid():
            actor, reason = Actor.for_user(request.user), form.cleaned_data["reason"]
            self._each(
                request,
                queryset,
                "Paused",
                lambda p: services.plan_pause(plan=p, actor=actor, reason=reason),
            )
            return None
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Pause plans",
            "plans": queryset,
            "form": form,
            "action_checkbox_name": admin.helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(request, "admin/phases/plan_pause.html", context)

    @admin.action(description="Resume selected paused plans", permissions=["release"])
    def resume(self, request: HttpRequest, queryset: QuerySet[RolloutPlan]) -> None:
        actor = Actor.for_user(request.user)
        self._each(
            request,
            queryset,
            "Resumed",
            lambda p: services.plan_resume(plan=p, actor=actor, reason="resumed in the admin"),
        )


@admin.register(PlanTemplate)
class PlanTemplateAdmin(_ReadOnly, admin.ModelAdmin):
    # Read-only until phases.services can validate and save a template definition.
    list_display = ["key", "name", "phase_names"]
    fields = ["key", "name", "description", "definition"]
    readonly_fields = fields

    @admin.display(description="Phases")
    def phase_names(self, template: PlanTemplate) -> str:
        return " → ".join(p.get("name", "?") for p in template.definition.get("phases", []))


# Phases and their gates -----------------------------------------------------------------------


class TargetInline(_ReadOnly, admin.TabularInline):
    model = PhaseTarget
    extra = 0
    fields = ["flag", "cohort", "start_bp", "step_bp", "target_bp"]
    readonly_fields = fields


class CriterionInline(_ReadOnly, admin.TabularInline):
    model = GateCriterion
    extra = 0
    fields = ["kind", "description", "metric", "comparator", "threshold", "window", "min_samples"]
    readonly_fields = fields


class ChecklistInline(_ReadOnly, admin.TabularInline):
    model = ChecklistItem
    extra = 0
    fields = ["text", "ticked_by", "ticked_at"]
    readonly_fields = fields


class SignOffInline(_ReadOnly, admin.TabularInline):
    model = SignOff
    extra = 0
    fields = ["user", "role", "comment", "created_at"]
    readonly_fields = fields


class AdmissionInline(_ReadOnly, admin.TabularInline):
    model = CohortAdmission
    extra = 0
    fields = ["cohort", "batch_sizes", "period_days", "cap", "waiting_list"]
    readonly_fields = fields


class DecisionForm(forms.Form):
    kind = forms.ChoiceField(choices=Decision.Kind.choices, widget=forms.HiddenInput)
    comment = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Sent to the team with the decision. A NO-GO needs one.",
    )
    override_reason = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="Needed for GO while a criterion fails or lacks data, a checklist item is "
        "open or the minimum duration is not reached. Recorded as an override.",
    )


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:.6f}".rstrip("0").rstrip(".")


def _criteria_rows(phase: Phase, review: GateReview | None) -> list[dict[str, Any]]:
    if review is None:
        return [
            {
                "description": c.description,
                "metric": c.metric,
                "comparator": c.get_comparator_display(),
                "threshold": _number(c.threshold),
                "window": c.window,
                "observed": "—",
                "samples": None,
                "verdict": "",
                "verdict_label": "Not run yet",
                "detail": "",
            }
            for c in phase.criteria.all()
        ]
    return [
        {
            **row,
            "comparator": COMPARATORS.get(row["comparator"], row["comparator"]),
            "threshold": _number(row["threshold"]),
            "observed": _number(row["observed"]),
            "verdict_label": VERDICTS.get(row["verdict"], row["verdict"]),
        }
        for row in review.results
    ]


@admin.register(Phase)
class PhaseAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["__str__", "status", "started_at", "ended_at", "gate"]
    list_filter = ["status"]
    list_select_related = ["plan"]
    search_fields = ["name", "plan__name"]
    inlines = [TargetInline, AdmissionInline, CriterionInline, ChecklistInline, SignOffInline]
    fields = [
        "plan",
        "position",
        "name",
        "description",
        "status",
        "min_duration_days",
        "planned_start",
        "planned_end",
        "started_at",
        "ended_at",
        "required_signoffs",
        "kickoff_subject",
        "kickoff_body",
        "gate",
    ]
    readonly_fields = fields

    @admin.display(description="Gate")
    def gate(self, phase: Phase) -> str:
        return format_html('<a href="{}">Gate page</a>', _gate_url(phase))

    def get_urls(self) -> list[Any]:
        view = self.admin_site.admin_view  # staff only, CSRF-protected, never cached
        return [
            path("<int:object_id>/gate/", view(self.gate_view), name="phases_phase_gate"),
            path(
                "<int:object_id>/gate/decide/", view(self.decide_view), name="phases_phase_decide"
            ),
            *super().get_urls(),
        ]

    def _phase(self, request: HttpRequest, object_id: int) -> Phase:
        phase = get_object_or_404(Phase.objects.select_related("plan"), pk=object_id)
        if not self.has_view_permission(request, phase):
            raise PermissionDenied
        return phase

    def _context(self, request: HttpRequest, phase: Phase, **extra: Any) -> dict[str, Any]:
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "plan_opts": RolloutPlan._meta,
            "phase": phase,
            "plan": phase.plan,
            "is_active": phase.status == Phase.Status.ACTIVE,
            "can_decide": is_release_manager(request),
            **extra,
        }

    def gate_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        phase = self._phase(request, object_id)
        if request.method == "POST":
            self._gate_post(request, phase)
            return HttpResponseRedirect(request.path)
        review = phase.reviews.first()
        signoffs = list(phase.signoffs.select_related("user").order_by("created_at"))
        signed_roles = {s.role for s in signoffs}
        context = self._context(
            request,
            phase,
            title=f"Gate: {phase.name}",
            review=review,
            criteria=_criteria_rows(phase, review),
            checklist=phase.checklist.select_related("ticked_by"),
            signoffs=signoffs,
            required=[(role, role in signed_roles) for role in phase.required_signoffs],
            has_signed=any(s.user_id == request.user.pk for s in signoffs),
            decisions=phase.decisions.select_related("user"),
            decision_kinds=Decision.Kind.choices,
        )
        return TemplateResponse(request, "admin/phases/gate.html", context)

    def _gate_post(self, request: HttpRequest, phase: Phase) -> None:
        op, user = request.POST.get("op"), request.user
        try:
            if op == "run":
                review = services.evaluate_gate(phase=phase, actor=Actor.for_user(user))
                verdict = (
                    "every criterion passed" if review.passed else "not every criterion passed"
                )
                messages.success(request, f"Gate run: {verdict}.")
            elif op in ("tick", "untick"):
                item_id = request.POST.get("item", "")
                item = get_object_or_404(
                    ChecklistItem, pk=int(item_id) if item_id.isdigit() else 0, phase=phase
                )
                services.checklist_tick(item=item, user=user, ticked=op == "tick")
                messages.success(
                    request, f"{'Ticked' if op == 'tick' else 'Unticked'}: {item.text}"
                )
            elif op == "sign":
                signoff = services.sign_off(
                    phase=phase, user=user, comment=request.POST.get("comment", "")
                )
                messages.success(request, f"Signed off {phase.name} as {signoff.role}.")
            else:
                messages.error(request, "Unknown request.")
        except DomainError as exc:
            messages.error(request, exc.message)

    def decide_view(self, request: HttpRequest, object_id: int) -> HttpResponse:
        """GO / NO-GO / ROLLBACK: the gate page's button posts the kind, this page asks for the
        comment (and override reason), and only its confirm button decides."""
        phase = self._phase(request, object_id)
        if not is_release_manager(request):
            raise PermissionDenied("Only a release manager can decide a gate.")
        form = DecisionForm(request.POST if request.method == "POST" else None)
        if not form.is_valid():
            if request.method == "POST":
                messages.error(request, "Choose GO, NO-GO or ROLLBACK.")
            return redirect("admin:phases_phase_gate", phase.pk)
        data = form.cleaned_data
        if "confirm" in request.POST:
            try:
                decision = services.decide(
                    phase=phase,
                    kind=data["kind"],
                    user=request.user,
                    comment=data["comment"],
                    override_reason=data["override_reason"],
                )
            except DomainError as exc:
                messages.error(request, exc.message)
            else:
                messages.success(
                    request, f"{decision.get_kind_display()} recorded for {phase.name}."
                )
                if decision.kind == Decision.Kind.NO_GO:
                    return redirect("admin:phases_phase_gate", phase.pk)
                return redirect("admin:phases_rolloutplan_change", phase.plan_id)
        following = phase.plan.phases.filter(position__gt=phase.position).order_by("position")
        context = self._context(
            request,
            phase,
            title=f"Confirm {Decision.Kind(data['kind']).label}: {phase.name}",
            form=form,
            kind=data["kind"],
            kind_label=Decision.Kind(data["kind"]).label,
            next_phase=following.first(),
            review=phase.reviews.first(),
            open_items=phase.checklist.filter(ticked_at__isnull=True),
        )
        return TemplateResponse(request, "admin/phases/decide.html", context)


# What plans accumulate: read-only ------------------------------------------------------------


@admin.register(RampStep)
class RampStepAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["target", "local_date", "from_bp", "to_bp", "reason", "created_at"]
    list_filter = ["reason"]
    list_select_related = ["target__flag", "target__cohort"]
    date_hierarchy = "created_at"


@admin.register(RampSkip)
class RampSkipAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["plan", "local_date", "reason", "created_at"]
    list_select_related = ["plan"]


@admin.register(AdmissionBatch)
class AdmissionBatchAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["admission", "period_index", "units", "created_at"]
    list_select_related = ["admission__phase__plan", "admission__cohort"]


@admin.register(GateReview)
class GateReviewAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["phase", "created_at", "created_by", "passed"]
    list_filter = ["passed"]
    list_select_related = ["phase__plan"]


@admin.register(Decision)
class DecisionAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["phase", "kind", "user", "comment", "override_reason", "created_at"]
    list_filter = ["kind"]
    list_select_related = ["phase__plan", "user"]


@admin.register(Incident)
class IncidentAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["plan", "trigger", "actor_label", "created_at"]
    list_filter = ["trigger"]
    list_select_related = ["plan"]


@admin.register(Checkpoint)
class CheckpointAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["plan", "created_at"]
    list_select_related = ["plan"]


@admin.register(Guardrail)
class GuardrailAdmin(_ReadOnly, admin.ModelAdmin):
    """Created from the plan's template or the API (validated, audited); shown here with state."""

    list_display = [
        "name",
        "plan",
        "metric",
        "comparator",
        "threshold",
        "window",
        "failures_to_act",
        "action",
        "last_verdict",
        "consecutive_failures",
        "last_checked_at",
        "last_error",
    ]
    list_filter = ["action", "last_verdict"]
    list_select_related = ["plan"]


@admin.register(GuardrailCheck)
class GuardrailCheckAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["guardrail", "minute", "value", "samples", "verdict", "detail", "acted"]
    list_filter = ["verdict", "acted"]
    list_select_related = ["guardrail__plan"]


@admin.register(DegradationState)
class DegradationStateAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["level", "last_stress", "changed_at", "calm_since"]
