from django.db import migrations


def add(apps, schema_editor):
    from phases.seed_templates import DEFAULT_GUARDRAILS

    for template in apps.get_model("phases", "PlanTemplate").objects.filter(
        key__in=["feature-release", "tenant-onboarding"]
    ):
        if "guardrails" not in template.definition:
            template.definition["guardrails"] = DEFAULT_GUARDRAILS
            template.save(update_fields=["definition"])


def remove(apps, schema_editor):
    for template in apps.get_model("phases", "PlanTemplate").objects.all():
        template.definition.pop("guardrails", None)
        template.save(update_fields=["definition"])


class Migration(migrations.Migration):
    dependencies = [
        ("phases", "0003_guardrails_degradation"),
        ("monitoring", "0004_data_corruption_definition"),
        ("feedback", "0001_feedback_metric_definitions"),
    ]

    operations = [migrations.RunPython(add, remove)]
