from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken, AuditEntry
from rollout_control.core.services import api_token_revoke


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

    @admin.action(description="Revoke selected tokens")
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
