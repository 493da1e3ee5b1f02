"""Feedback in the admin is read-only: every change goes through the queue pages or the API,
so it is validated, written to the item's history and audited."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html

from feedback.models import FeedbackComment, FeedbackEvent, FeedbackItem


class _ReadOnly:
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class CommentInline(_ReadOnly, admin.TabularInline):
    model = FeedbackComment
    fields = ["created_at", "author_label", "text"]
    readonly_fields = fields
    extra = 0


class EventInline(_ReadOnly, admin.TabularInline):
    model = FeedbackEvent
    fields = ["created_at", "actor_label", "kind", "before", "after", "reason"]
    readonly_fields = fields
    extra = 0


@admin.register(FeedbackItem)
class FeedbackItemAdmin(_ReadOnly, admin.ModelAdmin):
    list_display = ["id", "type", "priority", "status", "due_at", "flag_key", "plan_name", "unit"]
    list_filter = ["status", "priority", "type", "plan_name"]
    search_fields = ["text", "unit", "org", "flag_key"]
    date_hierarchy = "created_at"
    list_select_related = ["assignee"]
    readonly_fields = ["queue_link"]
    inlines = [CommentInline, EventInline]

    @admin.display(description="Work on it")
    def queue_link(self, obj: FeedbackItem) -> str:
        url = reverse("feedback:detail", args=[obj.pk])
        return format_html('<a href="{}">Open #{} in the feedback queue</a>', url, obj.pk)
