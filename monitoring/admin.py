from django.contrib import admin

from monitoring.models import Heartbeat, MetricDefinition, MetricRollup


@admin.register(MetricDefinition)
class MetricDefinitionAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "aggregation", "metric", "denominator", "min_samples", "unit"]
    list_filter = ["source", "aggregation"]
    search_fields = ["name", "description"]


@admin.register(Heartbeat)
class HeartbeatAdmin(admin.ModelAdmin):
    list_display = ["component", "last_seen_at"]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(MetricRollup)
class MetricRollupAdmin(admin.ModelAdmin):
    list_display = ["metric", "bucket_start", "flag", "plan", "count", "total"]
    list_filter = ["metric"]

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False
