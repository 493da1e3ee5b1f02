from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.db import models, transaction
from django.db.models import Model, QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django_celery_beat.admin import (
    ClockedScheduleAdmin,
    CrontabScheduleAdmin,
    IntervalScheduleAdmin,
    PeriodicTaskAdmin,
    SolarScheduleAdmin,
)
from django_celery_beat.models import (
    ClockedSchedule,
    CrontabSchedule,
    IntervalSchedule,
    PeriodicTask,
    SolarSchedule,
)

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken, AuditEntry, WebhookDelivery, WebhookEndpoint
from rollout_control.core.services import (
    api_token_revoke,
    group_state,
    periodic_task_delete,
    periodic_task_record,
    periodic_task_set_enabled,
    periodic_task_state,
    person_change_record,
    person_delete,
    schedule_delete,
    schedule_record,
    schedule_state,
    user_state,
    webhook_endpoint_delete,
    webhook_endpoint_record,
    webhook_endpoint_state,
)


@admin.register(ApiToken)
class ApiTokenAdmin(admin.ModelAdmin):
    list_display = [
        "name",
        "scope",
        "prefix",
        "user",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    ]
    list_filter = ["scope"]
    search_fields = ["name", "prefix"]
    readonly_fields = [f.name for f in ApiToken._meta.fields]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        # The secret is shown once, so tokens are made with `manage.py create_api_token`.
        return False

    @admin.action(description="Revoke selected tokens", permissions=["change"])
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiToken]) -> None:
        actor = Actor.for_user(request.user)
        count = 0
        for token in queryset.filter(revoked_at__isnull=True):
            api_token_revoke(token=token, actor=actor)
            count += 1
        self.message_user(request, f"Revoked {count} token(s).", messages.SUCCESS)


@admin.register(AuditEntry)
class AuditEntryAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "actor_label",
        "action",
        "object_type",
        "object_repr",
        "request_id",
        "task_id",
    ]
    list_filter = ["actor_type", "action", "object_type"]
    search_fields = ["actor_label", "object_repr", "object_id", "request_id", "task_id"]
    date_hierarchy = "created_at"

    def get_readonly_fields(self, request: HttpRequest, obj: AuditEntry | None = None) -> list[str]:
        return [f.name for f in AuditEntry._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: AuditEntry | None = None) -> bool:
        return False


class DeliveryInline(admin.TabularInline):
    model = WebhookDelivery
    extra = 0
    max_num = 0
    can_delete = False
    fields = ["created_at", "event", "attempts", "response_status", "delivered_at", "last_error"]
    readonly_fields = fields
    ordering = ["-created_at"]


@admin.register(WebhookEndpoint)
class WebhookEndpointAdmin(admin.ModelAdmin):
    """Targets and secrets are configuration an operator manages here; failures show inline."""

    list_display = [
        "name",
        "kind",
        "url",
        "enabled",
        "last_success_at",
        "last_failure_at",
        "last_error",
    ]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["last_success_at", "last_failure_at", "last_error"]
    inlines = [DeliveryInline]
    # A URL typed without a scheme is an https one (Django 6's default, and what webhooks use).
    formfield_overrides = {models.URLField: {"assume_scheme": "https"}}

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: object, change: bool
    ) -> None:
        saved = WebhookEndpoint.objects.get(pk=obj.pk) if change else None
        before = webhook_endpoint_state(saved) if saved is not None else None
        super().save_model(request, obj, form, change)
        webhook_endpoint_record(endpoint=obj, actor=Actor.for_user(request.user), before=before)

    def delete_model(self, request: HttpRequest, obj: WebhookEndpoint) -> None:
        webhook_endpoint_delete(endpoint=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[WebhookEndpoint]) -> None:
        for endpoint in queryset:
            self.delete_model(request, endpoint)


