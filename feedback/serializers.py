from typing import Any

from rest_framework import serializers

from feedback.models import (
    MAX_TEXT,
    FeedbackComment,
    FeedbackEvent,
    FeedbackItem,
    FeedbackPriority,
    FeedbackStatus,
    FeedbackType,
)
from feedback.services.triage import BULK_STATUSES
from flags.models import KEY_PATTERN
from rollout_control.core.serializers import JsonObjectField, StrictFieldsMixin, whole
from rollout_control.core.validators import single_line


class FeedbackCreateInput(StrictFieldsMixin, serializers.Serializer):
    type = serializers.ChoiceField(choices=FeedbackType.choices)
    text = serializers.CharField(max_length=MAX_TEXT)
    rating = serializers.IntegerField(min_value=1, max_value=5, required=False, allow_null=True)
    flag = serializers.RegexField(
        whole(KEY_PATTERN),
        max_length=100,
        required=False,
        allow_blank=True,
        default="",
        help_text="Flag key (of a flag that exists).",
    )
    unit = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        validators=[single_line],
        help_text="The reporting unit: the targeting key the app evaluates flags with.",
    )
    org = serializers.CharField(
        max_length=200,
        required=False,
        allow_blank=True,
        default="",
        validators=[single_line],
        help_text="Organisation id.",
    )
    app_version = serializers.CharField(
        max_length=50, required=False, allow_blank=True, default="", validators=[single_line]
    )
    metadata = JsonObjectField(
        required=False, default=dict, help_text="Anything the app adds (no NUL character)."
    )
    context = JsonObjectField(
        required=False,
        default=dict,
        help_text="The evaluation context the app uses (for cohort rules); unit and org are "
        "added as targetingKey and orgId. No NUL character.",
    )


class FeedbackFlagStateOutput(serializers.Serializer):
    key = serializers.CharField(source="flag_key")
    value = serializers.BooleanField(source="flag_value", allow_null=True)
    reason = serializers.CharField(source="flag_reason")
    percentage = serializers.DecimalField(
        source="flag_percentage", max_digits=5, decimal_places=2, allow_null=True
    )
    cohort = serializers.CharField(source="flag_cohort", allow_null=True)
    plan = serializers.CharField(source="plan_name", allow_null=True)
    phase = serializers.CharField(source="phase_name", allow_null=True)

    def to_representation(self, instance: Any) -> dict[str, Any]:
        data = super().to_representation(instance)
        for name in ("cohort", "plan", "phase"):
            data[name] = data[name] or None
        return data


class FeedbackReceiptOutput(serializers.ModelSerializer):
    """What a client app gets back: no staff-only details."""

    flag_state = serializers.SerializerMethodField()

    class Meta:
        model = FeedbackItem
        fields = ["id", "type", "priority", "status", "created_at", "due_at", "flag_state"]
        read_only_fields = fields

    def get_flag_state(self, obj: FeedbackItem) -> dict[str, Any] | None:
        return FeedbackFlagStateOutput(obj).data if obj.flag_key else None


class FeedbackOutput(FeedbackReceiptOutput):
    flag = serializers.CharField(source="flag_key")
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)
    overdue = serializers.SerializerMethodField()
    time_to_resolution_seconds = serializers.SerializerMethodField()

    class Meta:
        model = FeedbackItem
        fields = [
            "id",
            "type",
            "text",
            "rating",
            "priority",
            "status",
            "flag",
            "unit",
            "org",
            "app_version",
            "metadata",
            "flag_state",
            "source",
            "submitted_by",
            "assignee",
            "duplicate_of",
            "created_at",
            "updated_at",
            "due_at",
            "first_response_at",
            "overdue",
            "overdue_at",
            "closed_at",
            "time_to_resolution_seconds",
            "exclusion_requested_at",
            "unit_excluded_at",
        ]
        read_only_fields = fields

    def get_overdue(self, obj: FeedbackItem) -> bool:
        return obj.is_overdue()

    def get_time_to_resolution_seconds(self, obj: FeedbackItem) -> int | None:
        ttr = obj.time_to_resolution
        return None if ttr is None else int(ttr.total_seconds())


class FeedbackCommentOutput(serializers.ModelSerializer):
    author = serializers.CharField(source="author_label")

    class Meta:
        model = FeedbackComment
        fields = ["id", "author", "text", "created_at"]
        read_only_fields = fields


class FeedbackEventOutput(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label")

    class Meta:
        model = FeedbackEvent
        fields = ["id", "kind", "actor", "before", "after", "reason", "created_at"]
        read_only_fields = fields


class FeedbackDetailOutput(FeedbackOutput):
    comments = FeedbackCommentOutput(many=True, read_only=True)
    history = FeedbackEventOutput(source="events", many=True, read_only=True)

    class Meta(FeedbackOutput.Meta):
        fields = [*FeedbackOutput.Meta.fields, "comments", "history"]
        read_only_fields = fields


class FeedbackUpdateInput(StrictFieldsMixin, serializers.Serializer):
    status = serializers.ChoiceField(choices=FeedbackStatus.choices, required=False)
    priority = serializers.ChoiceField(choices=FeedbackPriority.choices, required=False)
    assignee = serializers.CharField(
        max_length=150,
        required=False,
        allow_null=True,
        validators=[single_line],
        help_text="Username; null unassigns.",
    )
    duplicate_of = serializers.IntegerField(
        min_value=1, required=False, help_text="The original, with status duplicate."
    )
    reason = serializers.CharField(
        max_length=2000, required=False, allow_blank=True, default="",
        help_text="Required when the priority changes.",
    )  # fmt: skip

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if not set(attrs) - {"reason"}:
            raise serializers.ValidationError("Change at least one of status, priority, assignee.")
        if "priority" in attrs and not attrs["reason"].strip():
            raise serializers.ValidationError({"reason": ["Say why the priority changes."]})
        return attrs


class FeedbackCommentInput(StrictFieldsMixin, serializers.Serializer):
    text = serializers.CharField(max_length=MAX_TEXT)


class FeedbackReasonInput(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2000, required=False, allow_blank=True, default="")


class FeedbackBulkInput(StrictFieldsMixin, serializers.Serializer):
    ids = serializers.ListField(
        child=serializers.IntegerField(min_value=1), min_length=1, max_length=500
    )
    action = serializers.ChoiceField(choices=["assign", "status"])
    assignee = serializers.CharField(
        max_length=150, required=False, allow_null=True, validators=[single_line]
    )
    status = serializers.ChoiceField(
        choices=[(s.value, s.label) for s in BULK_STATUSES],
        required=False,
        help_text="Duplicates are marked one by one (they name their original).",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["action"] == "assign" and "assignee" not in attrs:
            raise serializers.ValidationError({"assignee": ["Name the assignee (null: nobody)."]})
        if attrs["action"] == "status" and "status" not in attrs:
            raise serializers.ValidationError({"status": ["Name the new status."]})

        return attrs


class FeedbackBulkOutput(serializers.Serializer):
    changed = serializers.ListField(child=serializers.IntegerField())
    skipped = serializers.DictField(child=serializers.CharField())
