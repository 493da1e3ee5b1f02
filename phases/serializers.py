import zoneinfo
from typing import Any

from rest_framework import serializers

from flags.models import KEY_PATTERN
from monitoring.windows import WINDOW_PATTERN
from phases.models import (
    Decision,
    GateReview,
    Guardrail,
    Incident,
    Phase,
    RollbackTo,
    RolloutPlan,
    SignOff,
)
from phases.seed_templates import TEMPLATES
from rollout_control.core.conditional import VERSION_HELP
from rollout_control.core.serializers import JsonObjectField, StrictFieldsMixin, whole
from rollout_control.core.validators import single_line

# The IANA names this machine knows: the schema lists them, so a client can tell a typo from a
# zone the server lacks.
TIME_ZONES = sorted(zoneinfo.available_timezones())
MAX_COUNT = 1_000_000  # sample counts and streaks: far beyond use, well inside the column


def _key(**kwargs: Any) -> serializers.RegexField:
    return serializers.RegexField(whole(KEY_PATTERN), max_length=100, **kwargs)


class PlanCreateInput(StrictFieldsMixin, serializers.Serializer):
    # Templates are installed by migrations (phases.seed_templates) and read-only in the admin.
    template = serializers.ChoiceField(choices=sorted(TEMPLATES))
    name = serializers.CharField(max_length=200, validators=[single_line])
    flags = serializers.DictField(child=_key(), help_text="template slot → flag key")
    cohorts = serializers.DictField(
        child=_key(), required=False, default=dict, help_text="template slot → cohort key"
    )
    waiting_lists = serializers.DictField(
        child=serializers.ListField(
            child=serializers.CharField(max_length=200, validators=[single_line]),
            max_length=100_000,
        ),
        required=False,
        default=dict,
    )
    timezone = serializers.ChoiceField(choices=TIME_ZONES, required=False)
    step_hour = serializers.IntegerField(min_value=0, max_value=23, required=False)
    start_date = serializers.DateField(required=False)


class PlanChangeInput(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False, validators=[single_line])
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    timezone = serializers.ChoiceField(choices=TIME_ZONES, required=False)
    step_hour = serializers.IntegerField(
        min_value=0,
        max_value=23,
        required=False,
        help_text="Plan-local hour after which ramps step.",
    )
    allowed_weekdays = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=6),
        min_length=1,
        max_length=7,
        required=False,
        help_text="Days ramps may step: 0 = Monday … 6 = Sunday.",
    )
    rollback_to = serializers.ChoiceField(
        choices=RollbackTo.choices,
        required=False,
        help_text="What a rollback goes back to: the last verified safe point, or off.",
    )
    version = serializers.IntegerField(min_value=1, required=False, help_text=VERSION_HELP)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2_000, default="")


class TargetOutput(serializers.Serializer):
    flag = serializers.CharField(source="flag.name")
    cohort = serializers.CharField(source="cohort.key", allow_null=True, default=None)
    start = serializers.SerializerMethodField()
    step = serializers.SerializerMethodField()
    target = serializers.SerializerMethodField()

    def get_start(self, obj: Any) -> float:
        return obj.start_bp / 100

    def get_step(self, obj: Any) -> float:
        return obj.step_bp / 100

    def get_target(self, obj: Any) -> float:
        return obj.target_bp / 100


class CriterionOutput(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    description = serializers.CharField()
    metric = serializers.CharField()
    comparator = serializers.CharField()
    threshold = serializers.FloatField()
    window = serializers.CharField()
    filters = serializers.DictField()


class PhaseOutput(serializers.ModelSerializer):
    targets = TargetOutput(many=True, read_only=True)
    criteria = CriterionOutput(many=True, read_only=True)
    checklist = serializers.SerializerMethodField()

    class Meta:
        model = Phase
        fields = [
            "id",
            "position",
            "name",
            "status",
            "min_duration_days",
            "planned_start",
            "planned_end",
            "started_at",
            "ended_at",
            "required_signoffs",
            "targets",
            "criteria",
            "checklist",
        ]

    def get_checklist(self, obj: Phase) -> list[dict[str, Any]]:
        return [
            {"id": i.pk, "text": i.text, "ticked": i.ticked_at is not None}
            for i in obj.checklist.all()
        ]


class PlanOutput(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="key", read_only=True)
    phases = PhaseOutput(many=True, read_only=True)

    class Meta:
        model = RolloutPlan
        fields = [
            "id",
            "name",
            "description",
            "template",
            "status",
            "status_reason",
            "held_reason",
            "timezone",
            "step_hour",
            "allowed_weekdays",
            "rollback_to",
            "created_at",
            "activated_at",
            "ended_at",
            "version",
            "phases",
        ]


class PlanSummaryOutput(serializers.ModelSerializer):
    template = serializers.SlugRelatedField(slug_field="key", read_only=True)

    class Meta:
        model = RolloutPlan
        fields = [
            "id",
            "name",
            "template",
            "status",
            "status_reason",
            "held_reason",
            "timezone",
            "created_at",
        ]


class ReasonInput(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2_000, default="")


class SignOffInput(StrictFieldsMixin, serializers.Serializer):
    role = serializers.ChoiceField(choices=["release_manager", "support"], required=False)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2_000, default="")


