import os

from celery import Celery
from celery.signals import worker_init

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rollout_control.settings")

app = Celery("rollout_control")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _load_schedule(sender: Celery, **kwargs: object) -> None:
    # The periodic schedule is defined once, in rollout_control/schedule.py.
    from rollout_control.schedule import BEAT_SCHEDULE

    sender.conf.beat_schedule = BEAT_SCHEDULE


@worker_init.connect
def _task_statement_timeout(**kwargs: object) -> None:
    # Tasks (rollups, pruning, guardrail windows) may run statements longer than a web request
    # should wait; the lock timeout stays, so a held row lock still fails a task in seconds.
    from django.conf import settings
    from django.db import connections

    from rollout_control.settings import postgres_timeouts

    options = settings.DATABASES["default"].get("OPTIONS", {})
    if "options" in options:
        options["options"] = postgres_timeouts(
            settings.DATABASE_LOCK_TIMEOUT, settings.DATABASE_TASK_STATEMENT_TIMEOUT
        )
        connections.close_all()
