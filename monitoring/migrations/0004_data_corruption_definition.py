from django.db import migrations


def create(apps, schema_editor):
    apps.get_model("monitoring", "MetricDefinition").objects.get_or_create(
        name="data_corruption",
        defaults={
            "source": "samples",
            "aggregation": "sum",
            "metric": "data_corruption",
            "min_samples": 0,
            "unit": "",
            "filter_labels": ["flag", "plan", "phase", "cohort"],
            "description": "Data corruption detections reported by clients (any is too many).",
        },
    )


def delete(apps, schema_editor):
    apps.get_model("monitoring", "MetricDefinition").objects.filter(name="data_corruption").delete()


class Migration(migrations.Migration):
    dependencies = [("monitoring", "0003_default_definitions")]

    operations = [migrations.RunPython(create, delete)]
