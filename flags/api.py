"""Management API for flags and cohorts, and native evaluation. Views validate, call one
service, and serialize."""

from typing import Any

from django.conf import settings
from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from flags import selectors, services
from flags.filters import SEARCH_MAX, CohortFilter, FlagFilter
from flags.models import CohortMember
from flags.serializers import (
    CohortChangeInput,
    CohortCreateInput,
    CohortOutput,
    EvaluateInput,
    EvaluateOutput,
    FlagChangeInput,
    FlagCreateInput,
    FlagOutput,
    MembersInput,
    MembersOutput,
    OptInInput,
    OptInOutput,
)
from rollout_control.core.actors import Actor
from rollout_control.core.conditional import IF_MATCH_PARAMETER, if_match_version
from rollout_control.core.errors import error_body
from rollout_control.core.filters import filtered, parse_bool
from rollout_control.core.pagination import PAGE_PARAMETERS, Pagination
from rollout_control.core.permissions import (
    IsClient,
    IsReleaseManager,
    StaffReadsReleaseManagerWrites,
)
from rollout_control.core.ratelimit import TokenBucket, retry_after_header
from rollout_control.core.schema import paginated
from rollout_control.core.serializers import NO_NUL
from rollout_control.core.snapshots import store
from rollout_control.core.tokens import TokenSnap

MAX_REASON = 2_000
SEARCH = OpenApiParameter(
    "search",
    {"type": "string", "maxLength": SEARCH_MAX, "pattern": NO_NUL},
    description="Substring of key or description.",
)


def _flag_or_404(key: str, *, archived: bool = False) -> Any:
    flag = selectors.flag_get(key=key, include_archived=archived)
    if flag is None:
        raise Http404(f"No flag with key {key!r}.")
    return flag


def _flag_response(flag: Any, *, status_code: int = 200) -> Response:
    return Response(
        services.flag_state(flag), status=status_code, headers={"ETag": f'"{flag.version}"'}
    )


def _cohort_response(cohort: Any) -> Response:
    return Response(services.cohort_state(cohort), headers={"ETag": f'"{cohort.version}"'})


def _wants_archived(request: Request) -> bool:
    return parse_bool(request.query_params.get("archived"), field="archived")


class FlagListCreateView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "archived", OpenApiTypes.BOOL, description="List archived flags instead."
            ),
            SEARCH,
            OpenApiParameter("tier", OpenApiTypes.STR, enum=["core", "non_essential"]),
            *PAGE_PARAMETERS,
        ],
        responses={200: paginated(FlagOutput)},
        operation_id="v1_flags_list",
        summary="List flags",
    )
    def get(self, request: Request) -> Response:
        queryset = filtered(
            FlagFilter, request, selectors.flag_list(archived=None), defaults={"archived": "0"}
        )
        paginator = Pagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([services.flag_state(flag) for flag in page])

    @extend_schema(request=FlagCreateInput, responses={201: FlagOutput}, summary="Create a flag")
    def post(self, request: Request) -> Response:
        data = FlagCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        key, reason = fields.pop("key"), fields.pop("reason", "")
        flag = services.flag_create(
            key=key, actor=Actor.from_request(request), reason=reason, **fields
        )
        return _flag_response(flag, status_code=status.HTTP_201_CREATED)


