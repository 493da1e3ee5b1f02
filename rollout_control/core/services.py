import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.db.models import F, Model
from django.utils import timezone

from rollout_control.core.actors import Actor
from rollout_control.core.context import current_task_id, request_id_var
from rollout_control.core.exceptions import VersionConflict, VersionMismatch
from rollout_control.core.models import ApiToken, AuditEntry, ConfigVersion, WebhookEndpoint
from rollout_control.core.selectors import token_hash
from rollout_control.core.snapshots import store

TOKEN_PREFIX = "rc_"  # noqa: S105 (a label, not a secret)


def audit_record(
    *,
    actor: Actor,
    action: str,
    obj: Model | None = None,
    object_type: str = "",
    object_id: str = "",
    object_repr: str = "",
    before: Any = None,
    after: Any = None,
    reason: str = "",
) -> AuditEntry:
    """The one way to write the audit log; every service that changes data calls it once."""
    if obj is not None:
        object_type = object_type or obj._meta.label_lower
        object_id = object_id or str(obj.pk)
        object_repr = object_repr or str(obj)[:200]
    return AuditEntry.objects.create(
        actor_type=actor.type,
        actor_user_id=actor.user_id,
        actor_token_id=actor.token_id,
        actor_label=actor.label[:150],
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr[:200],
        before=before,
        after=after,
        reason=reason,
        request_id=request_id_var.get(),
        task_id=current_task_id(),
    )


def check_version(*, label: str, current: int, expected: int | None, base: int | None) -> None:
    """Refuses a stale versioned edit; call it with the row locked, so of two edits from one
    version exactly one gets through. `expected` is the `If-Match` version (VersionMismatch,
    412), `base` the body's `version` (VersionConflict, 409 naming `version`); see
    rollout_control/core/conditional.py."""
    if expected is not None and expected != current:
        raise VersionMismatch(f"{label} is at version {current}, not {expected}; reload it.")
    if base is not None and base != current:
        raise VersionConflict(
            f"{label} changed since version {base} (it is at {current});"
            " reload it and apply your edit again.",
            field="version",
        )


def _token_state(token: ApiToken) -> dict[str, Any]:
    return {
        "name": token.name,
        "scope": token.scope,
        "prefix": token.prefix,
        "user": token.user.get_username() if token.user else None,
        "expires_at": token.expires_at.isoformat() if token.expires_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }


def api_token_create(
    *,
    name: str,
    scope: str,
    actor: Actor,
    user: AbstractBaseUser | None = None,
    expires_at: datetime | None = None,
) -> tuple[ApiToken, str]:
    """Creates a token and returns it with its secret, never stored and never shown again."""
    if scope not in ApiToken.Scope.values:
        raise ValueError(f"scope must be one of {', '.join(ApiToken.Scope.values)}")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)  # 32 bytes = 256 bits
    with transaction.atomic():
        token = ApiToken.objects.create(
            name=name,
            scope=scope,
            user=user,
            expires_at=expires_at,
            key_hash=token_hash(raw),
            prefix=raw[: len(TOKEN_PREFIX) + 6],
        )
        audit_record(actor=actor, action="api_token.create", obj=token, after=_token_state(token))
        config_version_bump()
    return token, raw


def api_token_revoke(*, token: ApiToken, actor: Actor) -> ApiToken:
    with transaction.atomic():
        token = ApiToken.objects.select_for_update().get(pk=token.pk)
        if token.revoked_at is not None:
            return token
        before = _token_state(token)
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(
            actor=actor,
            action="api_token.revoke",
            obj=token,
            before=before,
            after=_token_state(token),
        )
        config_version_bump()
    return token


def config_version_bump() -> None:
    """Call inside the transaction of any change to flags, cohorts or tokens: every process
    rebuilds its snapshot when it sees the new version (within about half a second)."""
    updated = ConfigVersion.objects.filter(pk=1).update(
        version=F("version") + 1, changed_at=timezone.now()
    )
    if not updated:
        ConfigVersion.objects.get_or_create(pk=1, defaults={"version": 1})
    store.mark_dirty()


