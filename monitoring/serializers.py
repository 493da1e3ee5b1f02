from typing import Any

from django.conf import settings
from django.core.validators import MaxLengthValidator
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field
from rest_framework import serializers

from monitoring.models import MetricDefinition
from monitoring.providers import provider_names
from monitoring.services import MAX_LABELS, NAME
from rollout_control.core.serializers import StrictFieldsMixin, whole
from rollout_control.core.validators import single_line

_TIMESTAMP = {
    "oneOf": [
        {"type": "string", "format": "date-time"},
        {"type": "number", "description": "Unix seconds"},
    ],
    "nullable": True,
    "description": "When (absent or null: now): within the raw retention "
    "(METRICS_RAW_RETENTION_DAYS, 7 days by default) and at most 5 minutes ahead of the "
    "server's clock.",
}
_TEXT = {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^\\u0000]*$"}
_UNIT = {"oneOf": [_TEXT, {"type": "integer"}]}


@extend_schema_field(_TIMESTAMP)
class TimestampField(serializers.Field):
    """Documentation only: ingestion is validated by monitoring.services, item by item."""


@extend_schema_field(_UNIT)
class TextOrIntegerField(serializers.Field):
    """Documentation only (see TimestampField)."""


class SampleInput(StrictFieldsMixin, serializers.Serializer):
    metric = serializers.RegexField(whole(NAME.pattern), max_length=100)
    value = serializers.FloatField(
        min_value=-settings.METRICS_MAX_ABS_VALUE,
        max_value=settings.METRICS_MAX_ABS_VALUE,
        help_text="A finite number within ±METRICS_MAX_ABS_VALUE (10^12 by default).",
    )
    timestamp = TimestampField(required=False)
    labels = serializers.DictField(
        child=TextOrIntegerField(),
        required=False,
        allow_null=True,
        validators=[MaxLengthValidator(MAX_LABELS)],
        help_text="Label names are letters, digits and _ (at most 50, starting with a letter "
        "or _); values strings or integers of at most 200 characters.",
    )


class SamplesInput(serializers.Serializer):
    samples = SampleInput(many=True, help_text="Up to METRICS_MAX_BATCH (10,000) items.")


class EventInput(StrictFieldsMixin, serializers.Serializer):
    unit = TextOrIntegerField()
    flag = serializers.RegexField(whole(NAME.pattern), max_length=100)
    action = serializers.RegexField(
        whole(NAME.pattern), max_length=50, help_text="exposure, use, or a custom action"
    )
    timestamp = TimestampField(required=False)


class EventsInput(serializers.Serializer):
    events = EventInput(many=True)


def _batch(name: str, serializer: type[serializers.Serializer], item: type) -> Any:
    """`{"<name>": [...]}` or the bare list (monitoring.api._batch), 1 to METRICS_MAX_BATCH."""
    return PolymorphicProxySerializer(
        component_name=f"{name.title()}Batch",
        serializers=[serializer, item(many=True)],
        resource_type_field_name=None,
        many=False,
    )


SAMPLES_BATCH = _batch("samples", SamplesInput, SampleInput)
EVENTS_BATCH = _batch("events", EventsInput, EventInput)


class AcceptedOutput(serializers.Serializer):
    accepted = serializers.IntegerField()


class MetricDefinitionSerializer(serializers.ModelSerializer):
    class Meta:
        model = MetricDefinition
        fields = [
            "name",
            "description",
            "source",
            "aggregation",
            "metric",
            "denominator",
            "query",
            "filter_labels",
            "min_samples",
            "unit",
        ]


class MetricValueOutput(serializers.Serializer):
    name = serializers.CharField()
    window = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField())
    value = serializers.FloatField(allow_null=True)
    samples = serializers.IntegerField()
    status = serializers.ChoiceField(choices=["ok", "insufficient_data", "error"])
    detail = serializers.CharField()
    at = serializers.DateTimeField()


class SeriesPointOutput(serializers.Serializer):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    value = serializers.FloatField(allow_null=True)
    samples = serializers.IntegerField()
    status = serializers.CharField()


class MetricSeriesOutput(serializers.Serializer):
    name = serializers.CharField()
    window = serializers.CharField()
    step = serializers.CharField()
    filters = serializers.DictField(child=serializers.CharField())
    points = SeriesPointOutput(many=True)


class MetricDefinitionInput(StrictFieldsMixin, serializers.Serializer):
    """The service checks choices too, and the rules across fields (a ratio needs a denominator,
    a samples metric its sample name, a Prometheus one its query), naming the field."""

    name = serializers.RegexField(
        whole(NAME.pattern),
        max_length=100,
        help_text="Letters, digits, _ . : - (at most 100), starting with a letter or _.",
    )
    description = serializers.CharField(required=False, allow_blank=True, max_length=2_000)
    source = serializers.ChoiceField(
        choices=[], required=False, default="samples", help_text="A registered provider."
    )
    aggregation = serializers.ChoiceField(choices=MetricDefinition.Aggregation.choices)
    metric = serializers.CharField(
        max_length=100, required=False, allow_blank=True, validators=[single_line]
    )
    denominator = serializers.CharField(
        max_length=100, required=False, allow_blank=True, validators=[single_line]
    )
    query = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
    filter_labels = serializers.ListField(
        child=serializers.RegexField(whole(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")), required=False
    )
    min_samples = serializers.IntegerField(min_value=0, max_value=1_000_000, required=False)
    unit = serializers.CharField(
        max_length=20, required=False, allow_blank=True, validators=[single_line]
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Providers register at start-up (monitoring's own, feedback's, any other app's).
        self.fields["source"].choices = provider_names()
