"""Helpers for tests that start real processes (gunicorn, celery, the quickstart)."""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def database_url() -> str:
    """The URL of the database pytest-django created, so a child process sees the test's rows."""
    s = connection.settings_dict
    return f"postgres://{s['USER']}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def child_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        DJANGO_SETTINGS_MODULE="tests.settings",
        ROLLOUT_MODE="development",
        DATABASE_URL=database_url(),
        # A child is a real deployment in miniature: background snapshot polling, real queues.
        SNAPSHOT_POLLER_THREAD="true",
        CELERY_TASK_ALWAYS_EAGER="false",
        PYTHONPATH=str(ROOT),
    )
    env.update(overrides)
    return env


def gunicorn(port: int) -> list[str]:
    """The web command as deployed (our gunicorn config), bound to a loopback port."""
    return [
        str(BIN / "gunicorn"),
        "rollout_control.wsgi",
        "-c",
        "python:rollout_control.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
    ]


def celery_worker(*, loglevel: str = "INFO", concurrency: int | None = None) -> list[str]:
    """A worker command: the solo pool (one task at a time, in the main process) unless a
    concurrency asks for the prefork pool, whose child a test can kill."""
    pool = ["--pool", "solo"] if concurrency is None else ["--concurrency", str(concurrency)]
    return [
        *_celery("worker"),
        *pool,
        "--without-mingle",
        "--without-gossip",
        "--loglevel",
        loglevel,
    ]


def celery_beat(schedule: Path, *, loglevel: str = "INFO") -> list[str]:
    """A beat command keeping its local state in ``schedule`` (the schedule itself is in the
    database: django-celery-beat)."""
    return [*_celery("beat"), "--loglevel", loglevel, "--schedule", str(schedule)]


def _celery(program: str) -> list[str]:
    return [str(BIN / "celery"), "-A", "rollout_control", program]


def wait_http(url: str, timeout: float, process: subprocess.Popen | None = None) -> int:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code
        except OSError as exc:
            last = exc
            time.sleep(0.3)
    raise TimeoutError(f"{url} did not answer within {timeout}s: {last}")


@contextlib.contextmanager
def running(
    command: list[str], *, env: dict[str, str], cwd: Path = ROOT, log: Path | None = None
) -> Iterator[subprocess.Popen]:
    """Runs a command in its own process group and stops the whole group afterwards."""
    out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        yield process
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        if log:
            out.close()
