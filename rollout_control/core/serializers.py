import re
from typing import Any

from django.contrib.auth import get_user_model
from django.utils import timezone
from drf_spectacular.extensions import OpenApiSerializerExtension
from drf_spectacular.plumbing import force_instance
from rest_framework import serializers

from rollout_control.core.models import ApiToken
from rollout_control.core.validators import single_line


def whole(pattern: str) -> re.Pattern[str]:
    """`pattern` matching the whole value. Python's `$` also matches before a final newline, so
    "key\\n" would pass a `^...$` validator (and then fail the database's own check, or be stored);
    the schema shows `\\Z` as ECMA's `$`, which means the same as here."""
    return re.compile(pattern.removesuffix("$") + r"\Z")


def _json_type_problem(field: serializers.Field, value: Any) -> Any:
    """What is wrong with the JSON type of `value` for `field` (a message, or per item/key a dict
    of messages), or None. DRF coerces (0 becomes "0", "5" becomes 5, "yes" becomes True); the
    schema promises JSON types, so a string where a number belongs is an error, not a guess."""
    if value is None:
        return None  # allow_null decides, with DRF's own message
    if isinstance(field, serializers.BooleanField):
        return None if isinstance(value, bool) else "Must be true or false."
    if isinstance(field, serializers.IntegerField):
        whole = isinstance(value, int) and not isinstance(value, bool)
        return None if whole else "Must be a whole number."
    if isinstance(field, serializers.FloatField | serializers.DecimalField):
        number = isinstance(value, int | float) and not isinstance(value, bool)
        return None if number else "Must be a number."
    if isinstance(field, serializers.ChoiceField):
        if all(isinstance(choice, str) for choice in field.choices):
            return None if isinstance(value, str) else "Must be a string."
        return None
    textual = serializers.CharField | serializers.DateField | serializers.DateTimeField
    if isinstance(field, textual | serializers.SlugRelatedField):
        return None if isinstance(value, str) else "Must be a string."
    if isinstance(field, serializers.ListField) and isinstance(value, list):
        items = {i: _json_type_problem(field.child, item) for i, item in enumerate(value)}
        return {i: [problem] for i, problem in items.items() if problem} or None
    if isinstance(field, serializers.DictField) and isinstance(value, dict):
        items = {key: _json_type_problem(field.child, item) for key, item in value.items()}
        return {key: [problem] for key, problem in items.items() if problem} or None
    return None


# Django and DRF refuse NUL characters in text (PostgreSQL cannot store them): the schema says so.
NO_NUL = "^[^\\u0000]*$"


def _literal(field: serializers.Field) -> None:
    """Text is taken as sent: DRF trims it by default, so "  " would fail a non-blank field that
    the schema (minLength 1) accepts, and what is stored would differ from what was sent."""
    if isinstance(field, serializers.CharField):
        field.trim_whitespace = False
    elif isinstance(field, serializers.ListField | serializers.DictField):
        _literal(field.child)


def _document_text(field: serializers.Field, schema: dict[str, Any]) -> None:
    if isinstance(field, serializers.CharField) and schema.get("type") == "string":
        if not {"pattern", "format", "enum"} & set(schema):
            schema["pattern"] = NO_NUL
    elif isinstance(field, serializers.ListField) and isinstance(schema.get("items"), dict):
        _document_text(field.child, schema["items"])
    elif isinstance(field, serializers.DictField) and isinstance(
        schema.get("additionalProperties"), dict
    ):
        _document_text(field.child, schema["additionalProperties"])


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(key) or _has_nul(item) for key, item in value.items())
    if isinstance(value, list):
        return any(_has_nul(item) for item in value)
    return False


class JsonObjectField(serializers.DictField):
    """A JSON object kept as sent (PostgreSQL jsonb), so no NUL character in any key or text."""

    default_error_messages = {"nul": "No NUL character, in keys or values."}

    def to_internal_value(self, data: Any) -> dict[str, Any]:
        if _has_nul(data):
            self.fail("nul")
        return super().to_internal_value(data)


class StrictFieldsMixin:
    # Input as the schema documents it: an unknown field is an error, not silently ignored (a typo
    # must not look like success); each value has its field's JSON type; text is taken as sent.

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()  # type: ignore[misc]
        for field in fields.values():
            _literal(field)
        return fields

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, dict):
            fields = self.fields  # type: ignore[attr-defined]
            unknown = sorted(set(data) - set(fields))
            errors: dict[str, Any] = {name: ["Unknown field."] for name in unknown}
            for name, field in fields.items():
                if name in data and not field.read_only:
                    problem = _json_type_problem(field, data[name])
                    if problem:
                        errors[name] = [problem] if isinstance(problem, str) else problem
            if errors:
                raise serializers.ValidationError(errors)
        return super().to_internal_value(data)  # type: ignore[misc]


class StrictFieldsScheme(OpenApiSerializerExtension):
    """Documents StrictFieldsMixin: `additionalProperties: false`, and no NUL in text."""

    target_class = StrictFieldsMixin
    match_subclasses = True

    def map_serializer(self, auto_schema: Any, direction: Any) -> dict[str, Any]:
        schema = auto_schema._map_serializer(self.target, direction, bypass_extensions=True)
        properties = schema.get("properties", {})
        for name, field in force_instance(self.target).fields.items():
            if name in properties:
                _document_text(field, properties[name])
        return {**schema, "additionalProperties": False}


class ApiTokenOutput(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(slug_field="username", read_only=True, allow_null=True)

    class Meta:
        model = ApiToken
        fields = [
            "id",
            "name",
            "scope",
            "prefix",
            "user",
            "created_at",
            "expires_at",
            "revoked_at",
            "last_used_at",
        ]
        read_only_fields = fields


class ApiTokenCreateInput(StrictFieldsMixin, serializers.Serializer):
    name = serializers.CharField(max_length=100, validators=[single_line])
    scope = serializers.ChoiceField(choices=ApiToken.Scope.choices)
    user = serializers.SlugRelatedField(
        slug_field="username",
        queryset=get_user_model().objects.filter(is_active=True),
        required=False,
        allow_null=True,
    )
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate_expires_at(self, value: object) -> object:
        if value is not None and value <= timezone.now():
            raise serializers.ValidationError("Must be in the future.")
        return value


class ApiTokenCreatedOutput(ApiTokenOutput):
    token = serializers.CharField(help_text="The secret. Shown once; only its SHA-256 is stored.")

    class Meta(ApiTokenOutput.Meta):
        fields = [*ApiTokenOutput.Meta.fields, "token"]
        read_only_fields = fields


class WhoAmIOutput(serializers.Serializer):
    kind = serializers.ChoiceField(choices=["token", "user"])
    name = serializers.CharField()
    scope = serializers.CharField(allow_null=True)
    user = serializers.CharField(allow_null=True)
    roles = serializers.ListField(child=serializers.CharField())
