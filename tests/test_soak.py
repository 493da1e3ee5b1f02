"""Soak: minutes of mixed load on loopback against real gunicorn, a Celery worker and beat.

Pass criteria (issue 9): 0 errors; 0 lost writes (every accepted sample is in the database
afterwards); the resident memory of every process within 10 % of its size after the first
minute. SOAK_SECONDS (default 300) sets the length."""

import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from flags import services as flag_services
from monitoring.models import MetricSample
from phases import services
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
SECONDS = int(os.environ.get("SOAK_SECONDS", "300"))
WARMUP = min(60, SECONDS // 3)


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _tree(pid: int) -> list[int]:
    children = subprocess.run(
        ["pgrep", "-P", str(pid)], capture_output=True, text=True
    ).stdout.split()
    return [pid, *(int(child) for child in children)]


class Load:
    def __init__(self, base: str, client: str, admin: str, stop: threading.Event) -> None:
        self.base, self.client, self.admin, self.stop = base, client, admin, stop
        self.errors: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()
        self.accepted_samples = 0
        self.lock = threading.Lock()

    def _call(
        self, kind: str, method: str, path: str, body: object, token: str, ok: tuple[int, ...]
    ) -> None:
        request = urllib.request.Request(
            f"{self.base}{path}", json.dumps(body).encode(), method=method
        )
        request.add_header("Content-Type", "application/json")
        request.add_header("Authorization", f"Bearer {token}")
        try:
            with urllib.request.urlopen(request, timeout=15) as response:
                status, payload = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, payload = exc.code, exc.read()
        except OSError as exc:
            status, payload = 0, str(exc).encode()
        with self.lock:
            self.calls[kind] += 1
            if status not in ok:
                self.errors[f"{kind} {status} {payload[:120]!r}"] += 1
            elif kind == "samples":
                self.accepted_samples += json.loads(payload)["accepted"]

    def evaluations(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            context = {"context": {"targetingKey": f"soak-{worker}-{n % 500}"}}
            if n % 2:
                self._call(
                    "ofrep",
                    "POST",
                    "/ofrep/v1/evaluate/flags/soak-ramped",
                    context,
                    self.client,
                    (200,),
                )
            else:
                self._call("bulk", "POST", "/ofrep/v1/evaluate/flags", context, self.client, (200,))

    def samples(self) -> None:
        while not self.stop.is_set():
            batch = [
                {"metric": "requests", "value": 10, "labels": {"flag": "soak-ramped"}}
                for _ in range(150)
            ]
            batch.append({"metric": "errors", "value": 0, "labels": {"flag": "soak-ramped"}})
            # Pushed as automation: client tokens (public) may not push samples.
            self._call(
                "samples", "POST", "/api/v1/metrics/", {"samples": batch}, self.admin, (201,)
            )
            time.sleep(0.2)

    def edits(self) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            body = {"rollout_percentage": n % 100, "reason": "soak"}
            self._call("edit", "PATCH", "/api/v1/flags/soak-edited/", body, self.admin, (200,))
            time.sleep(1)


def test_soak__mixed_load__no_errors_no_lost_writes_flat_memory(tmp_path: Path) -> None:
    flag_services.flag_create(key="soak-edited", actor=SYSTEM)
    flag_services.flag_create(key="soak-ramped", actor=SYSTEM)
    guardrail = {
        "name": "spike",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.5,
        "window": "1m",
        "failures_to_act": 3,
        "action": "rollback",
        "trigger": "error_rate_spike",
    }
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "guardrails": [guardrail],
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}]}
        ],
    }
    plan = services.plan_create(
        name="soak", definition=definition, flags={"f": "soak-ramped"}, actor=SYSTEM, step_hour=0
    )
    services.plan_activate(plan=plan, actor=SYSTEM, now=timezone.now() - timedelta(days=1))
    _, client = api_token_create(name="soak-app", scope="client", actor=Actor.system())
    _, admin = api_token_create(name="soak-admin", scope="admin", actor=Actor.system())
    install_periodic_tasks(app, BEAT_SCHEDULE)
    fast = IntervalSchedule.objects.create(every=2, period=IntervalSchedule.SECONDS)
    PeriodicTask.objects.filter(
        name__in=["advance rollouts", "check guardrails", "admit cohorts"]
    ).update(interval=fast)

    env = child_env(
        CELERY_QUEUE=f"soak-{uuid.uuid4().hex[:8]}",
        CLIENT_RATE_LIMIT="0",
        GUARDRAIL_INTERVAL_SECONDS="2",
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path),
        LOG_LEVEL="WARNING",
    )
    port = free_port()
    web = gunicorn(port)
    worker = celery_worker(loglevel="WARNING", concurrency=1)
    beat = celery_beat(tmp_path / "beat", loglevel="WARNING")
    stop = threading.Event()
    with (
        running(web, env=env, log=tmp_path / "web.log") as server,
        running(worker, env=env, log=tmp_path / "worker.log") as worker_process,
        running(beat, env=env, log=tmp_path / "beat.log") as beat_process,
    ):
        wait_http(f"http://127.0.0.1:{port}/healthz", 60, server)
        load = Load(f"http://127.0.0.1:{port}", client, admin, stop)
        threads = [threading.Thread(target=load.evaluations, args=(n,)) for n in range(3)]
        threads += [threading.Thread(target=load.samples), threading.Thread(target=load.edits)]
        for thread in threads:
            thread.start()
        try:
            time.sleep(WARMUP)
            pids = [*_tree(server.pid), *_tree(worker_process.pid), beat_process.pid]
            baseline = {pid: _rss_kb(pid) for pid in pids}
            time.sleep(SECONDS - WARMUP)
            final = {pid: _rss_kb(pid) for pid in pids}
        finally:
            stop.set()
            for thread in threads:
                thread.join(timeout=30)
    print(f"\nsoak {SECONDS}s: {dict(load.calls)}; RSS kB after warm-up {baseline} -> end {final}")
    assert load.errors == Counter(), load.errors.most_common(5)
    assert load.calls["ofrep"] > 100 and load.calls["samples"] > 10 and load.calls["edit"] > 5
    assert (
        MetricSample.objects.filter(metric__in=["requests", "errors"]).count()
        == load.accepted_samples
    )
    grown = {pid: (baseline[pid], final[pid]) for pid in pids if final[pid] > baseline[pid] * 1.10}
    assert grown == {}, f"processes grew more than 10 % after warm-up: {grown}"
