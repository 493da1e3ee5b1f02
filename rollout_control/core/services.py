import secrets
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.db.models import F, Model
from django.utils import timezone
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from rollout_control.core.actors import Actor
from rollout_control.core.context import current_task_id, request_id_var
from rollout_control.core.exceptions import Forbidden, VersionConflict, VersionMismatch
from rollout_control.core.models import ApiToken, AuditEntry, ConfigVersion, WebhookEndpoint
from rollout_control.core.roles import ROLES
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


def _check_token_tie(*, actor: Actor, user: AbstractBaseUser | None) -> str:
    """Who may tie a token to whom (a token acts, signs off and decides as its user). Returns
    the audit reason when a superuser ties one to someone else, "" otherwise."""
    if user is None or actor.type == AuditEntry.ActorType.SYSTEM:
        return ""  # untied, or an operator at the shell (manage.py create_api_token --user)
    if actor.user_id is None:
        raise Forbidden(
            "A token not tied to a person cannot create tokens for people.", field="user"
        )
    if user.pk == actor.user_id:
        return ""
    people = get_user_model().objects
    if not people.filter(pk=actor.user_id, is_active=True, is_superuser=True).exists():
        raise Forbidden(
            "A token can be tied only to yourself (a superuser may tie one to anyone).",
            field="user",
        )
    return f"tied to {user.get_username()} by a superuser"


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
    reason = _check_token_tie(actor=actor, user=user)
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
        audit_record(
            actor=actor,
            action="api_token.create",
            obj=token,
            after=_token_state(token),
            reason=reason,
        )
        config_version_bump()
    return token, raw


def api_token_revoke(*, token: ApiToken, actor: Actor, reason: str = "") -> ApiToken:
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
            reason=reason,
        )
        config_version_bump()
    return token


def user_tokens_revoke(*, user: AbstractBaseUser, actor: Actor, reason: str) -> int:
    """Revokes every live token of a person (one audit row each); returns how many."""
    with transaction.atomic():
        live = ApiToken.objects.filter(user=user, revoked_at__isnull=True).order_by("pk")
        tokens = list(live.select_for_update())
        for token in tokens:
            api_token_revoke(token=token, actor=actor, reason=reason)
    return len(tokens)


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


def _roles_in(state: dict[str, Any]) -> set[str]:
    if not state["is_active"]:
        return set()
    return set(ROLES) if state["is_superuser"] else set(state["groups"]) & set(ROLES)


def _tokens_follow(
    *, user: AbstractBaseUser, before: dict[str, Any] | None, after: dict[str, Any], actor: Actor
) -> int:
    """A person deactivated or losing a role loses their tokens too (a token acts as its
    person; one minted with powers the person no longer has must not outlive them)."""
    if before is None:
        return 0
    if before["is_active"] and not after["is_active"]:
        reason = "user deactivated"
    elif lost := _roles_in(before) - _roles_in(after):
        reason = f"user lost the {', '.join(sorted(lost))} role"
    else:
        return 0
    return user_tokens_revoke(user=user, actor=actor, reason=reason)


def person_change_record(
    *,
    obj: AbstractBaseUser | Group,
    actor: Actor,
    action: str,
    before: dict[str, Any] | None,
    password_changed: bool = False,
) -> AuditEntry:
    """The audit row of a user or group that Django's own forms saved (the admin's user and
    group pages): they hash passwords and save relations themselves, so the service records.
    A user deactivated or demoted by the change has their tokens revoked (a row per token);
    so do the members of a role group renamed away from its role's name."""
    if isinstance(obj, AbstractBaseUser):
        after = user_state(obj)
        _tokens_follow(user=obj, before=before, after=after, actor=actor)
    else:
        after = group_state(obj)
        if before is not None and before["name"] in ROLES and after["name"] != before["name"]:
            for member in obj.user_set.all():
                user_tokens_revoke(
                    user=member, actor=actor, reason=f"user lost the {before['name']} role"
                )
    if password_changed:
        after["password_changed"] = True
    return audit_record(actor=actor, action=action, obj=obj, before=before, after=after)


def user_deactivate(*, user: AbstractBaseUser, actor: Actor) -> AbstractBaseUser:
    """Deactivates a person (they can no longer log in) and revokes their tokens."""
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        if not user.is_active:
            return user
        before = user_state(user)
        user.is_active = False
        user.save(update_fields=["is_active"])
        person_change_record(obj=user, actor=actor, action="user.update", before=before)
    return user


