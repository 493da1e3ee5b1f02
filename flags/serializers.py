from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from flags.evaluation import OPERATORS
from flags.models import KEY_PATTERN, Flag
from flags.services import CohortRuleInput
from rollout_control.core.conditional import VERSION_HELP
from rollout_control.core.serializers import NO_NUL, StrictFieldsMixin, whole
from rollout_control.core.validators import CONTROL_CHARACTERS, SINGLE_LINE_PATTERN, single_line

ATTRIBUTE_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,99}$"
KEY_HELP = "Use 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit."


@extend_schema_field({"type": "number", "minimum": 0, "maximum": 100, "multipleOf": 0.01})
class PercentageField(serializers.DecimalField):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__(max_digits=5, decimal_places=2, min_value=0, max_value=100, **kwargs)

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "minLength": 1, "maxLength": 200, "pattern": SINGLE_LINE_PATTERN},
            {"type": "integer"},
        ]
    }
)
class UnitField(serializers.Field):
    """A unit id: a non-empty string or an integer, stored as a string."""

    default_error_messages = {
        "invalid": "Must be a non-empty string (no control character) or an integer (at most "
        "200 characters)."
    }

    def to_internal_value(self, data: Any) -> str:
        if (
            isinstance(data, bool)
            or not isinstance(data, str | int)
            or not str(data)
            or len(str(data)) > 200
            or CONTROL_CHARACTERS.search(str(data))
        ):
            self.fail("invalid")
        return str(data)

    def to_representation(self, value: str) -> str:
        return value


class CohortRuleSerializer(StrictFieldsMixin, serializers.Serializer):
    cohort = serializers.RegexField(whole(KEY_PATTERN))
    percentage = PercentageField()

    def to_internal_value(self, data: Any) -> CohortRuleInput:
        values = super().to_internal_value(data)
        return CohortRuleInput(cohort=values["cohort"], percentage=values["percentage"])


class FlagFieldsInput(StrictFieldsMixin, serializers.Serializer):
    """The settable fields of a flag, shared by create and change."""

    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    owner = serializers.CharField(
        required=False, allow_blank=True, max_length=150, validators=[single_line]
    )
    rollout_percentage = PercentageField(required=False)
    stickiness = serializers.RegexField(whole(ATTRIBUTE_PATTERN), required=False)
    salt = serializers.CharField(required=False, allow_blank=True, max_length=100)
    kill_switch = serializers.BooleanField(required=False)
    forced_on = serializers.BooleanField(required=False)
    tier = serializers.ChoiceField(choices=Flag.Tier.choices, required=False)
    cohort_rules = CohortRuleSerializer(many=True, required=False)
    excluded_units = serializers.ListField(child=UnitField(), required=False, max_length=10_000)
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2_000)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("kill_switch") and attrs.get("forced_on"):
            raise serializers.ValidationError(
                {"forced_on": ["A flag cannot be killed and forced on at once."]}
            )
        return attrs


class FlagChangeInput(FlagFieldsInput):
    version = serializers.IntegerField(min_value=1, required=False, help_text=VERSION_HELP)


class FlagCreateInput(FlagFieldsInput):
    key = serializers.RegexField(
        whole(KEY_PATTERN),
        error_messages={"invalid": KEY_HELP},
    )


class CohortRuleOutput(serializers.Serializer):
    cohort = serializers.CharField()
    percentage = serializers.FloatField()


class FlagOutput(serializers.Serializer):
    """The shape of `flags.services.flag_state` (documented for the schema)."""

    key = serializers.CharField()
    description = serializers.CharField()
    owner = serializers.CharField()
    rollout_percentage = serializers.FloatField()
    stickiness = serializers.CharField()
    salt = serializers.CharField()
    kill_switch = serializers.BooleanField()
    forced_on = serializers.BooleanField()
    tier = serializers.ChoiceField(choices=Flag.Tier.choices)
    cohort_rules = CohortRuleOutput(many=True)
    excluded_units = serializers.ListField(child=serializers.CharField())
    archived = serializers.BooleanField()
    version = serializers.IntegerField()


@extend_schema_field({"oneOf": [{"type": "string", "pattern": NO_NUL}, {"type": "number"}]})
class ScalarField(serializers.Field):
    """A string or a number: what a rule compares a context attribute with."""

    default_error_messages = {"invalid": "Must be a string or a number."}

    def to_internal_value(self, data: Any) -> str | int | float:
        if isinstance(data, bool) or not isinstance(data, str | int | float):
            self.fail("invalid")
        if isinstance(data, str) and "\x00" in data:
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class ConditionSerializer(StrictFieldsMixin, serializers.Serializer):
    attribute = serializers.CharField(max_length=100, validators=[single_line])
    operator = serializers.ChoiceField(choices=sorted(OPERATORS))
    values = serializers.ListField(
        child=ScalarField(),
        min_length=1,
        max_length=10_000,
        help_text="The first value must suit the operator: a number for gt/gte/lt/lte, a "
        "semantic version for semver_gt/semver_lt, an ISO-8601 time for before/after.",
    )


class CohortChangeInput(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(required=False, max_length=200, validators=[single_line])
    description = serializers.CharField(required=False, allow_blank=True, max_length=10_000)
    match_attribute = serializers.RegexField(whole(ATTRIBUTE_PATTERN), required=False)
    rules = ConditionSerializer(many=True, required=False)
    opt_in = serializers.BooleanField(required=False)
    contacts = serializers.ListField(
        child=serializers.EmailField(), required=False, max_length=1_000
    )
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2_000)
    version = serializers.IntegerField(min_value=1, required=False, help_text=VERSION_HELP)


class CohortCreateInput(CohortChangeInput):
    key = serializers.RegexField(whole(KEY_PATTERN))
    version = None  # a new cohort starts at 1


class CohortOutput(serializers.Serializer):
    key = serializers.CharField()
    name = serializers.CharField()
    description = serializers.CharField()
    match_attribute = serializers.CharField()
    rules = ConditionSerializer(many=True)
    opt_in = serializers.BooleanField()
    contacts = serializers.ListField(child=serializers.EmailField())
    member_count = serializers.IntegerField()
    opt_in_count = serializers.IntegerField()
    version = serializers.IntegerField()


MAX_UNITS_PER_REQUEST = 100_000


class MembersInput(StrictFieldsMixin, serializers.Serializer):
    units = serializers.ListField(child=UnitField(), min_length=1, max_length=MAX_UNITS_PER_REQUEST)


class MembersOutput(serializers.Serializer):
    changed = serializers.IntegerField(
        help_text="Units actually added or removed (others already were)."
    )
    member_count = serializers.IntegerField()


class OptInInput(StrictFieldsMixin, serializers.Serializer):
    unit = UnitField()


class OptInOutput(serializers.Serializer):
    cohort = serializers.CharField()
    unit = serializers.CharField()
    opted_in = serializers.BooleanField()
    changed = serializers.BooleanField()


class EvaluateInput(StrictFieldsMixin, serializers.Serializer):
    context = serializers.DictField(required=False, default=dict)


class EvaluationOutput(serializers.Serializer):
    key = serializers.CharField()
    value = serializers.BooleanField()
    variant = serializers.CharField()
    reason = serializers.CharField()
    error_code = serializers.CharField(allow_null=True)
    error_details = serializers.CharField(allow_null=True)
    metadata = serializers.DictField()


class EvaluateOutput(serializers.Serializer):
    flags = EvaluationOutput(many=True)
    config_version = serializers.IntegerField()
    snapshot_age_seconds = serializers.FloatField()
