from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import generics, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken
from rollout_control.core.permissions import IsAnyPrincipal, IsReleaseManager
from rollout_control.core.roles import ROLES, user_has_role
from rollout_control.core.serializers import (
    ApiTokenCreatedOutput,
    ApiTokenCreateInput,
    ApiTokenOutput,
    WhoAmIOutput,
)
from rollout_control.core.services import api_token_create, api_token_revoke
from rollout_control.core.tokens import TokenSnap


class WhoAmIView(APIView):
    permission_classes = [IsAnyPrincipal]

    @extend_schema(responses={200: WhoAmIOutput}, summary="Who the credentials belong to")
    def get(self, request: Request) -> Response:
        token = request.auth if isinstance(request.auth, TokenSnap) else None
        user = request.user if request.user.is_authenticated else None
        body = {
            "kind": "token" if token else "user",
            "name": token.name if token else user.get_username(),
            "scope": token.scope if token else None,
            "user": user.get_username() if user else None,
            "roles": [role for role in ROLES if user_has_role(user, role)] if user else [],
        }
        return Response(WhoAmIOutput(body).data)


class ApiTokenListCreateView(generics.ListAPIView):
    permission_classes = [IsReleaseManager]
    serializer_class = ApiTokenOutput
    queryset = ApiToken.objects.select_related("user").order_by("-created_at", "-id")
    filterset_fields = ["scope"]

    @extend_schema(request=ApiTokenCreateInput, responses={201: ApiTokenCreatedOutput})
    def post(self, request: Request) -> Response:
        data = ApiTokenCreateInput(data=request.data)
        data.is_valid(raise_exception=True)
        token, raw = api_token_create(actor=Actor.from_request(request), **data.validated_data)
        body = ApiTokenOutput(token).data | {"token": raw}
        return Response(body, status=status.HTTP_201_CREATED)


class ApiTokenRevokeView(APIView):
    permission_classes = [IsReleaseManager]

    @extend_schema(request=None, responses={200: ApiTokenOutput})
    def post(self, request: Request, pk: int) -> Response:
        token = get_object_or_404(ApiToken, pk=pk)
        token = api_token_revoke(token=token, actor=Actor.from_request(request))
        return Response(ApiTokenOutput(token).data)
