"""Beat and worker stopped for three days of (faked) time: on resume, one step, not three.
Uses Debian's faketime (libfaketime) so the real processes believe three days have passed."""

import shutil
import time
import uuid
from datetime import timedelta
from pathlib import Path

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
FAKETIME = shutil.which("faketime")


def _run_scheduler(env: dict[str, str], log_dir: Path, prefix: list[str], until: object) -> None:
    worker = [*prefix, *celery_worker()]
    beat = [*prefix, *celery_beat(log_dir / f"beat-{uuid.uuid4().hex[:6]}")]
    with (
        running(worker, env=env, log=log_dir / "worker.log"),
        running(beat, env=env, log=log_dir / "beat.log"),
    ):
        deadline = time.monotonic() + 90
        while not until():
            assert time.monotonic() < deadline, (log_dir / "worker.log").read_text()[-3000:]
            time.sleep(0.5)
        time.sleep(3)  # a few more ticks: they must not step again


@pytest.mark.skipif(
    FAKETIME is None, reason="Debian's faketime is not installed (.ci/run installs it)"
)
def test_three_days_stopped__one_step_on_resume(tmp_path: Path) -> None:
    flag_services.flag_create(key="sleepy", actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}]}
        ],
    }
    plan = services.plan_create(
        name="sleepy", definition=definition, flags={"f": "sleepy"}, actor=SYSTEM, step_hour=0
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now() - timedelta(days=1))
    install_periodic_tasks(app, BEAT_SCHEDULE)
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="advance rollouts").update(interval=every_second)
    PeriodicTask.objects.exclude(name="advance rollouts").update(enabled=False)
    steps = RampStep.objects.filter(target__phase__plan=plan, reason="ramp")
    env = child_env(CELERY_QUEUE=f"sleepy-{uuid.uuid4().hex[:8]}")

    _run_scheduler(env, tmp_path, [], lambda: steps.count() >= 1)
    assert flag_current_bp("sleepy", None) == 2000

    # Everything stopped; three days later (as far as the processes can tell) it starts again.
    _run_scheduler(env, tmp_path, [FAKETIME, "-f", "+3d"], lambda: steps.count() >= 2)
    dates = sorted(steps.values_list("local_date", flat=True))
    assert len(dates) == 2
    assert (dates[1] - dates[0]).days == 3
    assert flag_current_bp("sleepy", None) == 3000
