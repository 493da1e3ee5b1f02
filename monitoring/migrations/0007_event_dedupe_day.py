import datetime as dt

from django.db import migrations, models
from django.db.models import Min
from django.db.models.functions import TruncDate


def fill_day_and_dedupe(apps, schema_editor):
    """Sets each event's UTC day, then keeps the first event per (flag, action, unit, day)."""
    UsageEvent = apps.get_model("monitoring", "UsageEvent")
    UsageEvent.objects.update(day=TruncDate("occurred_at", tzinfo=dt.UTC))
    first = (
        UsageEvent.objects.values("flag", "action", "unit", "day")
        .annotate(first=Min("id"))
        .values("first")
    )
    UsageEvent.objects.exclude(id__in=first).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("monitoring", "0006_heartbeat_stall_alert"),
    ]

    operations = [
        migrations.AddField(
            model_name="usageevent",
            name="day",
            field=models.DateField(null=True),
        ),
        # Forward only: the repeats are gone; going back just drops the column.
        migrations.RunPython(fill_day_and_dedupe, migrations.RunPython.noop),
        migrations.AlterField(
            model_name="usageevent",
            name="day",
            field=models.DateField(help_text="The UTC date of occurred_at: the dedupe key's day."),
        ),
        migrations.AddConstraint(
            model_name="usageevent",
            constraint=models.UniqueConstraint(
                fields=("flag", "action", "unit", "day"), name="event_once_per_unit_day"
            ),
        ),
    ]