class PersonAuditMixin:
    """Users and groups (roles) edited in the admin get one audit row per change or deletion.

    Django's forms save them (password hashing, relations); the row is written in
    ``save_related``, after the relations, inside the admin's transaction.
    """

    audit_kind = ""

    def _state(self, obj: Model) -> dict[str, object]:
        raise NotImplementedError

    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        saved = type(obj).objects.get(pk=obj.pk) if change else None
        obj._audit_before = self._state(saved) if saved is not None else None  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)  # type: ignore[misc]

    def save_related(
        self, request: HttpRequest, form: ModelForm, formsets: list, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)  # type: ignore[misc]
        obj = form.instance
        person_change_record(
            obj=obj,
            actor=Actor.for_user(request.user),
            action=f"{self.audit_kind}.{'update' if change else 'create'}",
            before=getattr(obj, "_audit_before", None),
        )

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        person_delete(obj=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for obj in queryset:
            self.delete_model(request, obj)


User = get_user_model()
admin.site.unregister(User)
admin.site.unregister(Group)
for _model in (PeriodicTask, IntervalSchedule, CrontabSchedule, SolarSchedule, ClockedSchedule):
    admin.site.unregister(_model)


@admin.register(User)
class AuditedUserAdmin(PersonAuditMixin, UserAdmin):
    audit_kind = "user"

    def _state(self, obj: Model) -> dict[str, object]:
        return user_state(obj)  # type: ignore[arg-type]

    def user_change_password(
        self, request: HttpRequest, id: str, form_url: str = ""
    ) -> HttpResponse:
        # Django's view saves without a transaction of its own: make it one, with its audit row.
        with transaction.atomic():
            user = self.get_object(request, id)
            old_hash = user.password if user is not None else None
            before = user_state(user) if user is not None else None
            response = super().user_change_password(request, id, form_url)
            if user is not None:
                user.refresh_from_db()
                if user.password != old_hash:
                    person_change_record(
                        obj=user,
                        actor=Actor.for_user(request.user),
                        action="user.password_change",
                        before=before,
                        password_changed=True,
                    )
        return response


@admin.register(Group)
class AuditedGroupAdmin(PersonAuditMixin, GroupAdmin):
    audit_kind = "group"

    def _state(self, obj: Model) -> dict[str, object]:
        return group_state(obj)  # type: ignore[arg-type]


# Periodic tasks and their schedules: django-celery-beat's admin, with one audit row per change
# (its bulk actions update querysets directly, so they go through services here instead).


@admin.register(PeriodicTask)
class AuditedPeriodicTaskAdmin(PeriodicTaskAdmin):
    def save_model(
        self, request: HttpRequest, obj: PeriodicTask, form: ModelForm, change: bool
    ) -> None:
        saved = PeriodicTask.objects.get(pk=obj.pk) if change else None
        before = periodic_task_state(saved) if saved is not None else None
        super().save_model(request, obj, form, change)
        periodic_task_record(task=obj, actor=Actor.for_user(request.user), before=before)

    def delete_model(self, request: HttpRequest, obj: PeriodicTask) -> None:
        periodic_task_delete(task=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        for task in queryset:
            self.delete_model(request, task)

    def _set_enabled(self, request: HttpRequest, tasks: list[PeriodicTask], enabled: bool) -> int:
        actor = Actor.for_user(request.user)
        return sum(periodic_task_set_enabled(task=t, enabled=enabled, actor=actor) for t in tasks)

    @admin.action(description="Enable selected tasks")
    def enable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = self._set_enabled(request, list(queryset), True)
        self.message_user(request, f"Enabled {count} task(s).", messages.SUCCESS)

    @admin.action(description="Disable selected tasks")
    def disable_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        count = self._set_enabled(request, list(queryset), False)
        self.message_user(request, f"Disabled {count} task(s).", messages.SUCCESS)

    @admin.action(description="Toggle activity of selected tasks")
    def toggle_tasks(self, request: HttpRequest, queryset: QuerySet[PeriodicTask]) -> None:
        tasks = list(queryset)
        count = self._set_enabled(request, [t for t in tasks if not t.enabled], True)
        count += self._set_enabled(request, [t for t in tasks if t.enabled], False)
        self.message_user(request, f"Toggled {count} task(s).", messages.SUCCESS)


class ScheduleAuditMixin:
    def save_model(self, request: HttpRequest, obj: Model, form: ModelForm, change: bool) -> None:
        saved = type(obj).objects.get(pk=obj.pk) if change else None
        before = schedule_state(saved) if saved is not None else None
        super().save_model(request, obj, form, change)  # type: ignore[misc]
        schedule_record(schedule=obj, actor=Actor.for_user(request.user), before=before)

    def delete_model(self, request: HttpRequest, obj: Model) -> None:
        schedule_delete(schedule=obj, actor=Actor.for_user(request.user))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet) -> None:
        for schedule in queryset:
            self.delete_model(request, schedule)


@admin.register(IntervalSchedule)
class AuditedIntervalScheduleAdmin(ScheduleAuditMixin, IntervalScheduleAdmin):
    pass


@admin.register(CrontabSchedule)
class AuditedCrontabScheduleAdmin(ScheduleAuditMixin, CrontabScheduleAdmin):
    pass


@admin.register(SolarSchedule)
class AuditedSolarScheduleAdmin(ScheduleAuditMixin, SolarScheduleAdmin):
    pass


@admin.register(ClockedSchedule)
class AuditedClockedScheduleAdmin(ScheduleAuditMixin, ClockedScheduleAdmin):
    pass
