"""Exactly once through the real scheduling path: beat (django-celery-beat's database scheduler)
firing advance_rollouts every second at a real worker on the Redis broker -> one step today."""

import time
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from flags import services as flag_services
from phases import services
from phases.models import RampStep
from phases.services.flagops import flag_current_bp
from rollout_control.celery import app
from rollout_control.schedule import BEAT_SCHEDULE, install_periodic_tasks
from tests.phases.conftest import SYSTEM
from tests.processes import celery_beat, celery_worker, child_env, running

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def test_beat_and_worker__many_ticks__one_step_per_day(tmp_path: object) -> None:
    flag_services.flag_create(key="beat-ramped", actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 90}]}
        ],
    }
    plan = services.plan_create(
        name="beat", definition=definition, flags={"f": "beat-ramped"}, actor=SYSTEM, step_hour=0
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now() - timedelta(days=1))
    assert flag_current_bp("beat-ramped", None) == 1000

    install_periodic_tasks(app, BEAT_SCHEDULE)
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="advance rollouts").update(interval=every_second)
    PeriodicTask.objects.exclude(name="advance rollouts").update(enabled=False)

    env = child_env(CELERY_QUEUE=f"beat-{uuid.uuid4().hex[:8]}")
    worker = celery_worker()
    beat = celery_beat(tmp_path / "beat-state")
    with (
        running(worker, env=env, log=tmp_path / "worker.log"),
        running(beat, env=env, log=tmp_path / "beat.log"),
    ):
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and (tmp_path / "worker.log").read_text().count("succeeded") < 6
        ):
            time.sleep(0.5)
    runs = (tmp_path / "worker.log").read_text().count("phases.tasks.advance_rollouts") // 2
    assert runs >= 5, (tmp_path / "beat.log").read_text()[-2000:]
    assert RampStep.objects.filter(target__phase__plan=plan, reason="ramp").count() == 1
    assert flag_current_bp("beat-ramped", None) == 2000
    # The interval edited "in the admin" survived beat's start-up install.
    assert PeriodicTask.objects.get(name="advance rollouts").interval.every == 1
