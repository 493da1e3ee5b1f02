"""The periodic schedule, defined once. Beat's database scheduler installs missing entries at
start-up (and `manage.py install_schedule` does so without beat), after which they are edited in
the admin (Periodic tasks): an edit there survives restarts.
"""

from celery import Celery

HEARTBEAT_INTERVAL_SECONDS = 60.0

BEAT_SCHEDULE: dict[str, dict[str, object]] = {
    "scheduler heartbeat": {
        "task": "monitoring.tasks.heartbeat",
        "schedule": HEARTBEAT_INTERVAL_SECONDS,
        "options": {"expires": HEARTBEAT_INTERVAL_SECONDS},
    },
    "check guardrails": {
        "task": "phases.tasks.check_guardrails",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
    "advance rollouts": {
        "task": "phases.tasks.advance_rollouts",
        "schedule": 900.0,
        "options": {"expires": 900.0},
    },
    "admit cohorts": {
        "task": "phases.tasks.admit_cohorts",
        "schedule": 900.0,
        "options": {"expires": 900.0},
    },
    "compact metric samples": {
        "task": "monitoring.tasks.compact",
        "schedule": 3600.0,
        "options": {"expires": 3600.0},
    },
    "drain outbox": {
        # E-mails and webhooks whose push to the broker failed (rollout_control/core/outbox.py).
        "task": "core.tasks.outbox_drain",
        "schedule": 30.0,
        "options": {"expires": 30.0},
    },
    "mark overdue feedback": {
        "task": "feedback.tasks.mark_overdue",
        "schedule": 300.0,
        "options": {"expires": 300.0},
    },
    "send feedback alert digests": {
        "task": "feedback.tasks.send_alert_digests",
        "schedule": 60.0,
        "options": {"expires": 60.0},
    },
}


def install_periodic_tasks(app: Celery, schedule: dict[str, dict[str, object]]) -> list[str]:
    """Creates the entries the database lacks and leaves existing (maybe edited) ones alone.
    Each one created is audited, as an edit in the admin is."""
    from django.db import transaction
    from django_celery_beat.models import PeriodicTask
    from django_celery_beat.schedulers import ModelEntry

    from rollout_control.core.actors import Actor
    from rollout_control.core.services import periodic_task_record

    existing = set(PeriodicTask.objects.filter(name__in=schedule).values_list("name", flat=True))
    created = []
    for name, entry in schedule.items():
        if name not in existing:
            with transaction.atomic():
                task = ModelEntry.from_entry(name, app=app, **entry).model
                periodic_task_record(task=task, actor=Actor.system("install_schedule"), before=None)
            created.append(name)
    return created
