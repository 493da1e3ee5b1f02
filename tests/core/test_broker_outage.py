"""Redis (the broker) stopped under a running worker: when it comes back, the worker reconnects
by itself and tasks run again. Uses a redis-server of its own, never the shared one."""

import time
import uuid
from pathlib import Path

import pytest
from kombu import Connection

from monitoring.models import Heartbeat
from rollout_control.celery import app
from tests.outage import throwaway_redis
from tests.processes import celery_worker, child_env, running

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _send(url: str, queue: str) -> None:
    with Connection(url) as connection:
        app.send_task("monitoring.tasks.heartbeat", queue=queue, connection=connection)


def _wait_for_heartbeat(after: float, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        beat = Heartbeat.objects.filter(component="worker").first()
        if beat is not None and beat.last_seen_at.timestamp() > after:
            return
        time.sleep(0.25)
    raise AssertionError(log.read_text()[-3000:])


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_broker_stopped_and_back__worker_reconnects_and_tasks_run(tmp_path: Path) -> None:
    queue = f"outage-{uuid.uuid4().hex[:8]}"
    with throwaway_redis() as redis:
        env = child_env(CELERY_QUEUE=queue, REDIS_URL=redis.url, CELERY_BROKER_URL=redis.url)
        command = celery_worker()
        log = tmp_path / "worker.log"
        with running(command, env=env, log=log) as worker:
            started = time.time()
            _send(redis.url, queue)
            _wait_for_heartbeat(started, log)
            with redis.outage():
                time.sleep(3)  # the worker notices and starts retrying
                assert worker.poll() is None, "the worker must survive a broker outage"
            back = time.time()
            _send(redis.url, queue)
            _wait_for_heartbeat(back, log)
            assert worker.poll() is None
