"""Production mode: refuses to start without its secrets, and passes Django's deploy checks."""

import os
import subprocess
import sys

from tests.processes import ROOT

PRODUCTION = {
    "SECRET_KEY": "x" * 20 + "-production-secret-that-is-long-and-random-4f9a8b7c6d5e",
    "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/rollout_control",
    "REDIS_URL": "redis://127.0.0.1:6379/1",
    "ALLOWED_HOSTS": "rollouts.example.com",
}


def _manage(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {
            "ROLLOUT_MODE",
            "SECRET_KEY",
            "DATABASE_URL",
            "DJANGO_SETTINGS_MODULE",
            "DEBUG",
            "DJANGO_ALLOW_ASYNC_UNSAFE",
        }
    }
    clean.update(env)
    clean["DJANGO_SETTINGS_MODULE"] = "rollout_control.settings"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_production__no_secret_key__refuses_to_start() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "SECRET_KEY"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "SECRET_KEY is not set" in result.stderr


def test_production__no_database_url__refuses_to_start() -> None:
    env = {k: v for k, v in PRODUCTION.items() if k != "DATABASE_URL"}
    result = _manage("check", **env)
    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_production__bad_boolean__refuses_with_message() -> None:
    result = _manage("check", **PRODUCTION, DEBUG="maybe")
    assert result.returncode != 0
    assert "DEBUG must be a boolean" in result.stderr


def test_production__check_deploy__nothing_to_fix() -> None:
    result = _manage("check", "--deploy", "--fail-level", "WARNING", **PRODUCTION)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues (0 silenced)" in result.stdout


def test_env_example__lists_every_variable_settings_read() -> None:
    import re

    read = set()
    for path in [
        ROOT / "rollout_control" / "settings.py",
        ROOT / "rollout_control" / "gunicorn_conf.py",
    ]:
        read |= set(
            re.findall(r'env_(?:str|bool|int|list|choice)\(\s*"([A-Z_]+)"', path.read_text())
        )
        read |= set(re.findall(r'os\.environ\.get\("([A-Z_]+)"', path.read_text()))
    listed = set(re.findall(r"^#?\s*([A-Z_]+)=", (ROOT / ".env.example").read_text(), re.MULTILINE))
    assert read - listed == set()
