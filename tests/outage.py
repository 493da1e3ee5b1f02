"""Throwaway Redis and PostgreSQL servers for outage tests, and helpers to run the service on them.

Outage tests stop servers on purpose, so they never touch the shared PostgreSQL (5432) and Redis
(6379) the rest of the suite needs. Each server here listens on a random loopback port, lives in a
temporary directory, and is stopped (its whole process group) when the context manager exits,
whatever happened inside:

    with throwaway_postgres() as pg, throwaway_redis() as redis:
        env = service_env(database_url=pg.url, redis_url=redis.url)
        manage("migrate", "--noinput", env=env)
        with gunicorn(env, log=tmp_path / "gunicorn.log") as web:
            ...  # HTTP to web.url
            with redis.outage():   # stopped here, started again when the block ends
                ...

PostgreSQL refuses to run as root, so when the tests run as root its commands run as the
`postgres` OS user (the temporary directory is theirs).
"""

import contextlib
import glob
import json
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.processes import BIN, ROOT, free_port, running, wait_http
from tests.processes import gunicorn as gunicorn_command


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class ThrowawayServer:
    """One server process: `stop()` causes an outage, `start()` ends it (same port, same data)."""

    def __init__(
        self,
        name: str,
        command: list[str],
        *,
        port: int,
        url: str,
        ready: Callable[[], bool],
        log: Path,
        stop_signal: int = signal.SIGTERM,
        popen: dict[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.command = command
        self.port = port
        self.url = url
        self.log = log
        self._ready = ready
        self._stop_signal = stop_signal
        self._popen = popen or {}
        self._process: subprocess.Popen | None = None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout: float = 30) -> None:
        """Starts the server and returns once it answers."""
        if self.running:
            return
        with open(self.log, "ab") as out:
            self._process = subprocess.Popen(
                self.command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                **self._popen,
            )
        deadline = time.monotonic() + timeout
        while not self._ready():
            if self._process.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with {self._process.returncode}:\n{_tail(self.log)}"
                )
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"{self.name} not ready within {timeout}s:\n{_tail(self.log)}")
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        """Stops the server (and every process it started) and returns once it is gone."""
        process, self._process = self._process, None
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGCONT)  # a paused server cannot shut down
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, self._stop_signal)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=timeout)
        # Whatever is left of the group (a killed postmaster's backends, say) goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)

    def pause(self) -> None:
        """Freezes the server (SIGSTOP to its process group): connections are still accepted by
        the kernel but never answered, like a network partition, unlike `stop()`'s refusals."""
        if self.running:
            os.killpg(self._process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        if self.running:
            os.killpg(self._process.pid, signal.SIGCONT)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Down inside the block; up again after it (a failing block leaves it to teardown)."""
        self.stop()
        yield
        self.start()


def _find(program: str) -> str:
    found = shutil.which(program)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"), key=_version_key)
    if candidates:
        return candidates[-1]
    raise RuntimeError(f"{program} not found; install it (.ci/run does) to run the outage tests")


def _version_key(path: str) -> tuple[int, ...]:
    version = Path(path).parent.parent.name
    return tuple(int(part) for part in version.split(".") if part.isdigit())


def _redis_ready(port: int) -> Callable[[], bool]:
    def ready() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    return ready


@contextlib.contextmanager
def throwaway_redis() -> Iterator[ThrowawayServer]:
    """A `redis-server` on a random loopback port, without persistence."""
    directory = Path(tempfile.mkdtemp(prefix="rc-redis-"))
    port = free_port()
    command = [
        _find("redis-server"),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(directory),
    ]
    server = ThrowawayServer(
        "redis-server",
        command,
        port=port,
        url=f"redis://127.0.0.1:{port}/0",
        ready=_redis_ready(port),
        log=directory / "redis.log",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def _postgres_user() -> dict[str, Any]:
    """Popen arguments that drop root to the `postgres` OS user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return {}
    entry = pwd.getpwnam("postgres")
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _postgres_ready(dsn: str) -> Callable[[], bool]:
    import psycopg

    def ready() -> bool:
        try:
            with psycopg.connect(dsn, connect_timeout=1):
                return True
        except psycopg.Error:
            return False

    return ready


@contextlib.contextmanager
def throwaway_postgres(database: str = "rc") -> Iterator[ThrowawayServer]:
    """A fresh PostgreSQL cluster (trust auth, user `postgres`) on a random loopback port, with
    an empty `database`; `url` is that database's URL."""
    import psycopg

    directory = Path(tempfile.mkdtemp(prefix="rc-pg-"))
    as_postgres = _postgres_user()
    if as_postgres:
        os.chown(directory, as_postgres["user"], as_postgres["group"])
    directory.chmod(0o700)
    data = directory / "data"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
    port = free_port()
    admin_dsn = f"host=127.0.0.1 port={port} user=postgres dbname=postgres"
    server = ThrowawayServer(
        "postgres",
        [
            _find("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-k",
            str(directory),
            "-c",
            "listen_addresses=127.0.0.1",
            # Throwaway data: durability buys nothing and costs seconds.
            "-c",
            "fsync=off",
            "-c",
            "synchronous_commit=off",
            "-c",
            "full_page_writes=off",
        ],
        port=port,
        url=f"postgres://postgres@127.0.0.1:{port}/{database}",
        ready=_postgres_ready(admin_dsn),
        log=directory / "postgres.log",
        # SIGINT is PostgreSQL's "fast" shutdown: sessions are cut, as in a real outage.
        stop_signal=signal.SIGINT,
        popen={**as_postgres, "env": env, "cwd": directory},
    )
    try:
        initdb = subprocess.run(
            [
                _find("initdb"),
                "--pgdata",
                str(data),
                "--username=postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ],
            env=env,
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=120,
            **as_postgres,
        )
        if initdb.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{initdb.stdout}\n{initdb.stderr}")
        server.start()
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{database}"')
        yield server
    finally:
        server.stop()
        shutil.rmtree(directory, ignore_errors=True)


def service_env(*, database_url: str, redis_url: str, **overrides: str) -> dict[str, str]:
    """Environment for manage.py / gunicorn on the given servers, configured as deployed: the
    project's own settings (snapshot poller thread on), DEBUG off, Redis as cache and broker."""
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_ALLOW_ASYNC_UNSAFE"}
    env.update(
        DJANGO_SETTINGS_MODULE="rollout_control.settings",
        ROLLOUT_MODE="development",
        DEBUG="false",
        SECRET_KEY="outage-test-" + secrets.token_urlsafe(32),
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CELERY_BROKER_URL=redis_url,
        SNAPSHOT_POLLER_THREAD="true",
        PYTHONPATH=str(ROOT),
    )
    env.update(overrides)
    return env


def manage(*args: str, env: dict[str, str], timeout: float = 300) -> str:
    """Runs `manage.py ARGS` and returns its stdout; fails with its output when it fails."""
    result = subprocess.run(
        [str(BIN / "python"), str(ROOT / "manage.py"), *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(
            f"manage.py {' '.join(args)} exited with {result.returncode}:\n"
            f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
        )
    return result.stdout


def create_token(scope: str, name: str, *, env: dict[str, str]) -> str:
    """A new API token (`create_api_token` prints it as its last line)."""
    output = manage("create_api_token", "--scope", scope, "--name", name, env=env)
    return output.strip().splitlines()[-1].strip()


@dataclass
class Web:
    """A running gunicorn: its base URL, its master process, its Prometheus files."""

    url: str
    process: subprocess.Popen
    metrics_dir: Path

    def workers_that_counted(self, label: str) -> set[int]:
        """pids of the workers whose Prometheus counters carry `label` (say a flag key: those
        workers evaluated that flag, so their snapshot holds it)."""
        needle = json.dumps(label).encode()
        return {
            int(path.stem.rsplit("_", 1)[-1])
            for path in self.metrics_dir.glob("counter_*.db")
            if needle in path.read_bytes()
        }


@contextlib.contextmanager
def gunicorn(env: dict[str, str], *, log: Path, workers: int = 2) -> Iterator[Web]:
    """gunicorn with the project's config on a free loopback port, stopped on exit."""
    port = free_port()
    metrics_dir = log.parent / f"prometheus-{port}"
    metrics_dir.mkdir(parents=True, exist_ok=True)
    command = gunicorn_command(port)
    env = {**env, "WEB_CONCURRENCY": str(workers), "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    with running(command, env=env, log=log) as server:
        url = f"http://127.0.0.1:{port}"
        try:
            wait_http(f"{url}/healthz", 60, server)
        except (RuntimeError, TimeoutError) as exc:
            raise RuntimeError(f"{exc}\n{_tail(log)}") from None
        yield Web(url=url, process=server, metrics_dir=metrics_dir)


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    text: str
    seconds: float
    error: str = ""
    body: Any = field(default=None)


def call(
    method: str,
    url: str,
    body: Any = None,
    *,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10,
) -> Reply:
    """One HTTP request on a new connection. A timeout or a refused connection is status 0."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status, raw, got = response.status, response.read(), dict(response.headers)
    except urllib.error.HTTPError as exc:
        status, raw, got = exc.code, exc.read(), dict(exc.headers)
    except OSError as exc:  # refused, reset, timed out
        return Reply(0, {}, "", time.monotonic() - started, error=f"{type(exc).__name__}: {exc}")
    text = raw.decode(errors="replace")
    reply = Reply(status, got, text, time.monotonic() - started)
    with contextlib.suppress(ValueError):
        reply.body = json.loads(text) if text else None
    return reply