def user_role_remove(*, user: AbstractBaseUser, role: str, actor: Actor) -> AbstractBaseUser:
    """Takes a role (group) from a person and revokes their tokens."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    with transaction.atomic():
        user = get_user_model().objects.select_for_update().get(pk=user.pk)
        if not user.groups.filter(name=role).exists():
            return user
        before = user_state(user)
        user.groups.remove(Group.objects.get(name=role))
        person_change_record(obj=user, actor=actor, action="user.update", before=before)
    return user


def person_delete(*, obj: AbstractBaseUser | Group, actor: Actor) -> None:
    with transaction.atomic():
        before = user_state(obj) if isinstance(obj, AbstractBaseUser) else group_state(obj)
        kind = "user" if isinstance(obj, AbstractBaseUser) else "group"
        if kind == "group" and obj.name in ROLES:
            for member in obj.user_set.all():
                user_tokens_revoke(user=member, actor=actor, reason=f"{obj.name} role deleted")
        elif kind == "user" and ApiToken.objects.filter(user=obj).exists():
            config_version_bump()  # their tokens go with them: every process must forget them
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


def _delete_audited(obj: Model, *, actor: Actor, action: str, before: dict[str, Any]) -> None:
    """Deletes `obj` and writes its audit row, which keeps the identity the row no longer has."""
    with transaction.atomic():
        object_type, object_id, object_repr = obj._meta.label_lower, str(obj.pk), str(obj)
        obj.delete()
        audit_record(
            actor=actor,
            action=action,
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            before=before,
        )


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, actor: Actor) -> None:
    _delete_audited(
        endpoint, actor=actor, action="webhook.delete", before=webhook_endpoint_state(endpoint)
    )


# Periodic tasks (django-celery-beat) are edited in the admin: disabling or rescheduling one, the
# guardrail checks above all, changes the safety net, so each change is one audit row.


def periodic_task_state(task: PeriodicTask) -> dict[str, Any]:
    """What decides whether and when the task runs; not beat's bookkeeping (last run, count)."""
    return {
        "name": task.name,
        "task": task.task,
        "enabled": task.enabled,
        "interval": str(task.interval) if task.interval_id else None,
        "crontab": str(task.crontab) if task.crontab_id else None,
        "solar": str(task.solar) if task.solar_id else None,
        "clocked": str(task.clocked) if task.clocked_id else None,
        "one_off": task.one_off,
        "start_time": task.start_time.isoformat() if task.start_time else None,
        "expires": task.expires.isoformat() if task.expires else None,
        "expire_seconds": task.expire_seconds,
        "args": task.args,
        "kwargs": task.kwargs,
        "queue": task.queue,
    }


def periodic_task_record(
    *, task: PeriodicTask, actor: Actor, before: dict[str, Any] | None
) -> AuditEntry:
    """The audit row of a periodic task the admin's form saved (inside the admin's transaction)."""
    action = "periodic_task.create" if before is None else "periodic_task.update"
    return audit_record(
        actor=actor, action=action, obj=task, before=before, after=periodic_task_state(task)
    )


def periodic_task_set_enabled(*, task: PeriodicTask, enabled: bool, actor: Actor) -> bool:
    """Enables or disables one task (the admin's bulk actions); False when it already was."""
    with transaction.atomic():
        task = PeriodicTask.objects.select_for_update().get(pk=task.pk)
        if task.enabled == enabled:
            return False
        before = periodic_task_state(task)
        task.enabled = enabled
        # save() clears last_run_at on disable, as django-celery-beat's own action does.
        task.save(update_fields=["enabled", "last_run_at", "date_changed"])
        audit_record(
            actor=actor,
            action="periodic_task.enable" if enabled else "periodic_task.disable",
            obj=task,
            before=before,
            after=periodic_task_state(task),
        )
    return True


def periodic_task_delete(*, task: PeriodicTask, actor: Actor) -> None:
    _delete_audited(
        task, actor=actor, action="periodic_task.delete", before=periodic_task_state(task)
    )


def schedule_state(schedule: Model) -> dict[str, Any]:
    """An interval, crontab, solar or clocked schedule, and the periodic tasks that follow it."""
    return {
        "schedule": str(schedule),
        "tasks": sorted(
            PeriodicTask.objects.filter(**{_schedule_field(schedule): schedule}).values_list(
                "name", flat=True
            )
        ),
    }


def _schedule_field(schedule: Model) -> str:
    return {
        IntervalSchedule: "interval",
        CrontabSchedule: "crontab",
        SolarSchedule: "solar",
        ClockedSchedule: "clocked",
    }[type(schedule)]


def schedule_record(*, schedule: Model, actor: Actor, before: dict[str, Any] | None) -> AuditEntry:
    action = "schedule.create" if before is None else "schedule.update"
    return audit_record(
        actor=actor, action=action, obj=schedule, before=before, after=schedule_state(schedule)
    )


def schedule_delete(*, schedule: Model, actor: Actor) -> None:
    """Deleting a schedule deletes the periodic tasks that follow it (a cascade): one row, whose
    `before` names them."""
    with transaction.atomic():
        before = schedule_state(schedule)
        object_type, object_id = schedule._meta.label_lower, str(schedule.pk)
        object_repr = str(schedule)
        schedule.delete()
        audit_record(
            actor=actor,
            action="schedule.delete",
            object_type=object_type,
            object_id=object_id,
            object_repr=object_repr,
            before=before,
        )
