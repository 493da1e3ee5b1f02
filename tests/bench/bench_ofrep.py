"""OFREP under gunicorn against a bare view; not collected by pytest (the name is not test_*.py).

Run from the repository root:  .venv/bin/python tests/bench/bench_ofrep.py

Sets everything up itself: drops and recreates the database ``rollout_bench`` on the local
PostgreSQL, migrates it, creates 50 flags, 5 cohorts and a client token through the services, then
starts gunicorn (the project's gunicorn_conf, 2 workers) on a free loopback port and drives it with
``wrk`` from a second process at 16 and 64 connections. Three endpoints go through the same URL
conf, middleware and gunicorn command:

- bare:   ``POST /bench/constant``, a constant 60-byte JSON body (routed with BENCH_VIEWS=true);
- single: ``POST /ofrep/v1/evaluate/flags/{key}``, the key and context rotating;
- bulk:   ``POST /ofrep/v1/evaluate/flags``, all 50 flags, the context rotating.

Every request carries the same headers and an OFREP body. Targets (issue 3) are ratios measured in
the same run: single >= 80 % of bare's requests/s with p99 within 1.5x; bulk >= 50 % of bare;
in-process evaluate >= 1/3 of a plain mmh3 function (tests/bench/bench_evaluation.py, run first,
while nothing else loads the machine).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench_evaluation import build_contexts  # same contexts as the in-process benchmark

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
DATABASE = "rollout_bench"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/2")
FLAGS = 50
WORKERS = 2
CONNECTIONS = (16, 64)
REQUESTS_PER_SCRIPT = 1_000
TARGET_SINGLE, TARGET_SINGLE_P99, TARGET_BULK, TARGET_IN_PROCESS = 0.80, 1.5, 0.50, 1 / 3
ENDPOINTS = ("bare", "single", "bulk")


# --------------------------------------------------------------------------------------------
# Data: run in a child process (`--seed`), with the bench database's settings.
# --------------------------------------------------------------------------------------------

COHORTS: list[tuple[str, dict[str, Any], list[str], list[str]]] = [
    # (key, fields, members, opt-in units): two member lists, three rule cohorts.
    ("staff", {"match_attribute": "targetingKey"}, [f"user-{i}" for i in range(0, 5_000, 7)], []),
    ("beta-orgs", {"match_attribute": "orgId"}, [str(i) for i in range(0, 97, 5)], []),
    (
        "enterprise",
        {
            "match_attribute": "orgId",
            "rules": [
                {"attribute": "plan", "operator": "in", "values": ["enterprise", "business"]}
            ],
        },
        [],
        [],
    ),
    (
        "new-mobile",
        {
            "opt_in": True,
            "rules": [
                {"attribute": "platform", "operator": "equals", "values": ["ios"]},
                {"attribute": "appVersion", "operator": "semver_gt", "values": ["2.3.0"]},
            ],
        },
        [],
        ["user-11"],
    ),
    (
        "eu",
        {
            "rules": [
                {"attribute": "country", "operator": "in", "values": ["DE", "FR", "NL", "IE", "ES"]}
            ]
        },
        [],
        [],
    ),
]


def flag_fields(index: int) -> dict[str, Any]:
    """30 percentage-only flags, 12 with cohort rules, 8 static (bench_evaluation's shapes)."""
    fields: dict[str, Any] = {
        "rollout_percentage": Decimal(1 + (index * 733) % 9_998) / 100,
        "stickiness": "orgId" if index % 5 == 0 else "targetingKey",
    }
    if index % 10 == 3:
        fields["excluded_units"] = ["user-1", "user-2"]
    if 30 <= index < 38:
        fields["cohort_rules"] = [("staff" if index % 2 else "beta-orgs", 100)]
    elif 38 <= index < 42:
        fields["cohort_rules"] = [("new-mobile", 25), ("eu", 0), ("enterprise", 50), ("staff", 100)]
    elif index in (42, 43, 44):
        fields["forced_on"] = True
    elif index == 45:
        fields["kill_switch"] = True
    elif index in (46, 47):
        fields["rollout_percentage"] = 100
    elif index in (48, 49):
        fields["rollout_percentage"] = 0
    return fields


def flag_key(index: int) -> str:
    return f"flag-{index:02d}"


def seed() -> None:
    """Creates the cohorts, flags and a client token; prints the token's secret."""
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from flags.services import (
        CohortRuleInput,
        cohort_create,
        cohort_members_add,
        cohort_opt_in,
        flag_create,
    )
    from rollout_control.core.actors import Actor
    from rollout_control.core.services import api_token_create

    actor = Actor.system("bench")
    for key, fields, members, opt_ins in COHORTS:
        cohort_create(key=key, actor=actor, **fields)
        if members:
            cohort_members_add(key=key, units=members, actor=actor)
        for unit in opt_ins:
            cohort_opt_in(key=key, unit=unit, actor=actor)
    for index in range(FLAGS):
        fields = flag_fields(index)
        rules = fields.pop("cohort_rules", [])
        fields["cohort_rules"] = [CohortRuleInput(key, Decimal(p)) for key, p in rules]
        flag_create(key=flag_key(index), actor=actor, **fields)
    _, raw = api_token_create(name="bench", scope="client", actor=actor)
    print(raw)


# --------------------------------------------------------------------------------------------
# Setup and processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_env(metrics_dir: Path) -> dict[str, str]:
    drop = {"DJANGO_SETTINGS_MODULE", "GUNICORN_ACCESS_LOG", "SECRET_KEY", "ALLOWED_HOSTS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(
        DJANGO_SETTINGS_MODULE="rollout_control.settings",
        PYTHONPATH=str(ROOT),
        ROLLOUT_MODE="development",
        DATABASE_URL=f"{PG_URL}/{DATABASE}",
        REDIS_URL=REDIS_URL,
        CLIENT_RATE_LIMIT="0",
        DEBUG="false",
        LOG_LEVEL="WARNING",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        BENCH_VIEWS="true",
        WEB_CONCURRENCY=str(WORKERS),
        WEB_THREADS="1",
    )
    return env


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def prepare(env: dict[str, str]) -> str:
    """Fresh database and Redis db, migrated and seeded; returns the client token."""
    import redis

    recreate_database()
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--no-input", "-v", "0"], cwd=ROOT, env=env, check=True)
    seeded = subprocess.run(
        [sys.executable, __file__, "--seed"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if seeded.returncode != 0:
        sys.exit(f"seeding failed:\n{seeded.stderr[-3000:]}")
    return seeded.stdout.strip().splitlines()[-1]


@dataclass(frozen=True)
class Server:
    base: str
    master_pid: int

    def worker_cpu_seconds(self) -> float:
        """User + system CPU time of the master's children (the workers) so far."""
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, IndexError, ValueError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[1]) == self.master_pid:
                    total += int(fields[11]) + int(fields[12])  # utime, stime
        return total / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def gunicorn(env: dict[str, str], port: int, log: Path) -> Iterator[Server]:
    command = [
        str(BIN / "gunicorn"),
        "rollout_control.wsgi",
        "-c",
        "python:rollout_control.gunicorn_conf",
        "--bind",
        f"127.0.0.1:{port}",
    ]
    with open(log, "wb") as out:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            base = f"http://127.0.0.1:{port}"
            wait_ready(f"{base}/healthz", process, log)
            yield Server(base=base, master_pid=process.pid)
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def wait_ready(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            sys.exit(f"gunicorn exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as response:
            if response.status == 200:
                return
        time.sleep(0.2)
    sys.exit(f"gunicorn did not answer {url} within 60 s:\n{log.read_text()[-3000:]}")


# --------------------------------------------------------------------------------------------
# Requests: the same headers and bodies for every endpoint; only the path differs.
# --------------------------------------------------------------------------------------------


def request_lines(endpoint: str) -> list[str]:
    """`path TAB body` per request; wrk cycles through them."""
    contexts = build_contexts()
    lines = []
    for i in range(REQUESTS_PER_SCRIPT):
        body = json.dumps({"context": contexts[(i * 7) % len(contexts)]}, separators=(",", ":"))
        path = {
            "bare": "/bench/constant",
            "single": f"/ofrep/v1/evaluate/flags/{flag_key(i % FLAGS)}",
            "bulk": "/ofrep/v1/evaluate/flags",
        }[endpoint]
        lines.append(f"{path}\t{body}")
    return lines


LUA = r"""
local requests, n = {}, 0

function init(args)
  local headers = {
    ["Authorization"] = "Bearer " .. args[1],
    ["Content-Type"] = "application/json",
  }
  for line in io.lines(args[2]) do
    local path, body = line:match("^([^\t]+)\t(.*)$")
    requests[#requests + 1] = wrk.format("POST", path, headers, body)
  end
  n = math.random(#requests) -- threads start at different requests
end

function request()
  n = n % #requests + 1
  return requests[n]
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":%d,"bad_status":%d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.timeout, e.status))
end
"""


def machine_cpu_seconds() -> tuple[float, float, float]:
    """(process time, interrupt time, steal time) of the whole machine so far, all cores.

    Loopback networking runs partly in softirq time, charged to no process; steal is time the
    hypervisor gave our virtual CPUs to someone else."""
    names = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
    line = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    ticks = dict(zip(names, map(int, line), strict=False))
    tick = os.sysconf("SC_CLK_TCK")
    process = ticks["user"] + ticks["nice"] + ticks["system"]
    return process / tick, (ticks["irq"] + ticks["softirq"]) / tick, ticks["steal"] / tick


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class Slice:
    """One wrk run against one endpoint."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # seconds, both workers
    wrk_cpu: float
    other_cpu: float  # seconds other processes were busy
    interrupt_cpu: float
    steal_cpu: float
    errors: int

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def wrk_slice(
    server: Server, script: Path, data: Path, token: str, *, connections: int, seconds: int
) -> Slice:
    command = [
        "wrk",
        "-t2",
        f"-c{connections}",
        f"-d{seconds}s",
        "--timeout",
        "5s",
        "-s",
        str(script),
        server.base,
        "--",
        token,
        str(data),
    ]
    machine, workers, wrk_cpu = (
        machine_cpu_seconds(),
        server.worker_cpu_seconds(),
        children_cpu_seconds(),
    )
    result = subprocess.run(command, capture_output=True, text=True)
    busy, interrupts, steal = (b - a for a, b in zip(machine, machine_cpu_seconds(), strict=True))
    workers = server.worker_cpu_seconds() - workers
    wrk_cpu = children_cpu_seconds() - wrk_cpu
    match = re.search(r"^BENCH (\{.*\})$", result.stdout, re.MULTILINE)
    if not match:
        sys.exit(f"wrk printed no summary:\n{result.stdout}\n{result.stderr}")
    raw = json.loads(match.group(1))
    return Slice(
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        server_cpu=workers,
        wrk_cpu=wrk_cpu,
        other_cpu=max(0.0, busy - workers - wrk_cpu),
        interrupt_cpu=interrupts,
        steal_cpu=steal,
        errors=raw["errors"] + raw["bad_status"],
    )


@dataclass(frozen=True)
class Result:
    """An endpoint at a connection count: medians over its rounds."""

    rate: float
    p50_ms: float
    p99_ms: float
    cpu_us: float  # server CPU per request (both workers together)
    requests: int
    errors: int

    @classmethod
    def of(cls, slices: list[Slice]) -> Result:
        return cls(
            rate=statistics.median(s.rate for s in slices),
            p50_ms=statistics.median(s.p50_ms for s in slices),
            p99_ms=statistics.median(s.p99_ms for s in slices),
            cpu_us=statistics.median(s.server_cpu / max(1, s.requests) * 1e6 for s in slices),
            requests=sum(s.requests for s in slices),
            errors=sum(s.errors for s in slices),
        )


def post(url: str, token: str, body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def check_endpoints(base: str, token: str) -> None:
    """Each endpoint answers 200 with what the benchmark claims to measure."""
    body = json.dumps({"context": build_contexts()[3]}).encode()
    status, bare = post(f"{base}/bench/constant", token, body)
    assert status == 200 and len(bare) == 60, (status, bare)
    status, single = post(f"{base}/ofrep/v1/evaluate/flags/{flag_key(31)}", token, body)
    assert status == 200 and "variant" in json.loads(single), (status, single)
    status, bulk = post(f"{base}/ofrep/v1/evaluate/flags", token, body)
    flags = json.loads(bulk)["flags"] if status == 200 else []
    assert len(flags) == FLAGS, (status, bulk[:300])


def counted_evaluations(base: str) -> float:
    with urllib.request.urlopen(f"{base}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = r"^rollout_control_flag_evaluations_total\{[^}]*\} (\S+)$"
    return sum(float(value) for value in re.findall(pattern, text, re.MULTILINE))


def settled_count(base: str) -> float:
    """The evaluation count once the server is idle and its tallies are flushed."""
    previous = -1.0
    while (count := counted_evaluations(base)) != previous:
        previous = count
        time.sleep(1.0)
    return count


def check_counting(base: str, token: str) -> str:
    """20 single and 20 bulk requests must all show in /metrics within a second."""
    before = settled_count(base)
    body = json.dumps({"context": build_contexts()[5]}).encode()
    for index in range(20):
        post(f"{base}/ofrep/v1/evaluate/flags/{flag_key(index)}", token, body)
        post(f"{base}/ofrep/v1/evaluate/flags", token, body)
    sent = time.monotonic()
    expected = before + 20 + 20 * FLAGS
    while (counted := counted_evaluations(base)) != expected and time.monotonic() - sent < 1.0:
        time.sleep(0.05)
    new, waited = counted - before, time.monotonic() - sent
    if counted != expected:
        return f"MISMATCH: sent {expected - before:,.0f} evaluations, /metrics shows {new:,.0f}"
    return f"OK: sent {new:,.0f} evaluations, all in /metrics {waited:.2f} s later"


# --------------------------------------------------------------------------------------------
# In-process figures and the report
# --------------------------------------------------------------------------------------------


def in_process() -> tuple[str, float]:
    result = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("bench_evaluation.py"))],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    match = re.search(r"target: evaluate >= .*\(([\d.]+)\)", result.stdout)
    if not match:
        sys.exit(f"bench_evaluation.py printed no ratio:\n{result.stdout}")
    return result.stdout, float(match.group(1))


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


LABELS = {
    "bare": "bare view (constant 60 B JSON)",
    "single": "OFREP single flag",
    "bulk": f"OFREP bulk ({FLAGS} flags)",
}


Taken = dict[tuple[str, int], list[Slice]]


def paired(taken: Taken, c: int, endpoint: str, measure: Callable[[Slice, Slice], float]) -> float:
    """Median over rounds of measure(endpoint's slice, bare's slice of the same round).

    Slices of one round ran seconds apart, so they saw the same background load: the ratio of a
    pair is steadier than the ratio of two medians on a machine shared with other work."""
    pairs = zip(taken[endpoint, c], taken["bare", c], strict=True)
    return statistics.median(measure(run, bare) for run, bare in pairs)


def report(taken: Taken, in_process_ratio: float) -> bool:
    print(
        f"\n{'endpoint':<32}{'conns':>6}{'req/s':>9}{'p50 ms':>8}{'p99 ms':>8}"
        f"{'CPU us/req':>11}{'errors':>7}"
    )
    for c in CONNECTIONS:
        for endpoint in ENDPOINTS:
            r = Result.of(taken[endpoint, c])
            print(
                f"{LABELS[endpoint]:<32}{c:>6}{r.rate:>9,.0f}{r.p50_ms:>8.2f}{r.p99_ms:>8.2f}"
                f"{r.cpu_us:>11.0f}{r.errors:>7}"
            )
    print("\ntargets (each ratio: median over rounds of endpoint / bare in the same round):")
    all_ok = True
    for c in CONNECTIONS:
        single = paired(taken, c, "single", lambda run, bare: run.rate / bare.rate)
        single_p99 = paired(taken, c, "single", lambda run, bare: run.p99_ms / bare.p99_ms)
        bulk = paired(taken, c, "bulk", lambda run, bare: run.rate / bare.rate)
        checks = [
            (f"single req/s >= {TARGET_SINGLE:.0%} of bare", single, single >= TARGET_SINGLE),
            (f"single p99 <= {TARGET_SINGLE_P99}x bare p99", single_p99,
             single_p99 <= TARGET_SINGLE_P99),
            (f"bulk req/s >= {TARGET_BULK:.0%} of bare", bulk, bulk >= TARGET_BULK),
        ]  # fmt: skip
        for label, ratio, ok in checks:
            all_ok &= ok
            print(f"  {c:>2} conns  {label:<36}{ratio:>6.2f}  {verdict(ok)}")
    ok = in_process_ratio >= TARGET_IN_PROCESS
    all_ok &= ok
    label = f"in-process evaluate >= {TARGET_IN_PROCESS:.2f}x mmh3"
    print(f"  one core  {label:<36}{in_process_ratio:>6.2f}  {verdict(ok)}")
    print("server CPU per request, bare / endpoint (the req/s ratio on otherwise idle cores):")

    def cpu(run: Slice) -> float:
        return run.server_cpu / max(1, run.requests)

    for c in CONNECTIONS:
        single = paired(taken, c, "single", lambda run, bare: cpu(bare) / cpu(run))
        bulk = paired(taken, c, "bulk", lambda run, bare: cpu(bare) / cpu(run))
        print(f"  {c:>2} conns  single {single:.2f}, bulk {bulk:.2f}")
    return all_ok


def load(
    server: Server, scripts: dict[str, tuple[Path, Path]], token: str, *, rounds: int, seconds: int
) -> Taken:
    """Per connection count, `rounds` rounds of the three endpoints, `seconds` each; the order
    alternates (bare, single, bulk, then bulk, single, bare) so a drift in background load
    favours none of them."""
    taken: Taken = {}
    for c in CONNECTIONS:
        for index in range(rounds):
            for endpoint in ENDPOINTS if index % 2 == 0 else ENDPOINTS[::-1]:
                script, data = scripts[endpoint]
                run = wrk_slice(server, script, data, token, connections=c, seconds=seconds)
                taken.setdefault((endpoint, c), []).append(run)
    return taken


def describe_machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.split("\n")[0]
    return (
        f"{os.cpu_count()} CPUs ({cpu or platform.machine()}), python {platform.python_version()}, "
        f"{version.split(' [')[0]}, gunicorn {WORKERS} sync workers"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seed", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--seconds", type=int, default=10, help="load per endpoint and connection count (10)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=5,
        help="interleaved rounds those seconds are split into (5)",
    )
    parser.add_argument("--keep-db", action="store_true", help="leave rollout_bench afterwards")
    args = parser.parse_args()
    if args.seed:
        seed()
        return 0
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk (Debian/Ubuntu), then run again.")
    slice_seconds = max(1, round(args.seconds / args.rounds))

    print(describe_machine())
    print("\nin-process (tests/bench/bench_evaluation.py, before the server starts):")
    text, in_process_ratio = in_process()
    print("  " + text.strip().replace("\n", "\n  "))

    tmp = Path(tempfile.mkdtemp(prefix="bench-ofrep-"))
    metrics_dir = tmp / "prometheus"
    metrics_dir.mkdir()
    env = server_env(metrics_dir)
    try:
        print(f"\nsetting up database {DATABASE!r}: migrate, {FLAGS} flags, 5 cohorts, a token")
        token = prepare(env)
        script = tmp / "ofrep.lua"
        script.write_text(LUA)
        scripts = {}
        for endpoint in ENDPOINTS:
            data = tmp / f"{endpoint}.tsv"
            data.write_text("\n".join(request_lines(endpoint)) + "\n")
            scripts[endpoint] = (script, data)
        with gunicorn(env, free_port(), tmp / "gunicorn.log") as server:
            check_endpoints(server.base, token)
            for endpoint in ENDPOINTS:  # warm-up: imports, compiled flag plans, JSON paths
                wrk_slice(server, *scripts[endpoint], token, connections=16, seconds=2)
            print(
                f"load: wrk (2 threads) at {' and '.join(map(str, CONNECTIONS))} connections; per "
                f"connection count {args.rounds} rounds of the three endpoints, {slice_seconds} s "
                "each; figures are medians over the rounds"
            )
            taken = load(server, scripts, token, rounds=args.rounds, seconds=slice_seconds)
            counting = check_counting(server.base, token)
        all_ok = report(taken, in_process_ratio)
        slices = [run for runs in taken.values() for run in runs]
        elapsed = sum(s.seconds for s in slices)

        def cores(field: str) -> float:
            return sum(getattr(s, field) for s in slices) / elapsed

        print(
            f"CPU during the load, in cores of {os.cpu_count()}: gunicorn workers "
            f"{cores('server_cpu'):.2f}, wrk {cores('wrk_cpu'):.2f}, interrupts "
            f"{cores('interrupt_cpu'):.2f}, other processes {cores('other_cpu'):.2f}, stolen by "
            f"the hypervisor {cores('steal_cpu'):.2f}"
        )
        if cores("other_cpu") + cores("steal_cpu") > 0.25:
            print(
                "WARNING: other processes or the hypervisor took CPU during the load, so the "
                "req/s and latency ratios are unreliable (CPU per request less so). Run again "
                "on a quiet machine."
            )
        print(f"evaluations counted in /metrics under gunicorn: {counting}")
        all_ok &= counting.startswith("OK")
        return 0 if all_ok else 1
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not args.keep_db:
            with contextlib.suppress(Exception):
                drop_database()


if __name__ == "__main__":
    sys.exit(main())