class FlagDetailView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "archived", OpenApiTypes.BOOL, description="Also find an archived flag."
            )
        ],
        responses={200: FlagOutput},
        summary="Get a flag",
    )
    def get(self, request: Request, key: str) -> Response:
        return _flag_response(_flag_or_404(key, archived=_wants_archived(request)))

    @extend_schema(
        request=FlagChangeInput,
        responses={200: FlagOutput},
        parameters=[IF_MATCH_PARAMETER],
        summary="Change a flag (all or nothing)",
        description="Say which version the edit starts from (`If-Match` or `version`) and an "
        "edit that lost a race is refused (412 or 409) instead of silently overwriting.",
    )
    def patch(self, request: Request, key: str) -> Response:
        _flag_or_404(key)
        expected_version = if_match_version(request)
        data = FlagChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        flag = services.flag_update(
            key=key,
            actor=Actor.from_request(request),
            changes=changes,
            expected_version=expected_version,
            base_version=changes.pop("version", None),
            reason=reason,
        )
        return _flag_response(flag)

    @extend_schema(
        request=None,
        parameters=[
            OpenApiParameter(
                "reason",
                {"type": "string", "maxLength": MAX_REASON, "pattern": NO_NUL},
                description="Why (kept in the audit log).",
            )
        ],
        responses={200: FlagOutput},
        summary="Archive a flag",
    )
    def delete(self, request: Request, key: str) -> Response:
        _flag_or_404(key)
        reason = request.query_params.get("reason", "")
        if len(reason) > MAX_REASON or "\x00" in reason:
            message = f"At most {MAX_REASON} characters, no NUL character."
            raise ValidationError({"reason": [message]})
        flag = services.flag_archive(key=key, actor=Actor.from_request(request), reason=reason)
        return _flag_response(flag)


def _cohort_or_404(key: str) -> Any:
    cohort = selectors.cohort_get(key=key)
    if cohort is None:
        raise Http404(f"No cohort with key {key!r}.")
    return cohort


class CohortListCreateView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "search",
                {"type": "string", "maxLength": SEARCH_MAX, "pattern": NO_NUL},
                description="Substring of key or name.",
            ),
            *PAGE_PARAMETERS,
        ],
        responses={200: paginated(CohortOutput)},
        operation_id="v1_cohorts_list",
        summary="List cohorts",
    )
    def get(self, request: Request) -> Response:
        paginator = Pagination()
        queryset = filtered(CohortFilter, request, selectors.cohort_list())
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response([services.cohort_state(cohort) for cohort in page])

    @extend_schema(
        request=CohortCreateInput, responses={201: CohortOutput}, summary="Create a cohort"
    )
    def post(self, request: Request) -> Response:
        data = CohortCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        fields = dict(data.validated_data)
        fields.pop("reason", None)
        cohort = services.cohort_create(
            key=fields.pop("key"), actor=Actor.from_request(request), **fields
        )
        return Response(services.cohort_state(cohort), status=status.HTTP_201_CREATED)


class CohortDetailView(APIView):
    permission_classes = [StaffReadsReleaseManagerWrites]

    @extend_schema(responses={200: CohortOutput}, summary="Get a cohort")
    def get(self, request: Request, key: str) -> Response:
        return _cohort_response(_cohort_or_404(key))

    @extend_schema(
        request=CohortChangeInput,
        responses={200: CohortOutput},
        parameters=[IF_MATCH_PARAMETER],
        summary="Change a cohort (all or nothing)",
        description="Say which version the edit starts from (`If-Match` or `version`) and an "
        "edit that lost a race is refused (412 or 409) instead of silently overwriting.",
    )
    def patch(self, request: Request, key: str) -> Response:
        _cohort_or_404(key)
        expected_version = if_match_version(request)
        data = CohortChangeInput(data=request.data)
        data.is_valid(raise_exception=True)
        changes = dict(data.validated_data)
        reason = changes.pop("reason", "")
        cohort = services.cohort_update(
            key=key,
            actor=Actor.from_request(request),
            changes=changes,
            expected_version=expected_version,
            base_version=changes.pop("version", None),
            reason=reason,
        )
        return _cohort_response(cohort)

    @extend_schema(request=None, responses={204: None}, summary="Delete a cohort no flag rule uses")
    def delete(self, request: Request, key: str) -> Response:
        _cohort_or_404(key)
        services.cohort_delete(key=key, actor=Actor.from_request(request))
        return Response(status=status.HTTP_204_NO_CONTENT)


