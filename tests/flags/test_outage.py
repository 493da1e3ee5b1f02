"""Flag evaluation through Redis and PostgreSQL outages (issue 3 point 3, issue 9 points 7 and 8).

gunicorn (two workers, the deployed settings: snapshot poller thread on, DEBUG off) runs against a
throwaway PostgreSQL cluster and a throwaway Redis of its own (tests/outage.py); the tests stop
those servers, never the shared ones. While a server is down, OFREP keeps answering from each
worker's last snapshot; when it is back, everything recovers without restarting gunicorn.
"""

import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mmh3
import pytest

from tests.outage import (
    Reply,
    ThrowawayServer,
    Web,
    call,
    create_token,
    gunicorn,
    manage,
    service_env,
    throwaway_postgres,
    throwaway_redis,
)

pytestmark = pytest.mark.slow

UNITS = [f"user-{n}" for n in range(40)]
# Nothing listens on the discard port: migrate and create_api_token need no Redis.
NO_REDIS = "redis://127.0.0.1:9/0"


@dataclass
class Stack:
    postgres: ThrowawayServer
    admin_token: str
    client_token: str

    def env(self, redis_url: str) -> dict[str, str]:
        return service_env(database_url=self.postgres.url, redis_url=redis_url)


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """A throwaway cluster, migrated, with an admin and a client token (shared by the module)."""
    with throwaway_postgres() as postgres:
        env = service_env(database_url=postgres.url, redis_url=NO_REDIS)
        manage("migrate", "--noinput", env=env)
        yield Stack(
            postgres=postgres,
            admin_token=create_token("admin", "outage-admin", env=env),
            client_token=create_token("client", "outage-app", env=env),
        )


def expected(key: str, unit: str, percentage: int) -> bool:
    """DESIGN.md's bucketing (the salt defaults to the key)."""
    h = mmh3.hash(f"{key}:{unit}", seed=0, signed=False)
    return (h % 100) * 100 + (h // 100) % 100 < percentage * 100


def single(base: str, token: str, key: str, unit: str) -> Reply:
    return call(
        "POST",
        f"{base}/ofrep/v1/evaluate/flags/{key}",
        {"context": {"targetingKey": unit}},
        token=token,
        timeout=5,
    )


def bulk(base: str, token: str, unit: str) -> Reply:
    return call(
        "POST",
        f"{base}/ofrep/v1/evaluate/flags",
        {"context": {"targetingKey": unit}},
        token=token,
        timeout=5,
    )


def check(reply: Reply, key: str, unit: str, percentage: int) -> tuple[str | None, float]:
    """(what is wrong with an OFREP answer or None, its snapshot age)."""
    if reply.status != 200 or not isinstance(reply.body, dict):
        return f"{reply.status} {reply.error or reply.text[:300]}", -1.0
    flag = reply.body
    if "flags" in flag:
        flag = next((f for f in flag["flags"] if f.get("key") == key), None)
        if flag is None:
            return f"{key} missing from bulk answer", -1.0
    if flag.get("value") is not expected(key, unit, percentage):
        return f"{key} for {unit}: {flag}", -1.0
    return None, float(flag["metadata"]["snapshotAgeSeconds"])


def evaluate_many(
    base: str, token: str, key: str, percentage: int, rounds: int
) -> tuple[list[str], list[float], float]:
    """`rounds` single and `rounds` bulk evaluations, four at a time (so both workers serve):
    (problems, snapshot ages, slowest answer in seconds)."""

    def one(n: int) -> tuple[str | None, float, float]:
        unit = UNITS[n % len(UNITS)]
        reply = single(base, token, key, unit) if n % 2 else bulk(base, token, unit)
        problem, age = check(reply, key, unit, percentage)
        return problem, age, reply.seconds

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(2 * rounds)))
    problems = [problem for problem, _, _ in results if problem]
    ages = [age for problem, age, _ in results if not problem]
    return problems, ages, max(seconds for _, _, seconds in results)


