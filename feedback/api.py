"""Feedback over the API: intake for client apps, the queue for staff. Views validate, call one
service, and serialize."""

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import BasePermission
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from feedback import metrics, selectors, services
from feedback.forms import FeedbackFilterForm, FeedbackQueryForm
from feedback.models import FeedbackItem, FeedbackSource
from feedback.serializers import (
    FeedbackBulkInput,
    FeedbackBulkOutput,
    FeedbackCommentInput,
    FeedbackCommentOutput,
    FeedbackCreateInput,
    FeedbackDetailOutput,
    FeedbackOutput,
    FeedbackReasonInput,
    FeedbackReceiptOutput,
    FeedbackUpdateInput,
)
from rollout_control.core.actors import Actor
from rollout_control.core.errors import error_body
from rollout_control.core.pagination import PAGE_PARAMETERS, Pagination
from rollout_control.core.permissions import IsClient, IsReleaseManager, IsSupportStaff
from rollout_control.core.ratelimit import TokenBucket, retry_after_header
from rollout_control.core.schema import paginated
from rollout_control.core.tokens import TokenSnap

_limiter = TokenBucket(
    rate=settings.FEEDBACK_RATE_PER_HOUR / 3600, burst=settings.FEEDBACK_RATE_BURST
)
# Per sender (client token, or user) as well: rotating `unit` values must not lift the limit.
_sender_limiter = TokenBucket(
    rate=settings.FEEDBACK_TOKEN_RATE_PER_HOUR / 3600, burst=settings.FEEDBACK_TOKEN_RATE_BURST
)


def _item(pk: int) -> FeedbackItem:
    item = selectors.feedback_get(pk=pk)
    if item is None:
        raise Http404(f"No feedback item {pk}.")
    return item


def _sender_key(request: Request) -> tuple[str, object]:
    token = request.auth if isinstance(request.auth, TokenSnap) else None
    return ("token", token.pk) if token else ("user", request.user.pk)


def _rate_limited(request: Request, unit: str) -> Response | None:
    """429 when the sender or the unit is over its allowance (the sender is checked first, so
    a refused request does not spend the unit's)."""
    sender = _sender_key(request)
    wait, who = _sender_limiter.take(sender), "this client"
    if not wait:
        # No unit named: the sender's own allowance at the unit rate, as before.
        wait, who = _limiter.take(("unit", unit) if unit else sender), "this unit"
    if not wait:
        return None
    metrics.rate_limited_total.inc()
    return Response(
        error_body("rate_limited", f"Too much feedback from {who}; try again later."),
        status=status.HTTP_429_TOO_MANY_REQUESTS,
        headers={"Retry-After": retry_after_header(wait)},
    )


def _assignee(username: str | None) -> Any:
    return None if username is None else services.staff_user(username)


def _detail(pk: int) -> Response:
    return Response(FeedbackDetailOutput(_item(pk)).data)


def _choice(name: str, description: str) -> OpenApiParameter:
    field = FeedbackFilterForm.base_fields[name]
    choices = [str(value) for value, _ in field.choices]  # type: ignore[attr-defined]
    return OpenApiParameter(
        name, {"type": "string", "enum": choices}, description=f"{description} (empty: any)"
    )


def _text(name: str, description: str) -> OpenApiParameter:
    # Django's form fields refuse NUL characters; so does the schema.
    limit = FeedbackFilterForm.base_fields[name].max_length  # type: ignore[attr-defined]
    schema = {"type": "string", "maxLength": limit, "pattern": "^[^\\u0000]*$"}
    return OpenApiParameter(name, schema, description=description)


FILTER_PARAMETERS = [
    _choice("status", 'A status, or "open" (new, triaged, in progress)'),
    _choice("type", "Feedback type"),
    _choice("priority", "Priority"),
    _text("assignee", 'Username, or "none" for unassigned'),
    _text("plan", "Plan name recorded at intake"),
    _text("phase", "Phase name recorded at intake"),
    _text("flag", "Flag key"),
    _text("unit", "Reporting unit"),
    OpenApiParameter("overdue", OpenApiTypes.BOOL, description="Open, unanswered, past due"),
    _text("q", "Search text, unit, organisation, flag, or #id"),
    *PAGE_PARAMETERS,
]


