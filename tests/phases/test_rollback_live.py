"""End to end on real processes (gunicorn, a Celery worker, beat firing check_guardrails every
second): ramp 10 → 20 → 30 % with passing guardrails, a breach, and OFREP answers afterwards.

Every unit that was on at the verified safe point (20 %) is still on; every unit the ramp added
since (buckets 2000-2999) is off; a kill switch a person turned on before the breach stays on."""

import json
import threading
import time
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from flags import services as flag_services
from flags.evaluation import bucket
from phases import services
from phases.models import Checkpoint, Incident, RolloutPlan
from rollout_control.celery import app
from rollout_control.core.actors import Actor
from rollout_control.core.services import api_token_create
from rollout_control.schedule import BEAT_SCHEDULE, install_periodic_tasks
from tests.phases.conftest import SYSTEM
from tests.processes import (
    celery_beat,
    celery_worker,
    child_env,
    free_port,
    gunicorn,
    running,
    wait_http,
)

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
UNITS = [f"user-{n}" for n in range(400)]
WINDOW_SECONDS = 6


def _post(url: str, body: object, token: str) -> dict:
    request = urllib.request.Request(
        url,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def _wait(condition: object, seconds: float, log: Path) -> None:
    deadline = time.monotonic() + seconds
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, log.read_text()[-4000:]
        time.sleep(0.2)


def _traffic(base: str, token: str, errors: float) -> None:
    samples = [{"metric": "requests", "value": 100} for _ in range(20)]
    samples.append({"metric": "errors", "value": errors})
    _post(f"{base}/api/v1/metrics/", {"samples": samples}, token)


def test_ramp_breach_rollback__safe_point_units_kept_added_units_off_kill_switch_kept(
    tmp_path: Path,
) -> None:
    flag_services.flag_create(key="reports", actor=SYSTEM)
    flag_services.flag_create(key="export", actor=SYSTEM)
    guardrail = {
        "name": "spike",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": f"{WINDOW_SECONDS}s",
        "failures_to_act": 1,
        "action": "rollback",
        "trigger": "error_rate_spike",
    }
    definition = {
        "flags": ["a", "b"],
        "allowed_weekdays": list(range(7)),
        "step_hour": 0,
        "guardrails": [guardrail],
        "phases": [
            {
                "name": "Open beta",
                "targets": [
                    {"flag": "a", "start": 10, "step": 10, "target": 100},
                    {"flag": "b", "start": 50, "target": 50},
                ],
            }
        ],
    }
    plan = services.plan_create(
        name="live", definition=definition, flags={"a": "reports", "b": "export"}, actor=SYSTEM
    )
    today = datetime.now(UTC)
    services.plan_activate(plan=plan, actor=SYSTEM, now=today - timedelta(days=3))  # 10 %
    _, client = api_token_create(name="app", scope="client", actor=Actor.system())
    _, ingest = api_token_create(name="reporter", scope="ingest", actor=Actor.system())

    install_periodic_tasks(app, BEAT_SCHEDULE)
    every_second = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="check guardrails").update(interval=every_second)
    PeriodicTask.objects.exclude(name="check guardrails").update(enabled=False)
    env = child_env(
        CELERY_QUEUE=f"live-{uuid.uuid4().hex[:8]}",
        GUARDRAIL_INTERVAL_SECONDS="1",
        CLIENT_RATE_LIMIT="0",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "worker.log"
    healthy = threading.Event()

    def keep_healthy() -> None:
        while healthy.is_set():
            _traffic(base, ingest, errors=1)  # 0.05 %
            time.sleep(0.5)

    with (
        running(gunicorn(port), env=env, log=tmp_path / "web.log") as server,
        running(celery_worker(), env=env, log=log),
        running(celery_beat(tmp_path / "beat"), env=env, log=tmp_path / "beat.log"),
    ):
        wait_http(f"{base}/healthz", 60, server)
        healthy.set()
        pusher = threading.Thread(target=keep_healthy, daemon=True)
        pusher.start()
        try:
            services.advance_ramps(now=today - timedelta(days=2))  # 20 %

            def plan_at_20() -> bool:
                return (
                    Checkpoint.objects.filter(plan=plan, verified_at__isnull=False)
                    .filter(config__reports__rollout_percentage=20)
                    .exists()
                )

            _wait(plan_at_20, 60, log)  # passing for a full window: a verified safe point
            services.advance_ramps(now=today - timedelta(days=1))  # 30 %
        finally:
            healthy.clear()
            pusher.join()
        flag_services.flag_set_kill_switch(
            key="export", killed=True, actor=Actor.system("rita"), reason="bad exports"
        )
        assert RolloutPlan.objects.get(pk=plan.pk).status == "paused"  # the person's change
        _traffic(base, ingest, errors=2000)  # a breach, well over 2 % across the window

        def rolled_back() -> bool:
            return RolloutPlan.objects.get(pk=plan.pk).status == RolloutPlan.Status.ROLLED_BACK

        _wait(rolled_back, 30, log)

        ofrep = f"{base}/ofrep/v1/evaluate/flags"
        expected = {unit: bucket("reports", unit) < 2000 for unit in UNITS}

        def answers() -> dict[str, bool]:
            return {
                unit: _post(f"{ofrep}/reports", {"context": {"targetingKey": unit}}, client)[
                    "value"
                ]
                for unit in UNITS
            }

        _wait(lambda: answers() == expected, 10, log)
        assert 0 < sum(expected.values()) < len(UNITS)
        added = [u for u in UNITS if 2000 <= bucket("reports", u) < 3000]
        assert added and not any(answers()[u] for u in added)
        export = _post(f"{ofrep}/export", {"context": {"targetingKey": "user-1"}}, client)
        assert (export["value"], export["reason"]) == (False, "DISABLED")
    incident = Incident.objects.get(plan=plan)
    assert incident.restored_to["kind"] == "safe_point"
    steps = {s["flag"]: s for s in incident.steps if "flag" in s}
    assert steps["reports"]["after"]["rollout_percentage"] == 20
    assert steps["export"]["action"] == "unchanged"  # already off: nothing to take away
