from django.db import migrations


def install(apps, schema_editor):
    from phases.seed_templates import TEMPLATES

    PlanTemplate = apps.get_model("phases", "PlanTemplate")
    for key, (name, definition) in TEMPLATES.items():
        PlanTemplate.objects.get_or_create(
            key=key,
            defaults={
                "name": name,
                "definition": definition,
                "description": definition["description"],
            },
        )


def remove(apps, schema_editor):
    from phases.seed_templates import TEMPLATES

    apps.get_model("phases", "PlanTemplate").objects.filter(key__in=list(TEMPLATES)).delete()


class Migration(migrations.Migration):
    dependencies = [("phases", "0001_initial")]

    operations = [migrations.RunPython(install, remove)]
