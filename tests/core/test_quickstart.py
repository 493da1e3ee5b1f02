"""The README's first command, from a fresh copy of the repository, serves the product."""

import shutil
import subprocess
import time
import urllib.request

import pytest

from tests.processes import ROOT, free_port, running, wait_http


def _fresh_copy(target: object) -> None:
    # Tracked and untracked-but-not-ignored files: what a fresh clone of this work tree holds.
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    for name in files:
        source = ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)


@pytest.mark.slow
def test_quickstart__fresh_copy__serves_login_and_healthz_within_3_minutes(
    tmp_path: object,
) -> None:
    clone = tmp_path / "clone"
    clone.mkdir()
    _fresh_copy(clone)
    port = free_port()
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PORT": str(port),
        "PIP_CACHE_DIR": str(ROOT / ".venv" / "pip-cache"),
    }
    import os

    for name in ("PYTHON", "PIP_CONFIG_FILE", "PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL"):
        if name in os.environ:
            env[name] = os.environ[name]
    env["PATH"] = os.environ["PATH"]
    log = tmp_path / "quickstart.log"
    started = time.monotonic()
    with running(["./scripts/quickstart"], env=env, cwd=clone, log=log) as process:
        base = f"http://127.0.0.1:{port}"
        assert wait_http(f"{base}/healthz", 180, process) == 200, log.read_text()
        elapsed = time.monotonic() - started
        with urllib.request.urlopen(f"{base}/accounts/login/", timeout=5) as response:
            assert b"Log in" in response.read()
        assert wait_http(f"{base}/readyz", 10) == 200
    output = log.read_text()
    assert "Demo logins" in output
    assert "admin " in output
    assert not (clone / "var").exists() or (clone / "var" / "dev.sqlite3").exists()
    # The filesystem broker keeps its exchange files under var/, not in the checkout's top level.
    assert not (clone / "control").exists()
    assert (clone / "var" / "broker" / "control").is_dir()
    print(f"quickstart served /healthz after {elapsed:.0f}s")
    assert elapsed < 180
