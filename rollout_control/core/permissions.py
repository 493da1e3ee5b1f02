"""Who may call what: client, ingest and admin tokens, and the two dashboard roles.

An admin token tied to a person acts with that person's roles as they are now (read from the
database on these non-evaluation endpoints), not as they were when the token was made: a
demoted user's token gets 403 at once, a deactivated user's 401. Untied admin tokens
(automation) have the scope's authority.
"""

import logging
from typing import Any

from rest_framework import exceptions
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


def _admin_token_allows(
    permission: BasePermission, request: Request, token: TokenSnap, *roles: str
) -> bool:
    """An admin token may act if it is untied, or its user holds one of `roles` now."""
    if not token.is_admin:
        return False
    if token.user_id is None:
        return True
    user = request.user  # loaded lazily: only these endpoints pay for the query
    if not user.is_authenticated:
        # Deactivated (or deleted) since this process's token snapshot was built.
        metrics.auth_failures_total.labels("bad_token").inc()
        logger.warning("token %s refused: its user is inactive (%s)", token.name, request.path)
        raise exceptions.AuthenticationFailed("The user this API token belongs to is inactive.")
    if any(user_has_role(user, role) for role in roles):
        return True
    permission.message = (
        f"This token acts for {user.get_username()}, who does not have the "
        f"{' or '.join(roles)} role."
    )
    return False


def _has_any_role(request: Request) -> bool:
    return user_has_role(request.user, RELEASE_MANAGER) or user_has_role(request.user, SUPPORT)


class IsAnyPrincipal(_LoggedPermission):
    """Any live token (whatever its scope), or a dashboard user with a role: `whoami`."""

    message = "This endpoint needs an API token or a dashboard login."

    def allows(self, request: Request) -> bool:
        return _token(request) is not None or _has_any_role(request)


class IsClient(_LoggedPermission):
    """A client or admin token, or a dashboard user with a role. Ingest tokens (server-side
    metric reporters) may do nothing else."""

    message = "This endpoint needs a client or admin API token, or a dashboard login."

    def allows(self, request: Request) -> bool:
        token = _token(request)
        if token is not None:
            if token.is_ingest:
                self.message = "An ingest token may only push metric samples."
                return False
            return True
        return _has_any_role(request)


class CanPushMetrics(_LoggedPermission):
    """Metric samples drive automatic pauses and rollbacks, so only trusted senders push them:
    an ingest or admin token, or a release manager. Client tokens ship inside apps (public)."""

    message = (
        "Pushing metric samples needs an ingest or admin API token (or the release_manager "
        "role); client tokens are public and may not."
    )

    def allows(self, request: Request) -> bool:
        token = _token(request)
        if token is not None:
            return token.is_ingest or _admin_token_allows(self, request, token, RELEASE_MANAGER)
        return user_has_role(request.user, RELEASE_MANAGER)


class IsReleaseManager(_LoggedPermission):
    """An admin token (its user, if any, a release manager now), or a release manager."""

    message = "This action needs an admin token or the release_manager role."

    def allows(self, request: Request) -> bool:
        token = _token(request)
        if token is not None:
            return _admin_token_allows(self, request, token, RELEASE_MANAGER)
        return user_has_role(request.user, RELEASE_MANAGER)


class IsSupportStaff(_LoggedPermission):
    """An admin token (its user, if any, support or release manager now), or such a user."""

    message = "This endpoint needs an admin token or the support or release_manager role."

    def allows(self, request: Request) -> bool:
        token = _token(request)
        if token is not None:
            return _admin_token_allows(self, request, token, SUPPORT, RELEASE_MANAGER)
        return _has_any_role(request)


class StaffReadsReleaseManagerWrites(_LoggedPermission):
    """Reads for support staff and release managers; changes for release managers only."""

    message = "Changes need an admin token or the release_manager role."

    def allows(self, request: Request) -> bool:
        reads = request.method in ("GET", "HEAD", "OPTIONS")
        inner = IsSupportStaff() if reads else IsReleaseManager()
        if inner.allows(request):
            return True
        if "message" in vars(inner):  # a reason about this caller (e.g. the token's user)
            self.message = inner.message
        return False
