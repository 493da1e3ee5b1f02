"""The metrics feedback contributes to gates and guardrails. Their provider (source "feedback")
is registered by this app; until it answers, they read as insufficient data."""

from django.db import migrations

DEFINITIONS = [
    ("feedback_open_critical", "Open critical feedback items (blockers)", "count"),
    ("feedback_satisfaction", "Mean rating, 1 to 5", "/5"),
    ("feedback_items_per_day", "Feedback items per day", "/day"),
    ("feedback_answered_in_time", "Share of items answered within the response target", "ratio"),
]


def create(apps, schema_editor):
    Definition = apps.get_model("monitoring", "MetricDefinition")
    for name, description, unit in DEFINITIONS:
        Definition.objects.get_or_create(
            name=name,
            defaults={
                "source": "feedback",
                "aggregation": "value",
                "metric": name,
                "unit": unit,
                "description": description,
                "filter_labels": ["flag", "plan", "phase"],
                "min_samples": 1,
            },
        )


def delete(apps, schema_editor):
    apps.get_model("monitoring", "MetricDefinition").objects.filter(
        name__in=[d[0] for d in DEFINITIONS]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_default_definitions")]

    operations = [migrations.RunPython(create, delete)]
