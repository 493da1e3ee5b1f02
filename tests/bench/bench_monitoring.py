"""Monitoring: batch ingestion through the API and window queries over 10 million samples.

Not collected by pytest (the name is not test_*.py). Run from the repository root:

    .venv/bin/python tests/bench/bench_monitoring.py

Sets everything up itself: drops and recreates the database ``rollout_bench_monitoring`` on the
local PostgreSQL, migrates it and creates an ingest token (this process runs Django with the same
settings as the server), then:

1. Loads 10 million samples straight into PostgreSQL (``INSERT ... SELECT generate_series``; the
   loading is not what is measured): the last 7 days in time order, as ingestion would write them,
   50 flags with a skewed share of the traffic, seven metrics, the usual labels. VACUUM ANALYZE.
2. Starts gunicorn (the project's gunicorn_conf, 2 workers) on a free loopback port and drives
   ``POST /api/v1/metrics/`` from ONE client over http.client, sending 1,000-sample batches (flag
   among 50, plan, phase, cohort, unit) back to back for ~20 s. Target: >= 20,000 samples/s.
   The samples it stored are deleted afterwards so they do not crowd the query windows.
3. Times ``metric_value(name=..., window=15m, filters={"flag": ...})`` in this process (the
   query, not HTTP) for latency_p95, error_rate and request_rate over every flag, several rounds.
   Target: p95 of a 15-minute window for one flag < 50 ms.

Drops the database at the end unless --keep-db.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
PG_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
DATABASE = "rollout_bench_monitoring"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/3")
WORKERS = 2
FLAGS = 50
BATCH = 1_000
BODIES = 40  # distinct pre-encoded batches the client cycles through
TARGET_INGEST = 20_000  # samples/s
TARGET_QUERY_P95_MS = 50.0
QUERIES = ("latency_p95", "error_rate", "request_rate")
PLANS = ("checkout-v2", "search-ranking", "new-onboarding", "dark-mode", "pricing-page")
PHASES = ("canary", "pilot", "ramp", "general")
COHORTS = ("staff", "beta", "eu", "everyone")


def flag_key(index: int) -> str:
    return f"flag-{index:02d}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def settings_env() -> dict[str, str]:
    """What the server and this process's Django both run with."""
    return {
        "DJANGO_SETTINGS_MODULE": "rollout_control.settings",
        "ROLLOUT_MODE": "development",
        "DATABASE_URL": f"{PG_URL}/{DATABASE}",
        "REDIS_URL": REDIS_URL,
        "CLIENT_RATE_LIMIT": "0",
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
    }


# --------------------------------------------------------------------------------------------
# Database: create, migrate, token, bulk load
# --------------------------------------------------------------------------------------------


def recreate_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{DATABASE}"')


def drop_database() -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DATABASE}" WITH (FORCE)')


def database_has_samples() -> bool:
    import psycopg

    try:
        with psycopg.connect(f"{PG_URL}/{DATABASE}", connect_timeout=5) as conn:
            return conn.execute("SELECT EXISTS (SELECT FROM monitoring_metricsample)").fetchone()[0]
    except psycopg.Error:
        return False


def setup_django() -> str:
    """Migrates the database and returns a new ingest token's secret."""
    os.environ.update(settings_env())
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    from rollout_control.core.actors import Actor
    from rollout_control.core.services import api_token_create

    call_command("migrate", verbosity=0, interactive=False)
    _, raw = api_token_create(name="bench", scope="ingest", actor=Actor.system("bench"))
    return raw


# Metric mix per sample: (name, share, value expression). Values are what a client would push:
# latency in ms (log-normal-ish), request and error counts per push interval.
METRICS = (
    ("latency_ms", 0.40, "round((40 + 400 * power(random(), 4))::numeric, 2)"),
    ("requests", 0.20, "floor(1 + 100 * random())"),
    ("errors", 0.20, "floor(3 * power(random(), 3))"),
    ("failed_logins", 0.05, "floor(2 * random())"),
    ("job_failures", 0.05, "floor(1.2 * random())"),
    ("stress", 0.05, "random()"),
    ("cpu_percent", 0.05, "100 * random()"),
)

