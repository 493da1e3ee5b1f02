"""The metrics the seed plans gate and guard on (error rate, latency, adoption, load)."""

from django.db import migrations

LABELS = ["flag", "plan", "phase", "cohort"]
DEFINITIONS = [
    # name, aggregation, metric, denominator, min_samples, unit, description
    (
        "error_rate",
        "ratio",
        "errors",
        "requests",
        20,
        "ratio",
        "errors / requests (0.005 = 0.5 %). Push both as counts.",
    ),
    ("latency_p95", "p95", "latency_ms", "", 20, "ms", "95th percentile response time."),
    ("latency_p99", "p99", "latency_ms", "", 20, "ms", "99th percentile response time."),
    ("latency_mean", "mean", "latency_ms", "", 20, "ms", "Mean response time."),
    ("request_rate", "rate", "requests", "", 1, "/min", "Requests per minute."),
    ("failed_logins_rate", "rate", "failed_logins", "", 1, "/min", "Failed logins per minute."),
    ("job_failures", "sum", "job_failures", "", 1, "", "Background job failures."),
    ("stress", "mean", "stress", "", 1, "0-1", "System stress level (drives degradation)."),
]


def create(apps, schema_editor):
    Definition = apps.get_model("monitoring", "MetricDefinition")
    for name, aggregation, metric, denominator, min_samples, unit, description in DEFINITIONS:
        Definition.objects.get_or_create(
            name=name,
            defaults={
                "aggregation": aggregation,
                "metric": metric,
                "denominator": denominator,
                "min_samples": min_samples,
                "unit": unit,
                "description": description,
                "source": "samples",
                "filter_labels": LABELS,
            },
        )
    Definition.objects.get_or_create(
        name="adoption",
        defaults={
            "aggregation": "adoption",
            "source": "events",
            "min_samples": 10,
            "unit": "ratio",
            "filter_labels": ["flag"],
            "description": "Share of units exposed to the flag that also used the feature.",
        },
    )


def delete(apps, schema_editor):
    names = [row[0] for row in DEFINITIONS] + ["adoption"]
    apps.get_model("monitoring", "MetricDefinition").objects.filter(name__in=names).delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0002_samples_events_definitions")]

    operations = [migrations.RunPython(create, delete)]