def wait_until(what: str, condition: Callable[[], bool], timeout: float) -> float:
    """Polls `condition` until it holds; returns how long that took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not within {timeout}s")
        time.sleep(0.1)
    return time.monotonic() - started


def all_fresh(web: Web, token: str, key: str, percentage: int) -> bool:
    """40 answers, four at a time (both workers), all right and under 1 s old."""
    problems, ages, _ = evaluate_many(web.url, token, key, percentage, rounds=20)
    return not problems and max(ages) < 1.0


def create_flag(web: Web, stack: Stack, key: str, percentage: int) -> None:
    reply = call(
        "POST",
        f"{web.url}/api/v1/flags/",
        {"key": key, "rollout_percentage": percentage, "reason": "outage test"},
        token=stack.admin_token,
    )
    assert reply.status == 201, reply.text
    # Warm: both workers have evaluated it, so both hold a snapshot with it (their pollers pick
    # a change up within 0.5 s). A worker that never built one has nothing to serve in an outage.
    wait_until(
        f"{key} served fresh by both workers",
        lambda: (
            all_fresh(web, stack.client_token, key, percentage)
            and len(web.workers_that_counted(key)) >= 2
        ),
        15,
    )


def test_redis_stopped__ofrep_answers_from_snapshot__readyz_names_broker(
    stack: Stack, tmp_path: Path
) -> None:
    key = "outage-redis"
    with (
        throwaway_redis() as redis,
        gunicorn(stack.env(redis.url), log=tmp_path / "gunicorn.log") as web,
    ):
        create_flag(web, stack, key, 50)
        assert call("GET", f"{web.url}/readyz").status == 200

        with redis.outage():
            ready = call("GET", f"{web.url}/readyz")
            assert ready.status == 503, ready.text
            assert ready.body["failed"] == ["broker"], ready.body
            assert ready.body["checks"]["database"] == "ok"
            assert ready.body["checks"]["broker"].startswith("error:")

            problems, _, slowest = evaluate_many(web.url, stack.client_token, key, 50, rounds=100)
            assert problems == [], f"{len(problems)} of 200 failed: {problems[:5]}"
            # Nothing on the evaluation path waits for Redis (its connect timeout is 1 s).
            assert slowest < 1.0, slowest

        # Back up: ready again, without restarting gunicorn.
        wait_until(
            "readyz 200 after Redis is back",
            lambda: call("GET", f"{web.url}/readyz").status == 200,
            15,
        )
        assert all_fresh(web, stack.client_token, key, 50)


def test_postgres_stopped__ofrep_serves_stale_snapshot__writes_503__recovers(
    stack: Stack, tmp_path: Path
) -> None:
    key = "outage-postgres"
    flag_url = f"/api/v1/flags/{key}/"
    with (
        throwaway_redis() as redis,
        gunicorn(stack.env(redis.url), log=tmp_path / "gunicorn.log") as web,
    ):
        create_flag(web, stack, key, 50)

        with stack.postgres.outage():
            stopped_at = time.monotonic()
            problems, _, _ = evaluate_many(web.url, stack.client_token, key, 50, rounds=20)
            assert problems == [], problems[:5]
            # Each worker's last successful check was at most 0.5 s before the stop.
            wait_until("2.6 s into the outage", lambda: time.monotonic() - stopped_at > 2.6, 5)
            problems, ages, slowest = evaluate_many(
                web.url, stack.client_token, key, 50, rounds=100
            )
            assert problems == [], f"{len(problems)} of 200 failed: {problems[:5]}"
            assert min(ages) > 2.0, sorted(ages)[:5]
            assert slowest < 1.0, slowest

            ready = call("GET", f"{web.url}/readyz")
            assert ready.status == 503, ready.text
            assert "database" in ready.body["failed"], ready.body

            write = call(
                "PATCH", web.url + flag_url, {"rollout_percentage": 100}, token=stack.admin_token
            )
            assert write.status == 503, f"{write.status} {write.text[:1000]}"
            assert write.headers.get("Content-Type", "").startswith("application/json")
            error = write.body["error"]
            assert set(error) == {"code", "message", "fields"}, write.body
            assert error["message"] and isinstance(error["fields"], dict)
            assert "Traceback" not in write.text and "psycopg" not in write.text, write.text
            assert write.seconds < 5, write.seconds
            # Evaluation is unaffected by the failed write.
            problems, _, _ = evaluate_many(web.url, stack.client_token, key, 50, rounds=10)
            assert problems == [], problems[:5]

        # Back up: fresh snapshots again, without restarting gunicorn.
        recovered = wait_until(
            "snapshot age under 1 s on both workers",
            lambda: all_fresh(web, stack.client_token, key, 50),
            10,
        )
        assert recovered < 5, recovered
        write = call(
            "PATCH", web.url + flag_url, {"rollout_percentage": 100}, token=stack.admin_token
        )
        assert write.status == 200, write.text
        wait_until(
            "the change made after recovery, on both workers",
            lambda: all_fresh(web, stack.client_token, key, 100),
            5,
        )


def test_started_while_postgres_down__ofrep_503_in_its_shape__then_serves(
    stack: Stack, tmp_path: Path
) -> None:
    """A worker with no snapshot yet cannot answer from one: it says so (503, OFREP's shape,
    Retry-After) instead of failing with a 500, and serves as soon as the database is back."""
    with (
        throwaway_redis() as redis,
        stack.postgres.outage(),
        gunicorn(stack.env(redis.url), log=tmp_path / "gunicorn.log") as web,
    ):
        url = f"{web.url}/ofrep/v1/evaluate/flags"
        reply = call("POST", url, {"context": {}}, token=stack.client_token)
        assert reply.status == 503, reply.text
        assert reply.body["errorCode"] == "GENERAL" and reply.body["errorDetails"]
        assert reply.headers["Retry-After"] == "5"
        stack.postgres.start()
        wait_until(
            "ofrep answers",
            lambda: call("POST", url, {}, token=stack.client_token).status == 200,
            15,
        )
