"""The whole automatic path on real processes: a breaching batch pushed to gunicorn, beat firing
check_guardrails at a Celery worker, the rollback, and every gunicorn worker answering the
rolled-back value over OFREP. Prints the time it took; the design budget is one guardrail
interval plus one second."""

import json
import time
import urllib.request
import uuid
from datetime import timedelta

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from flags import services as flag_services
from phases import services
from phases.models import Incident, RolloutPlan
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
INTERVAL = 1


def _post(url: str, body: object, token: str) -> dict:
    request = urllib.request.Request(
        url,
        json.dumps(body).encode(),
        {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read() or b"{}")


def test_breach_to_rolled_back_answer__within_interval_plus_one_second(tmp_path: object) -> None:
    flag_services.flag_create(key="latency-flag", actor=SYSTEM)
    guardrail = {
        "name": "spike",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "1m",
        "failures_to_act": 1,
        "action": "rollback",
        "trigger": "error_rate_spike",
    }
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "guardrails": [guardrail],
        "rollback_to": "off",
        "phases": [
            {
                "name": "Open beta",
                "targets": [{"flag": "f", "start": 20, "step": 10, "target": 100}],
            }
        ],
    }
    plan = services.plan_create(
        name="latency", definition=definition, flags={"f": "latency-flag"}, actor=SYSTEM
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now() - timedelta(days=1))
    # The plan rolls back to off: the answer to wait for is the kill switch (DISABLED).
    _, token = api_token_create(name="app", scope="client", actor=Actor.system())
    _, reporter = api_token_create(name="reporter", scope="ingest", actor=Actor.system())

    install_periodic_tasks(app, BEAT_SCHEDULE)
    fast = IntervalSchedule.objects.create(every=INTERVAL, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(name="check guardrails").update(interval=fast)
    PeriodicTask.objects.exclude(name="check guardrails").update(enabled=False)

    env = child_env(
        CELERY_QUEUE=f"latency-{uuid.uuid4().hex[:8]}",
        GUARDRAIL_INTERVAL_SECONDS=str(INTERVAL),
        CLIENT_RATE_LIMIT="0",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
    )
    port = free_port()
    web = gunicorn(port)
    worker = celery_worker()
    beat = celery_beat(tmp_path / "b")
    base = f"http://127.0.0.1:{port}"
    with (
        running(web, env=env, log=tmp_path / "web.log") as server,
        running(worker, env=env, log=tmp_path / "worker.log"),
        running(beat, env=env, log=tmp_path / "beat.log"),
    ):
        wait_http(f"{base}/healthz", 60, server)
        ofrep = f"{base}/ofrep/v1/evaluate/flags/latency-flag"
        deadline = time.monotonic() + 30
        while _post(ofrep, {"context": {"targetingKey": "u"}}, token)["reason"] != "SPLIT":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        batch = [
            {"metric": "requests", "value": 100, "labels": {"flag": "latency-flag"}}
            for _ in range(25)
        ]
        batch.append({"metric": "errors", "value": 500, "labels": {"flag": "latency-flag"}})
        started = time.monotonic()
        _post(f"{base}/api/v1/metrics/", {"samples": batch}, reporter)
        deadline = started + 30
        while True:
            answers = {
                _post(ofrep, {"context": {"targetingKey": f"u{n}"}}, token)["reason"]
                for n in range(6)
            }
            if answers == {"DISABLED"}:
                break
            assert time.monotonic() < deadline, (tmp_path / "worker.log").read_text()[-3000:]
            time.sleep(0.05)
        elapsed = time.monotonic() - started
    print(
        f"\nbreaching batch -> OFREP answers rolled back: {elapsed:.2f} s (interval {INTERVAL} s)"
    )
    assert RolloutPlan.objects.get(pk=plan.pk).status == "rolled_back"
    assert Incident.objects.get().trigger == "error_rate_spike"
    assert elapsed < INTERVAL + 1 + 2  # the budget, plus scheduling slack on a busy 2-core machine
