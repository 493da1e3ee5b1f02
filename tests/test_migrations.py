"""Migrations run forwards and backwards on PostgreSQL (a database of their own)."""

import os
import subprocess
import sys
import uuid

import psycopg
import pytest

from tests.processes import ROOT

APPS_NEWEST_FIRST = ["feedback", "phases", "monitoring", "flags", "waffle", "core"]


def _manage(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env |= {"DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": url}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_migrations__forwards_backwards_forwards() -> None:
    base = os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/rollout_control")
    name = f"rc_migrations_{uuid.uuid4().hex[:8]}"
    admin_url = base.rsplit("/", 1)[0] + "/postgres"
    url = base.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        forward = _manage(url, "migrate", "--no-input")
        assert forward.returncode == 0, forward.stderr
        for app in APPS_NEWEST_FIRST:
            backward = _manage(url, "migrate", app, "zero", "--no-input")
            assert backward.returncode == 0, f"{app}: {backward.stderr[-2000:]}"
        again = _manage(url, "migrate", "--no-input")
        assert again.returncode == 0, again.stderr
        check = _manage(url, "makemigrations", "--check", "--dry-run")
        assert check.returncode == 0, check.stdout
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