class FeedbackListCreateView(APIView):
    """POST: any client token (or a staff login). GET: support staff and release managers."""

    def get_permissions(self) -> list[BasePermission]:
        return [IsClient()] if self.request.method == "POST" else [IsSupportStaff()]

    @extend_schema(
        parameters=FILTER_PARAMETERS,
        responses={200: paginated(FeedbackOutput)},
        operation_id="v1_feedback_list",
        summary="The feedback queue, next deadline first",
    )
    def get(self, request: Request) -> Response:
        form = FeedbackQueryForm(request.query_params)
        if not form.is_valid():
            raise serializers.ValidationError(form.errors)
        queryset = selectors.feedback_list(filters=form.filters())
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(FeedbackOutput(page, many=True).data)

    @extend_schema(
        request=FeedbackCreateInput,
        responses={
            201: FeedbackReceiptOutput,
            429: OpenApiResponse(
                description="Too many items from this client or unit; see Retry-After."
            ),
        },
        summary="Send feedback (client apps)",
        description=(
            "Rate-limited per client token and per unit: 429 with Retry-After (seconds) when "
            "over either limit."
        ),
    )
    def post(self, request: Request) -> Response:
        data = FeedbackCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = dict(data.validated_data)
        # After validation: a malformed request is a 400 whatever the allowance, and costs none.
        refused = _rate_limited(request, str(values.get("unit") or ""))
        if refused is not None:
            return refused
        item = services.feedback_create(
            actor=Actor.from_request(request),
            flag_key=values.pop("flag"),
            source=FeedbackSource.API,
            **values,
        )
        return Response(FeedbackReceiptOutput(item).data, status=status.HTTP_201_CREATED)


class FeedbackDetailView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(responses={200: FeedbackDetailOutput}, summary="An item with its history")
    def get(self, request: Request, pk: int) -> Response:
        return _detail(pk)

    @extend_schema(
        request=FeedbackUpdateInput,
        responses={200: FeedbackDetailOutput},
        summary="Triage: status, priority (with a reason), assignee",
    )
    def patch(self, request: Request, pk: int) -> Response:
        item = _item(pk)
        data = FeedbackUpdateInput(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason")
        if "assignee" in changes:
            changes["assignee"] = _assignee(changes["assignee"])
        if "duplicate_of" in changes:
            original = selectors.feedback_get(pk=changes["duplicate_of"])
            if original is None:
                raise serializers.ValidationError({"duplicate_of": ["No such item."]})
            changes["duplicate_of"] = original
        services.feedback_update(
            item=item, actor=Actor.from_request(request), changes=changes, reason=reason
        )
        return _detail(pk)


class CommentCreateView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        request=FeedbackCommentInput,
        responses={201: FeedbackCommentOutput},
        summary="Add an internal comment",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = FeedbackCommentInput(data=request.data)
        data.is_valid(raise_exception=True)
        comment = services.feedback_comment(
            item=_item(pk), text=data.validated_data["text"], actor=Actor.from_request(request)
        )
        return Response(FeedbackCommentOutput(comment).data, status=status.HTTP_201_CREATED)


class ExclusionRequestView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        request=FeedbackReasonInput,
        responses={200: FeedbackDetailOutput},
        summary="Ask a release manager to exclude the reporting unit from the flag",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = FeedbackReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.feedback_request_exclusion(
            item=_item(pk), actor=Actor.from_request(request), **data.validated_data
        )
        return _detail(pk)


class ExcludeUnitView(APIView):
    permission_classes = [IsReleaseManager]

    @extend_schema(
        request=FeedbackReasonInput,
        responses={200: FeedbackDetailOutput},
        summary="Put the reporting unit on the flag's exclusion list (pauses its live plan)",
    )
    def post(self, request: Request, pk: int) -> Response:
        data = FeedbackReasonInput(data=request.data)
        data.is_valid(raise_exception=True)
        services.feedback_exclude_unit(
            item=_item(pk), actor=Actor.from_request(request), **data.validated_data
        )
        return _detail(pk)


class BulkView(APIView):
    permission_classes = [IsSupportStaff]

    @extend_schema(
        request=FeedbackBulkInput,
        responses={200: FeedbackBulkOutput},
        summary="Assign or change status at once",
    )
    def post(self, request: Request) -> Response:
        data = FeedbackBulkInput(data=request.data)
        data.is_valid(raise_exception=True)
        values = data.validated_data
        actor = Actor.from_request(request)
        if values["action"] == "assign":
            result = services.feedback_bulk_assign(
                ids=values["ids"], assignee=_assignee(values["assignee"]), actor=actor
            )
        else:
            result = services.feedback_bulk_transition(
                ids=values["ids"], status=values["status"], actor=actor
            )
        missing = set(values["ids"]) - set(result.changed) - set(result.skipped)
        skipped = result.skipped | dict.fromkeys(sorted(missing), "no such item")
        return Response(FeedbackBulkOutput({"changed": result.changed, "skipped": skipped}).data)
