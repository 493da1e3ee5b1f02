"""Plans over the API, for automation. Decisions need a token tied to a user (or a session)."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from phases import selectors, services
from phases.exceptions import InvalidPlan, NotAllowed, PhaseNotActive
from phases.filters import PlanFilter
from phases.models import RolloutPlan
from phases.serializers import (
    DecideInput,
    DecisionOutput,
    FreezeWindowInput,
    FreezeWindowOutput,
    GuardrailInput,
    GuardrailOutput,
    IncidentOutput,
    PlanChangeInput,
    PlanCreateInput,
    PlanOutput,
    PlanSummaryOutput,
    PreviewOutput,
    ReasonInput,
    ReviewOutput,
    RollbackInput,
    SignOffInput,
    SignOffOutput,
)
from rollout_control.core.actors import Actor
from rollout_control.core.conditional import IF_MATCH_PARAMETER, if_match_version
from rollout_control.core.filters import filtered
from rollout_control.core.pagination import PAGE_PARAMETERS, Pagination
from rollout_control.core.permissions import (
    IsReleaseManager,
    IsSupportStaff,
    StaffReadsReleaseManagerWrites,
)
from rollout_control.core.schema import paginated


def _plan(pk: int) -> RolloutPlan:
    return get_object_or_404(RolloutPlan, pk=pk)


def _person(request: Request) -> AbstractBaseUser:
    user = request.user
    if not user or not user.is_authenticated:
        raise NotAllowed("This action needs a person: log in, or use a token tied to a user.")
    return user


def _active_phase(plan: RolloutPlan) -> Any:
    phase = selectors.active_phase(plan)
    if phase is None:
        raise PhaseNotActive(f"{plan.name} has no active phase.")
    return phase


class PlanListCreateView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=RolloutPlan.Status.values),
            *PAGE_PARAMETERS,
        ],
        responses={200: paginated(PlanSummaryOutput)},
        operation_id="v1_plans_list",
        summary="List plans",
    )
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        queryset = filtered(PlanFilter, request, selectors.plan_list())
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(PlanSummaryOutput(page, many=True).data)

    @extend_schema(
        request=PlanCreateInput,
        responses={201: PlanOutput},
        summary="Create a plan from a template",
    )
    def post(self, request: Request) -> Response:
        data = PlanCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        plan = services.plan_create_from_template(
            template_key=values.pop("template"),
            actor=Actor.from_request(request),
            timezone_name=values.pop("timezone", None),
            **values,
        )
        return Response(PlanOutput(plan).data, status=status.HTTP_201_CREATED)


def _plan_response(plan: RolloutPlan) -> Response:
    return Response(PlanOutput(plan).data, headers={"ETag": f'"{plan.version}"'})


class PlanDetailView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(responses={200: PlanOutput}, summary="A plan with its phases")
    def get(self, request: Request, pk: int) -> Response:
        return _plan_response(_plan(pk))

    @extend_schema(
        request=PlanChangeInput,
        responses={200: PlanOutput},
        parameters=[IF_MATCH_PARAMETER],
        summary="Change a plan's settings (all or nothing)",
        description="Name, description, time zone, step hour, weekdays. Say which version the "
        "edit starts from (`If-Match` or `version`) and an edit that lost a race is refused "
        "(412 or 409) instead of silently overwriting.",
    )
    def patch(self, request: Request, pk: int) -> Response:
        plan = _plan(pk)
        expected_version = if_match_version(request)
        data = PlanChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason")
        plan = services.plan_update(
            plan=plan,
            actor=Actor.from_request(request),
            changes=changes,
            expected_version=expected_version,
            base_version=changes.pop("version", None),
            reason=reason,
        )
        return _plan_response(plan)


class _PlanAction(APIView):
    permission_classes = [IsReleaseManager]


class ActivateView(_PlanAction):
    @extend_schema(request=None, responses={200: PlanOutput}, summary="Activate a draft plan")
    def post(self, request: Request, pk: int) -> Response:
        plan = services.plan_activate(plan=_plan(pk), actor=Actor.from_request(request))
        return Response(PlanOutput(plan).data)


class PauseView(_PlanAction):
    @extend_schema(request=ReasonInput, responses={200: PlanOutput}, summary="Pause a plan")
    def post(self, request: Request, pk: int) -> Response:
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        reason = data.validated_data["reason"] or "paused over the API"
        plan = services.plan_pause(plan=_plan(pk), actor=Actor.from_request(request), reason=reason)
        return Response(PlanOutput(plan).data)


class ResumeView(_PlanAction):
    @extend_schema(request=ReasonInput, responses={200: PlanOutput}, summary="Resume a paused plan")
    def post(self, request: Request, pk: int) -> Response:
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_resume(
            plan=_plan(pk), actor=Actor.from_request(request), reason=data.validated_data["reason"]
        )
        return Response(PlanOutput(plan).data)


class RunGateView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        request=None, responses={200: ReviewOutput}, summary="Run the active phase's gate"
    )
    def post(self, request: Request, pk: int) -> Response:
        review = services.evaluate_gate(
            phase=_active_phase(_plan(pk)), actor=Actor.from_request(request)
        )
        return Response(ReviewOutput(review).data)


class SignOffView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        request=SignOffInput,
        responses={201: SignOffOutput},
        summary="Sign off the active phase's gate",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = SignOffInput(data=request.data)
        data.is_valid(raise_exception=True)
        phase = _active_phase(_plan(pk))
        signoff = services.sign_off(
            phase=phase,
            user=_person(request),
            actor=Actor.from_request(request),
            **data.validated_data,
        )
        return Response(SignOffOutput(signoff).data, status=201)


class DecideView(_PlanAction):
    @extend_schema(
        request=DecideInput, responses={200: DecisionOutput}, summary="GO / NO-GO / ROLLBACK"
    )
    def post(self, request: Request, pk: int) -> Response:
        data = DecideInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        decision = services.decide(
            phase=_active_phase(_plan(pk)),
            kind=values["decision"],
            user=_person(request),
            comment=values["comment"],
            override_reason=values["override_reason"],
            actor=Actor.from_request(request),
        )
        return Response(DecisionOutput(decision).data)


class RollbackView(_PlanAction):
    @extend_schema(
        request=RollbackInput,
        responses={200: IncidentOutput},
        summary="Roll the plan back (manual)",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = RollbackInput(data=request.data)
        data.is_valid(raise_exception=True)
        incident = services.plan_rollback(
            plan=_plan(pk),
            trigger="manual",
            actor=Actor.from_request(request),
            reason=data.validated_data["reason"],
            mode=data.validated_data["rollback_to"],
        )
        return Response(IncidentOutput(incident).data)


class RestartPhaseView(_PlanAction):
    @extend_schema(
        request=None, responses={200: PlanOutput}, summary="Restart the phase a rollback ended"
    )
    def post(self, request: Request, pk: int) -> Response:
        plan = _plan(pk)
        services.plan_restart_phase(plan=plan, actor=Actor.from_request(request))
        plan.refresh_from_db()
        return Response(PlanOutput(plan).data)


class CompleteView(_PlanAction):
    @extend_schema(request=ReasonInput, responses={200: PlanOutput}, summary="End the plan")
    def post(self, request: Request, pk: int) -> Response:
        data = ReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        plan = services.plan_complete(
            plan=_plan(pk), actor=Actor.from_request(request), reason=data.validated_data["reason"]
        )
        return Response(PlanOutput(plan).data)


class PreviewView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        responses={200: PreviewOutput}, summary="What the next step and a rollback would do"
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(selectors.plan_preview(plan=_plan(pk)))


class GuardrailsView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(responses={200: GuardrailOutput(many=True)}, summary="A plan's guardrails")
    def get(self, request: Request, pk: int) -> Response:
        return Response(GuardrailOutput(_plan(pk).guardrails.all(), many=True).data)

    @extend_schema(
        request=GuardrailInput, responses={201: GuardrailOutput}, summary="Add a guardrail"
    )
    def post(self, request: Request, pk: int) -> Response:
        plan = _plan(pk)
        data = GuardrailInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        phase_id = values.pop("phase")
        phase = plan.phases.filter(pk=phase_id).first() if phase_id else None
        if phase_id and phase is None:
            raise InvalidPlan("No such phase in this plan.", field="phase")
        guardrail = services.guardrail_create(
            plan=plan, phase=phase, actor=Actor.from_request(request), **values
        )
        return Response(GuardrailOutput(guardrail).data, status=status.HTTP_201_CREATED)


class FreezeWindowsView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(
        responses={200: FreezeWindowOutput(many=True)}, summary="A plan's freeze windows"
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(FreezeWindowOutput(_plan(pk).freeze_windows.all(), many=True).data)

    @extend_schema(
        request=FreezeWindowInput,
        responses={201: FreezeWindowOutput},
        summary="Add a freeze window",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = FreezeWindowInput(data=request.data)
        data.is_valid(raise_exception=True)
        window = services.freeze_window_add(
            plan=_plan(pk), actor=Actor.from_request(request), **data.validated_data
        )
        return Response(FreezeWindowOutput(window).data, status=status.HTTP_201_CREATED)


class FreezeWindowDetailView(_PlanAction):
    @extend_schema(request=None, responses={204: None}, summary="Remove a freeze window")
    def delete(self, request: Request, pk: int, window_id: int) -> Response:
        window = get_object_or_404(_plan(pk).freeze_windows, pk=window_id)
        services.freeze_window_remove(window=window, actor=Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)
