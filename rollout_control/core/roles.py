"""Dashboard roles are Django groups, created by a data migration."""

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

RELEASE_MANAGER = "release_manager"
SUPPORT = "support"
ROLES = (RELEASE_MANAGER, SUPPORT)


def user_has_role(user: AbstractBaseUser | AnonymousUser | None, role: str) -> bool:
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    if user.is_superuser:
        return True
    # Cached on the user object: one query per request at most.
    names = getattr(user, "_role_names", None)
    if names is None:
        names = frozenset(user.groups.values_list("name", flat=True))
        user._role_names = names
    return role in names


def is_release_manager(request: HttpRequest) -> bool:
    """The one page-level role check: may this person take release actions?"""
    return user_has_role(request.user, RELEASE_MANAGER)


def is_reader(request: HttpRequest) -> bool:
    """May this person read plans, flags and feedback (release managers and support staff)?"""
    return is_release_manager(request) or user_has_role(request.user, SUPPORT)