# People and roles. A role is a group (core/roles.py), so who may change flags and plans is
# data like any other and is audited the same way; passwords never reach the log, only the fact
# that one changed.


def user_state(user: AbstractBaseUser) -> dict[str, Any]:
    return {
        "username": user.get_username(),
        "email": getattr(user, "email", ""),
        "is_active": user.is_active,
        "is_staff": getattr(user, "is_staff", False),
        "is_superuser": getattr(user, "is_superuser", False),
        "groups": sorted(user.groups.values_list("name", flat=True)),
        "permissions": sorted(
            f"{app}.{codename}"
            for app, codename in user.user_permissions.values_list(
                "content_type__app_label", "codename"
            )
        ),
    }


def group_state(group: Group) -> dict[str, Any]:
    return {
        "name": group.name,
        "permissions": sorted(
            f"{app}.{codename}"
            for app, codename in group.permissions.values_list(
                "content_type__app_label", "codename"
            )
        ),
    }


def person_change_record(
    *,
    obj: AbstractBaseUser | Group,
    actor: Actor,
    action: str,
    before: dict[str, Any] | None,
    password_changed: bool = False,
) -> AuditEntry:
    """The audit row of a user or group that Django's own forms saved (the admin's user and
    group pages): they hash passwords and save relations themselves, so the service records."""
    after = user_state(obj) if isinstance(obj, AbstractBaseUser) else group_state(obj)
    if password_changed:
        after["password_changed"] = True
    return audit_record(actor=actor, action=action, obj=obj, before=before, after=after)


def person_delete(*, obj: AbstractBaseUser | Group, actor: Actor) -> None:
    with transaction.atomic():
        before = user_state(obj) if isinstance(obj, AbstractBaseUser) else group_state(obj)
        kind = "user" if isinstance(obj, AbstractBaseUser) else "group"
        object_type, object_id, object_repr = obj._meta.label_lower, str(obj.pk), str(obj)
        obj.delete()
        audit_record(
            actor=actor,
            action=f"{kind}.delete",
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            before=before,
        )


def user_login_set(
    *, username: str, password: str, role: str, is_superuser: bool, actor: Actor
) -> AbstractBaseUser:
    """Creates or updates a staff login with the given role and a new password (the demo's)."""
    with transaction.atomic():
        user, created = (
            get_user_model().objects.select_for_update().get_or_create(username=username)
        )
        before = None if created else user_state(user)
        user.is_staff = True
        user.is_superuser = is_superuser
        user.set_password(password)
        user.save()
        user.groups.add(Group.objects.get(name=role))
        action = "user.create" if created else "user.update"
        person_change_record(
            obj=user, actor=actor, action=action, before=before, password_changed=True
        )
    return user


# Webhook endpoints are edited in the admin (a form saves them); these record and delete.


def webhook_endpoint_state(endpoint: WebhookEndpoint) -> dict[str, Any]:
    # The signing secret is configuration, not history: it never reaches the log.
    return {
        "name": endpoint.name,
        "url": endpoint.url,
        "kind": endpoint.kind,
        "enabled": endpoint.enabled,
        "events": endpoint.events,
    }


def webhook_endpoint_record(
    *, endpoint: WebhookEndpoint, actor: Actor, before: dict[str, Any] | None
) -> AuditEntry:
    action = "webhook.create" if before is None else "webhook.update"
    after = webhook_endpoint_state(endpoint)
    return audit_record(actor=actor, action=action, obj=endpoint, before=before, after=after)


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    with transaction.atomic():
        before = webhook_endpoint_state(endpoint)
        object_id, object_repr = str(endpoint.pk), str(endpoint)
        endpoint.delete()
        audit_record(
            actor=actor,
            action="webhook.delete",
            object_type="core.webhookendpoint",
            object_id=object_id,
            object_repr=object_repr,
            before=before,
        )
