"""Runs the whole product for a local try-out: migrate, demo data, then web + worker + beat.

Started by `./scripts/quickstart`. Ctrl-C (or SIGTERM) stops all three processes; if one of them
dies, the others are stopped too and the exit status says so.
"""

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, check=True)


def _stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()


def main() -> int:
    os.environ.setdefault("ROLLOUT_MODE", "development")
    var_dir = Path(os.environ.get("ROLLOUT_VAR_DIR", ROOT / "var"))
    metrics_dir = var_dir / "prometheus"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")

    _run("migrate", "--no-input", "-v", "0")
    _run("install_schedule")
    _run("load_demo")

    bin_dir = Path(sys.executable).parent
    commands = {
        "web": [
            str(bin_dir / "gunicorn"),
            "rollout_control.wsgi",
            "-c",
            "python:rollout_control.gunicorn_conf",
            "--bind",
            f"{host}:{port}",
        ],
        "worker": [
            str(bin_dir / "celery"),
            "-A",
            "rollout_control",
            "worker",
            "--loglevel",
            "INFO",
            "--concurrency",
            "2",
            "--hostname",
            "quickstart@%h",
        ],
        "beat": [
            str(bin_dir / "celery"),
            "-A",
            "rollout_control",
            "beat",
            "--loglevel",
            "INFO",
        ],
    }
    processes = [subprocess.Popen(command, cwd=ROOT) for command in commands.values()]
    print(
        f"\nRollout control is running: http://{host}:{port}/  (Ctrl-C stops web, worker, beat)\n",
        flush=True,
    )

    stopping = False

    def _on_signal(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    while not stopping and all(process.poll() is None for process in processes):
        time.sleep(0.5)
    died = [name for name, p in zip(commands, processes, strict=True) if p.poll() is not None]
    _stop(processes)
    if died and not stopping:
        print(f"Stopped because {', '.join(died)} exited.", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