LOAD_SQL = """
INSERT INTO monitoring_metricsample
    (metric, value, recorded_at, flag, plan, phase, cohort, unit, labels)
SELECT metric, ({metric_values})::float8, recorded_at, flag, plan, phase, cohort, unit,
       jsonb_build_object('flag', flag, 'plan', plan, 'phase', phase, 'cohort', cohort,
                          'unit', unit, 'region', region)
FROM (
    SELECT
        ({metric_choice}) AS metric,
        -- In time order, as ingestion writes them, with a little jitter.
        %(start)s::timestamptz + (i + random()) * %(step)s::interval AS recorded_at,
        'flag-' || lpad(n::text, 2, '0') AS flag,
        (%(plans)s::text[])[1 + n %% %(plan_count)s] AS plan,
        (%(phases)s::text[])[1 + (n / 7) %% %(phase_count)s] AS phase,
        (%(cohorts)s::text[])[1 + floor(random() * %(cohort_count)s)::int] AS cohort,
        'user-' || floor(random() * 100000)::int AS unit,
        (ARRAY['eu-west', 'us-east', 'ap-south'])[1 + floor(random() * 3)::int] AS region
    FROM (
        -- Skewed traffic: flag-00 gets ~7 %% of the samples, flag-49 ~1.3 %%. A subquery with
        -- volatile columns is not flattened, so r and n are drawn once per row.
        SELECT i, random() AS r, floor(%(flags)s * power(random(), 1.5))::int AS n
        FROM generate_series(%(first)s, %(last)s) AS i
    ) AS draws
) AS samples
"""


def metric_sql() -> tuple[str, str]:
    """CASE expressions: the metric by cumulative share of r, then a value for that metric."""
    branches, cumulative = [], 0.0
    for name, share, _ in METRICS[:-1]:
        cumulative += share
        branches.append(f"WHEN r < {cumulative:.4f} THEN '{name}'")
    choice = "CASE " + " ".join(branches) + f" ELSE '{METRICS[-1][0]}' END"
    values = "CASE metric " + " ".join(f"WHEN '{n}' THEN {v}" for n, _, v in METRICS) + " END"
    return choice, values


def load_samples(total: int) -> float:
    """Writes `total` samples over the last 7 days; returns the seconds it took. Indexes are
    dropped for the load and rebuilt after (whatever the migrations defined)."""
    from django.db import connection

    started = time.perf_counter()
    end = datetime.now(UTC) - timedelta(seconds=30)
    span = timedelta(days=7) - timedelta(minutes=5)
    step = span / total
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'monitoring_metricsample'"
            " AND indexname NOT LIKE '%_pkey'"
        )
        indexes = cursor.fetchall()
        for name, _ in indexes:
            cursor.execute(f'DROP INDEX "{name}"')
        cursor.execute("SELECT setseed(0.42)")
        chunk = 1_000_000
        choice, values = metric_sql()
        sql = LOAD_SQL.replace("{metric_choice}", choice).replace("{metric_values}", values)
        for first in range(0, total, chunk):
            last = min(first + chunk, total) - 1
            cursor.execute(
                sql,
                {
                    "start": end - span,
                    "step": step,
                    "first": first,
                    "last": last,
                    "flags": FLAGS,
                    "plans": list(PLANS),
                    "plan_count": len(PLANS),
                    "phases": list(PHASES),
                    "phase_count": len(PHASES),
                    "cohorts": list(COHORTS),
                    "cohort_count": len(COHORTS),
                },
            )
            print(f"  {last + 1:>12,} rows  {time.perf_counter() - started:6.1f} s", flush=True)
        cursor.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            cursor.execute(definition)
            print(f"  index {name}  {time.perf_counter() - started:6.1f} s", flush=True)
    vacuum_analyze()
    return time.perf_counter() - started


def vacuum_analyze() -> None:
    from django.db import connection

    # VACUUM cannot run in a transaction; Django's connection is in autocommit here.
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE monitoring_metricsample")