class DecideInput(StrictFieldsMixin, serializers.Serializer):
    decision = serializers.ChoiceField(choices=Decision.Kind.values)
    comment = serializers.CharField(required=False, allow_blank=True, max_length=5_000, default="")
    override_reason = serializers.CharField(
        required=False, allow_blank=True, max_length=5_000, default=""
    )


class RollbackInput(StrictFieldsMixin, serializers.Serializer):
    reason = serializers.CharField(max_length=2_000)
    rollback_to = serializers.ChoiceField(
        choices=RollbackTo.choices,
        required=False,
        allow_null=True,
        default=None,
        help_text="Default: the plan's choice. Either way nothing is turned on.",
    )


class ReviewOutput(serializers.ModelSerializer):
    class Meta:
        model = GateReview
        fields = [
            "id",
            "phase",
            "created_at",
            "created_by",
            "passed",
            "results",
            "checklist",
            "signoffs",
        ]


class TokenRefOutput(serializers.Serializer):
    """The API token an action was made with, as recorded then (the token may be gone since);
    null when it was made in the dashboard or the admin."""

    id = serializers.IntegerField(source="token_id", allow_null=True)
    name = serializers.CharField(source="token_name")

    def to_representation(self, instance: Any) -> Any:
        return super().to_representation(instance) if instance.token_name else None


def _token_ref() -> TokenRefOutput:
    return TokenRefOutput(source="*", read_only=True, allow_null=True)


class DecisionOutput(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    token = _token_ref()

    class Meta:
        model = Decision
        fields = [
            "id",
            "phase",
            "review",
            "kind",
            "user",
            "token",
            "comment",
            "override_reason",
            "created_at",
        ]


class SignOffOutput(serializers.ModelSerializer):
    user = serializers.CharField(source="user.username")
    token = _token_ref()

    class Meta:
        model = SignOff
        fields = ["id", "phase", "user", "role", "token", "comment", "created_at"]


class IncidentOutput(serializers.ModelSerializer):
    class Meta:
        model = Incident
        fields = [
            "id",
            "plan",
            "phase",
            "trigger",
            "reason",
            "observed",
            "restored_to",
            "steps",
            "actor_label",
            "created_at",
        ]


class PreviewOutput(serializers.Serializer):
    plan = serializers.IntegerField()
    status = serializers.CharField()
    phase = serializers.CharField(allow_null=True)
    next_step_at = serializers.CharField(allow_null=True)
    blocked_by = serializers.CharField(allow_null=True)
    targets = serializers.ListField(child=serializers.DictField())
    admissions = serializers.ListField(child=serializers.DictField())
    rollback = serializers.ListField(child=serializers.DictField())


class GuardrailInput(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=100, validators=[single_line])
    metric = serializers.CharField(max_length=100, validators=[single_line])
    comparator = serializers.ChoiceField(
        choices=["lt", "lte", "gt", "gte", "eq"],
        help_text="Fails when value <comparator> threshold",
    )
    threshold = serializers.FloatField()
    window = serializers.RegexField(whole(WINDOW_PATTERN), default="5m")
    min_samples = serializers.IntegerField(min_value=0, max_value=MAX_COUNT, default=0)
    failures_to_act = serializers.IntegerField(min_value=1, max_value=MAX_COUNT, default=3)
    action = serializers.ChoiceField(choices=Guardrail.Action.choices)
    trigger = serializers.CharField(
        max_length=40, required=False, allow_blank=True, default="", validators=[single_line]
    )
    rollback_to = serializers.ChoiceField(
        choices=[("", "the plan's choice"), *RollbackTo.choices],
        required=False,
        default="",
        help_text="Rollback guardrails: empty uses the plan's choice (off for data corruption).",
    )
    filters = JsonObjectField(
        child=serializers.CharField(max_length=200, validators=[single_line]),
        required=False,
        default=dict,
        help_text="Label → value (no NUL character).",
    )
    phase = serializers.IntegerField(required=False, allow_null=True, default=None)


class GuardrailOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    metric = serializers.CharField()
    comparator = serializers.CharField()
    threshold = serializers.FloatField()
    window = serializers.CharField()
    min_samples = serializers.IntegerField()
    failures_to_act = serializers.IntegerField()
    action = serializers.CharField()
    trigger = serializers.CharField()
    rollback_to = serializers.CharField()
    filters = serializers.DictField()
    phase = serializers.IntegerField(source="phase_id", allow_null=True)
    enabled = serializers.BooleanField()
    consecutive_failures = serializers.IntegerField()
    last_verdict = serializers.CharField(help_text="The latest decisive check: pass or fail.")
    last_value = serializers.FloatField(allow_null=True)
    last_checked_at = serializers.DateTimeField(allow_null=True)
    last_error = serializers.CharField(
        help_text="Why the latest check could not be computed (its verdict was `error`); empty "
        "when it could."
    )


class FreezeWindowInput(StrictFieldsMixin, serializers.Serializer):
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class FreezeWindowOutput(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    ends_at = serializers.DateTimeField()
    reason = serializers.CharField()
