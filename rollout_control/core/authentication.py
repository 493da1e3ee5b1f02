import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions

from rollout_control.core import metrics
from rollout_control.core.tokens import TokenSnap, token_lookup

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


def _user_for(token: TokenSnap) -> object:
    """The user a token acts for, loaded only if something asks (no SQL on evaluation paths)."""
    if token.user_id is None:
        return AnonymousUser()

    def load() -> object:
        user = get_user_model().objects.filter(pk=token.user_id, is_active=True).first()
        return user or AnonymousUser()

    return SimpleLazyObject(load)


class ApiTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: HttpRequest) -> tuple[object, TokenSnap] | None:
        raw = raw_token_from(request)
        if raw is None:
            return None
        token = token_lookup(raw)
        if token is None:
            metrics.auth_failures_total.labels("bad_token").inc()
            logger.warning("rejected API token (unknown, expired or revoked) for %s", request.path)
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API token.")
        return _user_for(token), token

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
