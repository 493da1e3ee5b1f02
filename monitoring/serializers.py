from rest_framework import serializers

from monitoring.models import MetricDefinition


class SampleInput(serializers.Serializer):
    metric = serializers.CharField(max_length=100)
    value = serializers.FloatField()
    timestamp = serializers.DateTimeField(
        required=False, help_text="ISO-8601 or Unix seconds; default now."
    )
    labels = serializers.DictField(child=serializers.CharField(), required=False)


class SamplesInput(serializers.Serializer):
    samples = SampleInput(many=True, help_text="Up to METRICS_MAX_BATCH (10,000) items.")


class EventInput(serializers.Serializer):
    unit = serializers.CharField(max_length=200)
    flag = serializers.CharField(max_length=100)
    action = serializers.CharField(max_length=50, help_text="exposure, use, or a custom action")
    timestamp = serializers.DateTimeField(required=False)


class EventsInput(serializers.Serializer):
    events = EventInput(many=True)


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


class MetricDefinitionInput(serializers.Serializer):
    """Choices are checked by the service so that every error names its field the same way."""

    name = serializers.CharField(max_length=100)
    description = serializers.CharField(required=False, allow_blank=True, max_length=2_000)
    source = serializers.CharField(max_length=50, required=False, default="samples")
    aggregation = serializers.CharField(max_length=10)
    metric = serializers.CharField(max_length=100, required=False, allow_blank=True)
    denominator = serializers.CharField(max_length=100, required=False, allow_blank=True)
    query = serializers.CharField(required=False, allow_blank=True, max_length=5_000)
    filter_labels = serializers.ListField(
        child=serializers.RegexField(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$"), required=False
    )
    min_samples = serializers.IntegerField(min_value=0, required=False)
    unit = serializers.CharField(max_length=20, required=False, allow_blank=True)
