"""kill -9 of the worker child in the middle of a ramp step and of a rollback: with acks_late and
task_reject_on_worker_lost the task is redelivered, and each change is applied exactly once with
one audit row. The test holds a row lock on the flag so the worker is provably mid-transaction
(waiting inside it) when it is killed."""

import os
import signal
import subprocess
import time
import uuid
from datetime import timedelta

import psycopg
import pytest
from django.utils import timezone

from flags import services as flag_services
from monitoring.services import samples_ingest
from phases import services
from phases.models import Incident, RampStep, RolloutPlan
from phases.services.flagops import flag_current_bp
from rollout_control.celery import app
from rollout_control.core.models import AuditEntry
from tests.phases.conftest import SYSTEM
from tests.processes import celery_worker, child_env, database_url, running

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]


def _plan(key: str, guardrails: list | None = None) -> RolloutPlan:
    flag_services.flag_create(key=key, actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "guardrails": guardrails or [],
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}]}
        ],
    }
    plan = services.plan_create(
        name=key, definition=definition, flags={"f": key}, actor=SYSTEM, step_hour=0
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now() - timedelta(days=1))
    return plan


def _children(pid: int) -> list[int]:
    out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout
    return [int(line) for line in out.split()]


def _wait(what: str, condition: object, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def _kill_mid_change(flag_key: str, task: str, tmp_path: object) -> None:
    """Starts a worker, holds the flag's row lock, sends the task, waits until the worker blocks
    on that lock inside its transaction, kills the worker child, releases the lock."""
    queue = f"killed-{uuid.uuid4().hex[:8]}"
    env = child_env(CELERY_QUEUE=queue)
    command = celery_worker(concurrency=1)
    url = database_url()
    with (
        running(command, env=env, log=tmp_path / "worker.log") as worker,
        psycopg.connect(url) as lock,
    ):
        _wait("worker child started", lambda: _children(worker.pid))
        lock.execute("SELECT id FROM flags_flag WHERE name = %s FOR UPDATE", (flag_key,))
        app.send_task(task, queue=queue)

        def blocked() -> bool:
            with psycopg.connect(url, autocommit=True) as watch:
                row = watch.execute(
                    "SELECT count(*) FROM pg_stat_activity"
                    " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                ).fetchone()
            return row[0] > 0

        _wait("the worker is waiting inside its transaction", blocked)
        victim = _children(worker.pid)[0]
        os.kill(victim, signal.SIGKILL)
        lock.rollback()  # releases the row lock
        log = tmp_path / "worker.log"
        _wait("the task was redelivered and succeeded", lambda: "succeeded" in log.read_text(), 90)


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_worker_killed_mid_ramp_step__applied_once(tmp_path: object) -> None:
    plan = _plan("killed-ramp")
    before = AuditEntry.objects.filter(action="flag.update").count()
    _kill_mid_change("killed-ramp", "phases.tasks.advance_rollouts", tmp_path)
    assert "WorkerLostError" in (tmp_path / "worker.log").read_text()
    assert RampStep.objects.filter(target__phase__plan=plan, reason="ramp").count() == 1
    assert flag_current_bp("killed-ramp", None) == 2000
    assert AuditEntry.objects.filter(action="flag.update").count() == before + 1


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_worker_killed_mid_rollback__applied_once(tmp_path: object) -> None:
    guardrail = {
        "name": "spike",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "5m",
        "failures_to_act": 1,
        "action": "rollback",
        "trigger": "error_rate_spike",
    }
    plan = _plan("killed-rollback", guardrails=[guardrail])
    samples_ingest(
        items=[
            {"metric": "requests", "value": 10, "labels": {"flag": "killed-rollback"}}
            for _ in range(30)
        ]
        + [{"metric": "errors", "value": 100, "labels": {"flag": "killed-rollback"}}]
    )
    _kill_mid_change("killed-rollback", "phases.tasks.check_guardrails", tmp_path)
    plan.refresh_from_db()
    assert plan.status == "rolled_back"
    assert Incident.objects.filter(plan=plan).count() == 1
    assert AuditEntry.objects.filter(action="plan.rollback").count() == 1
    assert (
        AuditEntry.objects.filter(action="flag.lower", reason__startswith="rollback").count() == 1
    )
