"""The daily advance fired from two processes at once, 50 rounds: exactly one step per target
per day, and no error escapes either process."""

import subprocess
import sys
import uuid
from datetime import UTC, datetime

import pytest

from flags import services as flag_services
from phases import services
from phases.models import RampStep
from phases.services.flagops import flag_current_bp
from rollout_control.core.models import AuditEntry
from tests.phases.conftest import SYSTEM
from tests.processes import ROOT, child_env

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
START = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
ROUNDS = 50


def test_two_scheduler_processes__50_rounds__one_step_per_target_per_day() -> None:
    for key in ("a", "b"):
        flag_services.flag_create(key=f"twin-{key}", actor=SYSTEM)
    definition = {
        "flags": ["a", "b"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {
                "name": "Ramp",
                "targets": [
                    {"flag": "a", "start": 0, "step": 1, "target": 100},
                    {"flag": "b", "start": 0, "step": 0.5, "target": 100},
                ],
            }
        ],
    }
    plan = services.plan_create(
        name="twins", definition=definition, flags={"a": "twin-a", "b": "twin-b"}, actor=SYSTEM
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    barrier = f"two-schedulers-{uuid.uuid4().hex}"
    command = [
        sys.executable,
        "-m",
        "tests.phases.two_schedulers",
        START.isoformat(),
        str(ROUNDS),
        barrier,
    ]
    env = child_env(DJANGO_SETTINGS_MODULE="tests.settings")
    processes = [
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=300) for process in processes]
    for process, (out, err) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, err[-3000:]
        assert "Traceback" not in err
        assert out.strip() == "done"
    steps = RampStep.objects.filter(reason="ramp")
    assert steps.count() == 2 * ROUNDS
    for target in plan.phases.get().targets.all():
        dates = list(steps.filter(target=target).values_list("local_date", flat=True))
        assert len(dates) == len(set(dates)) == ROUNDS
    assert flag_current_bp("twin-a", None) == ROUNDS * 100
    assert flag_current_bp("twin-b", None) == ROUNDS * 50
    assert (
        AuditEntry.objects.filter(action="flag.update", reason__contains="daily ramp").count()
        == 2 * ROUNDS
    )
