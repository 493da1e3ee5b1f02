from django.db import migrations


def create_row(apps, schema_editor):
    apps.get_model("core", "ConfigVersion").objects.get_or_create(pk=1, defaults={"version": 0})


def delete_row(apps, schema_editor):
    apps.get_model("core", "ConfigVersion").objects.filter(pk=1).delete()


class Migration(migrations.Migration):
    dependencies = [("core", "0003_config_version")]

    operations = [migrations.RunPython(create_row, delete_row)]