def table_size() -> tuple[int, str, str]:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), pg_size_pretty(pg_relation_size('monitoring_metricsample')),"
            " pg_size_pretty(pg_indexes_size('monitoring_metricsample'))"
            " FROM monitoring_metricsample"
        )
        return cursor.fetchone()


def loaded_range() -> tuple[int, datetime]:
    """The last loaded sample's id and time: the queries look back from that time, so windows
    are full however long the load and the ingestion run took (or however old a reused load is)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id), max(recorded_at) FROM monitoring_metricsample")
        return cursor.fetchone()


def delete_samples_after(sample_id: int) -> int:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM monitoring_metricsample WHERE id > %s", [sample_id])
        deleted = cursor.rowcount
    vacuum_analyze()
    return deleted


# --------------------------------------------------------------------------------------------
# Ingestion through the API: one client, 1,000-sample batches, back to back
# --------------------------------------------------------------------------------------------


def build_bodies(seed: int = 7) -> list[bytes]:
    """Pre-encoded batches (so the client's JSON encoding does not compete with the server for
    the two cores). Timestamps are within the last minute: valid for the whole run."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    metrics = [(name, share) for name, share, _ in METRICS]
    names, shares = zip(*metrics, strict=True)
    bodies = []
    for _ in range(BODIES):
        samples = []
        for _ in range(BATCH):
            flag = int(FLAGS * rng.random() ** 1.5)
            metric = rng.choices(names, shares)[0]
            value = round(40 + 400 * rng.random() ** 4, 2) if metric == "latency_ms" else 1
            moment = now - timedelta(seconds=60 * rng.random())
            samples.append(
                {
                    "metric": metric,
                    "value": value,
                    "timestamp": moment.isoformat().replace("+00:00", "Z"),
                    "labels": {
                        "flag": flag_key(flag),
                        "plan": PLANS[flag % len(PLANS)],
                        "phase": PHASES[(flag // 7) % len(PHASES)],
                        "cohort": rng.choice(COHORTS),
                        "unit": f"user-{rng.randrange(100_000)}",
                        "region": rng.choice(("eu-west", "us-east", "ap-south")),
                    },
                }
            )
        bodies.append(json.dumps({"samples": samples}, separators=(",", ":")).encode())
    return bodies


@dataclass(frozen=True)
class IngestRun:
    accepted: int
    seconds: float
    latencies: list[float]
    errors: int
    connections: int


def ingest(port: int, token: str, bodies: list[bytes], seconds: float) -> IngestRun:
    """Sends batches back to back for `seconds`, one at a time, from one http.client connection
    (gunicorn's sync workers close it after each response; it reconnects)."""
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    accepted, latencies, errors, connects = 0, [], 0, 0
    begun = time.perf_counter()
    deadline = begun + seconds
    index = 0
    while time.perf_counter() < deadline:
        body = bodies[index % len(bodies)]
        index += 1
        if connection.sock is None:
            connects += 1
        sent = time.perf_counter()
        connection.request("POST", "/api/v1/metrics/", body=body, headers=headers)
        response = connection.getresponse()
        payload = response.read()
        latencies.append(time.perf_counter() - sent)
        if response.status == 201:
            accepted += json.loads(payload)["accepted"]
        else:
            errors += 1
            if errors == 1:
                print(f"  first error: {response.status} {payload[:300]!r}")
        if response.will_close:
            connection.close()  # gunicorn's sync workers close after each response
    elapsed = time.perf_counter() - begun
    connection.close()
    return IngestRun(accepted, elapsed, latencies, errors, connects)


@contextlib.contextmanager
def gunicorn(port: int, log: Path, metrics_dir: Path) -> Iterator[subprocess.Popen[bytes]]:
    drop = {"GUNICORN_ACCESS_LOG", "SECRET_KEY", "ALLOWED_HOSTS"}
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(settings_env())
    env.update(
        PYTHONPATH=str(ROOT),
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        WEB_CONCURRENCY=str(WORKERS),
        WEB_THREADS="1",
    )
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
            wait_ready(f"http://127.0.0.1:{port}/healthz", process, log)
            yield process
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
# Window queries, in process
# --------------------------------------------------------------------------------------------


def time_queries(rounds: int, now: datetime) -> dict[str, tuple[list[float], list[int]]]:
    """Per metric: the time of each query (s) and its sample count. One untimed pass first."""
    from monitoring.selectors import metric_value

    window = timedelta(minutes=15)
    flags = [flag_key(i) for i in range(FLAGS)]
    for name in QUERIES:
        for flag in flags:
            metric_value(name=name, window=window, filters={"flag": flag}, now=now)
    results: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in QUERIES}
    order = random.Random(3)
    for _ in range(rounds):
        shuffled = flags[:]
        order.shuffle(shuffled)
        for flag in shuffled:
            for name in QUERIES:
                started = time.perf_counter()
                result = metric_value(name=name, window=window, filters={"flag": flag}, now=now)
                results[name][0].append(time.perf_counter() - started)
                results[name][1].append(result.samples)
    return results


def time_unfiltered(repeats: int, now: datetime) -> dict[str, tuple[list[float], list[int]]]:
    """The same metrics over every flag at once (a dashboard's overall figure): not a target,
    but it shows the (metric, recorded_at) index at work."""
    from monitoring.selectors import metric_value

    window = timedelta(minutes=15)
    results: dict[str, tuple[list[float], list[int]]] = {name: ([], []) for name in QUERIES}
    for name in QUERIES:
        metric_value(name=name, window=window, now=now)
        for _ in range(repeats):
            started = time.perf_counter()
            result = metric_value(name=name, window=window, now=now)
            results[name][0].append(time.perf_counter() - started)
            results[name][1].append(result.samples)
    return results


def explain(name: str, flag: str, end: datetime) -> str:
    """EXPLAIN ANALYZE of the sample query behind a definition, for the notes."""
    from django.db import connection

    from monitoring.models import MetricDefinition
    from monitoring.providers import SampleProvider

    definition = MetricDefinition.objects.get(name=name)
    queryset = SampleProvider()._raw(definition.metric, end - timedelta(minutes=15), end, {})
    queryset = queryset.filter(flag=flag)
    sql, params = queryset.values("value").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def quantile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def print_query(name: str, times: list[float], samples: list[int]) -> None:
    print(
        f"  {name:<22}{quantile(times, 0.5) * 1e3:>9.2f}{quantile(times, 0.95) * 1e3:>9.2f}"
        f"{max(times) * 1e3:>9.2f}{statistics.median(samples):>13,.0f}{max(samples):>8,}"
    )


def verdict(ok: bool) -> str:
    return "OK" if ok else "MISSED"


def describe_machine() -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW server_version")
        pg = cursor.fetchone()[0].split()[0]
        cursor.execute("SHOW shared_buffers")
        buffers = cursor.fetchone()[0]
    return (
        f"{os.cpu_count()} CPUs ({cpu or platform.machine()}), python "
        f"{platform.python_version()}, PostgreSQL {pg} (shared_buffers {buffers}), gunicorn "
        f"{WORKERS} sync workers; client, server and database on the same machine"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=10_000_000, help="rows to load (10M)")
    parser.add_argument("--seconds", type=float, default=20, help="ingestion run (20 s)")
    parser.add_argument("--rounds", type=int, default=4, help="query rounds over all flags")
    parser.add_argument("--explain", action="store_true", help="print EXPLAIN ANALYZE plans")
    parser.add_argument("--keep-db", action="store_true", help=f"leave {DATABASE} afterwards")
    parser.add_argument(
        "--reuse-db", action="store_true", help="use a kept database's samples (implies --keep-db)"
    )
    args = parser.parse_args()
    reuse = args.reuse_db and database_has_samples()
    args.keep_db |= args.reuse_db
    if not reuse:
        recreate_database()
    tmp = Path(tempfile.mkdtemp(prefix="bench-monitoring-"))
    metrics_dir = tmp / "prometheus"
    metrics_dir.mkdir()
    try:
        import redis

        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=3).flushdb()
        token = setup_django()
        from django.db import connection

        print(describe_machine())
        print("load average at start: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        if reuse:
            print(f"\nreusing the samples in {DATABASE}")
        else:
            print(f"\nloading {args.samples:,} samples (not measured: SQL generate_series) ...")
            load_seconds = load_samples(args.samples)
            print(f"  loaded in {load_seconds:.0f} s")
        rows, heap, index_size = table_size()
        print(f"  {rows:,} rows; table {heap}, indexes {index_size}")

        loaded_up_to, loaded_until = loaded_range()
        connection.close()  # the server's workers get the database to themselves
        port = free_port()
        print(f"\ningestion: one client, {BATCH:,}-sample batches, {args.seconds:.0f} s ...")
        log = tmp / "gunicorn.log"
        bodies = build_bodies()
        with gunicorn(port, log, metrics_dir):
            if ingest(port, token, bodies, 2).errors:  # warm-up: imports, connections, caches
                sys.exit(f"the server rejected the batches:\n{log.read_text()[-3000:]}")
            run = ingest(port, token, bodies, args.seconds)
        ingest_rate = run.accepted / run.seconds
        latencies = run.latencies
        deleted = delete_samples_after(loaded_up_to)
        print(f"  ({deleted:,} ingested samples deleted again before the queries)")

        print(f"\nwindow queries: 15 min, one flag, {args.rounds} rounds x {FLAGS} flags ...")
        results = time_queries(args.rounds, loaded_until)
        overall = time_unfiltered(20, loaded_until)

        print(f"\n{'ingestion (POST /api/v1/metrics/)':<36}{'value':>12}")
        print(f"  {'batches':<34}{len(latencies):>12,}")
        print(f"  {'samples/s':<34}{ingest_rate:>12,.0f}")
        print(f"  {'batch latency p50 ms':<34}{quantile(latencies, 0.5) * 1e3:>12.1f}")
        print(f"  {'batch latency p99 ms':<34}{quantile(latencies, 0.99) * 1e3:>12.1f}")
        print(f"  {'errors / TCP connections':<34}{f'{run.errors} / {run.connections}':>12}")

        print(f"\n{'query (15 min, one flag)':<24}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}"
              f"{'samples p50':>13}{'max':>8}")  # fmt: skip
        query_ok = True
        for name in QUERIES:
            times, samples = results[name]
            query_ok &= quantile(times, 0.95) * 1e3 < TARGET_QUERY_P95_MS
            print_query(name, times, samples)
        print("all flags (no filter; not a target):")
        for name in QUERIES:
            print_query(name, *overall[name])

        print("\nload average at the end: " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        print("\ntargets:")
        print(
            f"  ingestion >= {TARGET_INGEST:,} samples/s from one client: "
            f"{verdict(ingest_rate >= TARGET_INGEST)} ({ingest_rate:,.0f})"
        )
        worst = max(quantile(results[name][0], 0.95) for name in QUERIES) * 1e3
        print(
            f"  window query p95 < {TARGET_QUERY_P95_MS:.0f} ms over {rows:,} samples: "
            f"{verdict(query_ok)} (worst p95 {worst:.2f} ms)"
        )
        if args.explain:
            for name, metric_flag in (("latency_p95", flag_key(0)), ("request_rate", flag_key(0))):
                plan = explain(name, metric_flag, loaded_until)
                print(f"\nEXPLAIN ANALYZE, {name}, {metric_flag}:\n{plan}")
        ok = ingest_rate >= TARGET_INGEST and query_ok and run.errors == 0
        connection.close()
        return 0 if ok else 1
    finally:
        if not args.keep_db:
            with contextlib.suppress(Exception):
                from django.db import connections

                connections.close_all()
            drop_database()
        with contextlib.suppress(OSError):
            for path in sorted(tmp.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            tmp.rmdir()


if __name__ == "__main__":
    sys.exit(main())