class CohortMembersView(APIView):
    permission_classes = [IsReleaseManager]

    def _change(self, request: Request, key: str, *, add: bool) -> Response:
        _cohort_or_404(key)
        data = MembersInput(data=request.data)
        data.is_valid(raise_exception=True)
        change = services.cohort_members_add if add else services.cohort_members_remove
        changed = change(
            key=key, units=data.validated_data["units"], actor=Actor.from_request(request)
        )
        count = CohortMember.objects.filter(cohort__key=key, kind=CohortMember.Kind.MEMBER).count()
        return Response({"changed": changed, "member_count": count})

    @extend_schema(
        request=MembersInput, responses={200: MembersOutput}, summary="Add members (idempotent)"
    )
    def post(self, request: Request, key: str) -> Response:
        return self._change(request, key, add=True)

    @extend_schema(request=MembersInput, responses={200: MembersOutput}, summary="Remove members")
    def delete(self, request: Request, key: str) -> Response:
        return self._change(request, key, add=False)


_opt_in_per_token = TokenBucket(
    rate=settings.OPT_IN_RATE_PER_TOKEN, burst=max(1, 2 * settings.OPT_IN_RATE_PER_TOKEN)
)
_opt_in_per_unit = TokenBucket(
    rate=settings.OPT_IN_RATE_PER_UNIT / 60, burst=max(1, settings.OPT_IN_RATE_PER_UNIT // 2)
)


def _opt_in_wait(request: Request, key: str, unit: str) -> float:
    """Seconds to wait, or 0: each opt-in makes every process take in a new configuration, so a
    client cannot send them as fast as it likes (per token), nor flip one unit over and over."""
    token = request.auth if isinstance(request.auth, TokenSnap) else None
    sender = ("token", token.pk) if token else ("user", request.user.pk)
    return _opt_in_per_token.take(sender) or _opt_in_per_unit.take((key, unit))


class CohortOptInView(APIView):
    permission_classes = [IsClient]

    def _change(self, request: Request, key: str, *, opt_in: bool) -> Response:
        _cohort_or_404(key)
        data = OptInInput(data=request.data)
        data.is_valid(raise_exception=True)
        unit = data.validated_data["unit"]
        wait = _opt_in_wait(request, key, str(unit))
        if wait:
            return Response(
                error_body("rate_limited", "Too many opt-ins; try again later."),
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": retry_after_header(wait)},
            )
        change = services.cohort_opt_in if opt_in else services.cohort_opt_out
        changed = change(key=key, unit=unit, actor=Actor.from_request(request))
        return Response({"cohort": key, "unit": unit, "opted_in": opt_in, "changed": changed})

    @extend_schema(
        request=OptInInput,
        responses={200: OptInOutput, 429: OpenApiResponse(description="Too many; see Retry-After")},
        summary="Opt a unit in (client token)",
        description="Rate-limited per token (OPT_IN_RATE_PER_TOKEN a second) and per unit "
        "(OPT_IN_RATE_PER_UNIT a minute): 429 with Retry-After when over.",
    )
    def post(self, request: Request, key: str) -> Response:
        return self._change(request, key, opt_in=True)

    @extend_schema(
        request=OptInInput,
        responses={200: OptInOutput, 429: OpenApiResponse(description="Too many; see Retry-After")},
        summary="Opt a unit out",
    )
    def delete(self, request: Request, key: str) -> Response:
        return self._change(request, key, opt_in=False)


def evaluation_dict(evaluation: Any) -> dict[str, Any]:
    return {
        "key": evaluation.key,
        "value": evaluation.value,
        "variant": evaluation.variant,
        "reason": evaluation.reason,
        "error_code": evaluation.error_code,
        "error_details": evaluation.error_details,
        "metadata": dict(evaluation.metadata),
    }


class EvaluateView(APIView):
    permission_classes = [IsClient]

    @extend_schema(
        request=EvaluateInput,
        responses={200: EvaluateOutput},
        summary="Evaluate every flag for one context",
    )
    def post(self, request: Request) -> Response:
        data = EvaluateInput(data=request.data)
        data.is_valid(raise_exception=True)
        evaluations = selectors.evaluate_flags(context=data.validated_data["context"])
        return Response(
            {
                "flags": [evaluation_dict(e) for e in evaluations],
                "config_version": store.version or 0,
                "snapshot_age_seconds": selectors.snapshot_age_seconds(),
            }
        )
