import logging

from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from rollout_control.core import metrics
from rollout_control.core.models import ApiToken
from rollout_control.core.selectors import api_token_get_usable
from rollout_control.core.services import api_token_touch

logger = logging.getLogger(__name__)


def raw_token_from(request: HttpRequest) -> str | None:
    """The secret from `Authorization: Bearer <token>` or `X-API-Key: <token>`, if sent."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    api_key = request.META.get("HTTP_X_API_KEY", "").strip()
    return api_key or None


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: HttpRequest) -> tuple[object, ApiToken] | None:
        raw = raw_token_from(request)
        if raw is None:
            return None
        token = api_token_get_usable(raw=raw)
        if token is None:
            metrics.auth_failures_total.labels("bad_token").inc()
            logger.warning("rejected API token (unknown, expired or revoked) for %s", request.path)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        api_token_touch(token=token)
        user = token.user if token.user_id and token.user.is_active else AnonymousUser()
        return user, token

    def authenticate_header(self, request: HttpRequest) -> str:
        # Makes DRF answer 401 (not 403) when credentials are missing or wrong.
        return 'Bearer realm="api"'


class ApiTokenScheme(OpenApiAuthenticationExtension):
    target_class = ApiTokenAuthentication
    name = "apiToken"

    def get_security_definition(self, auto_schema: object) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "API token (or X-API-Key header)",
        }
