import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rollout_control.settings")

app = Celery("rollout_control")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _load_schedule(sender: Celery, **kwargs: object) -> None:
    # The periodic schedule is defined once, in rollout_control/schedule.py.
    from rollout_control.schedule import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE
