from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken, AuditEntry, WebhookDelivery, WebhookEndpoint
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

    def save_model(
        self, request: HttpRequest, obj: WebhookEndpoint, form: object, change: bool
    ) -> None:
        from rollout_control.core.services import audit_record

        def state(endpoint: WebhookEndpoint) -> dict[str, object]:
            return {
                "name": endpoint.name,
                "url": endpoint.url,
                "kind": endpoint.kind,
                "enabled": endpoint.enabled,
                "events": endpoint.events,
            }

        before = state(WebhookEndpoint.objects.get(pk=obj.pk)) if change else None
        super().save_model(request, obj, form, change)
        action = "webhook.update" if change else "webhook.create"
        audit_record(
            actor=Actor.for_user(request.user),
            action=action,
            obj=obj,
            before=before,
            after=state(obj),
        )
