"""Celery on the real Redis broker, and the periodic schedule in django-celery-beat's tables."""

import time
import uuid

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from monitoring.models import Heartbeat
from monitoring.selectors import scheduler_status
from monitoring.tasks import heartbeat
from rollout_control.celery import app
from rollout_control.schedule import BEAT_SCHEDULE, install_periodic_tasks
from tests.processes import celery_worker, child_env, running


@pytest.mark.django_db
def test_heartbeat_task__run_directly__records_worker() -> None:
    heartbeat()
    worker = {s.component: s for s in scheduler_status()}["worker"]
    assert worker.last_seen_at is not None
    assert not worker.stalled


@pytest.mark.django_db
def test_install_periodic_tasks__creates_missing__keeps_admin_edits() -> None:
    assert install_periodic_tasks(app, BEAT_SCHEDULE) == list(BEAT_SCHEDULE)
    task = PeriodicTask.objects.get(name="scheduler heartbeat")
    assert task.task == "monitoring.tasks.heartbeat"
    assert task.interval.every == 60
    # An operator slows it down in the admin; a later install (beat restart) must not undo that.
    task.interval = IntervalSchedule.objects.create(every=300, period=IntervalSchedule.SECONDS)
    task.save(update_fields=["interval"])
    assert install_periodic_tasks(app, BEAT_SCHEDULE) == []
    task.refresh_from_db()
    assert task.interval.every == 300


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
# The suite runs services' tasks eagerly; send_task always uses the broker, as meant here.
@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_worker__task_sent_by_name__effect_in_postgres(tmp_path: object) -> None:
    queue = f"test-{uuid.uuid4().hex[:8]}"
    env = child_env(CELERY_QUEUE=queue)
    command = [*celery_worker(), "--queues", queue]
    log = tmp_path / "worker.log"
    with running(command, env=env, log=log) as worker:
        app.send_task("monitoring.tasks.heartbeat", queue=queue)
        deadline = time.monotonic() + 60
        while (
            time.monotonic() < deadline
            and not Heartbeat.objects.filter(component="worker").exists()
        ):
            assert worker.poll() is None, log.read_text()
            time.sleep(0.25)
    assert Heartbeat.objects.filter(component="worker").exists(), log.read_text()
    assert "monitoring.tasks.heartbeat" in log.read_text()
