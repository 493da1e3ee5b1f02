"""Who may call what: client tokens, admin tokens, and the two dashboard roles."""

import logging
from typing import Any

from rest_framework.permissions import BasePermission
from rest_framework.request import Request

from rollout_control.core import metrics
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT, user_has_role
from rollout_control.core.tokens import TokenSnap

logger = logging.getLogger(__name__)


def _token(request: Request) -> TokenSnap | None:
    return request.auth if isinstance(request.auth, TokenSnap) else None


class _LoggedPermission(BasePermission):
    def has_permission(self, request: Request, view: Any) -> bool:
        allowed = self.allows(request)
        if allowed:
            return True
        if request.auth is not None or request.user.is_authenticated:
            metrics.auth_failures_total.labels("forbidden").inc()
            logger.warning(
                "permission denied: %s %s for %s",
                request.method,
                request.path,
                _token(request) or request.user,
            )
        else:  # no credentials at all: a 401, logged quieter (clients probing, expired sessions)
            metrics.auth_failures_total.labels("missing").inc()
            logger.info("no credentials: %s %s", request.method, request.path)
        return False

    def allows(self, request: Request) -> bool:
        raise NotImplementedError


class IsClient(_LoggedPermission):
    """Any live token (client or admin), or a dashboard user with a role."""

    message = "This endpoint needs an API token or a dashboard login."

    def allows(self, request: Request) -> bool:
        if _token(request) is not None:
            return True
        return user_has_role(request.user, RELEASE_MANAGER) or user_has_role(request.user, SUPPORT)


class IsReleaseManager(_LoggedPermission):
    """An admin token, or a dashboard user in the release_manager group."""

    message = "This action needs an admin token or the release_manager role."

    def allows(self, request: Request) -> bool:
        token = _token(request)
        if token is not None:
            return token.is_admin
        return user_has_role(request.user, RELEASE_MANAGER)


class IsSupportStaff(_LoggedPermission):
    """An admin token, or a dashboard user in support or release_manager."""

    message = "This endpoint needs an admin token or the support or release_manager role."

    def allows(self, request: Request) -> bool:
        token = _token(request)
        if token is not None:
            return token.is_admin
        return user_has_role(request.user, SUPPORT) or user_has_role(request.user, RELEASE_MANAGER)


class StaffReadsReleaseManagerWrites(_LoggedPermission):
    """Reads for support staff and release managers; changes for release managers only."""

    message = "Changes need an admin token or the release_manager role."

    def allows(self, request: Request) -> bool:
        if request.method in ("GET", "HEAD", "OPTIONS"):
            return IsSupportStaff().allows(request)
        return IsReleaseManager().allows(request)
