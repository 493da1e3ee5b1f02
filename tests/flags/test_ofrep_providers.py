"""OFREP against a live server with two gunicorn workers, through the published clients.

openfeature-sdk with openfeature-provider-ofrep (it calls the single-flag endpoint), unchanged, and
the bulk endpoint's ETag/304 over raw HTTP. Which worker answered is read from the server's own
per-process Prometheus files: each worker counts what it served in `counter_<pid>.db`.
"""

import contextlib
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import mmh3
import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.contrib.provider.ofrep import OFREPProvider
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason
from prometheus_client.mmap_dict import MmapedDict

from flags import services
from rollout_control.core.actors import Actor
from rollout_control.core.services import api_token_create
from tests.processes import child_env, free_port, gunicorn, running, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SYSTEM = Actor.system("test")
EVALUATIONS = "rollout_control_flag_evaluations_total"
REQUESTS = "rollout_control_http_requests_total"
PROBES = 4  # concurrent clients: more than workers, so both workers must take requests


@dataclass(frozen=True)
class LiveServer:
    base: str
    master_pid: int
    metrics_dir: Path
    log: Path

    def counts_by_worker(self, sample: str, **labels: str) -> dict[int, float]:
        """{worker pid: value} of a counter, summed over samples matching `labels`."""
        counts: dict[int, float] = {}
        for path in self.metrics_dir.glob("counter_*.db"):
            pid = int(path.stem.rsplit("_", 1)[1])
            for key, value, _timestamp, _position in MmapedDict.read_all_values_from_file(
                str(path)
            ):
                _metric, name, key_labels, _help = json.loads(key)
                if name == sample and all(key_labels.get(k) == v for k, v in labels.items()):
                    counts[pid] = counts.get(pid, 0.0) + value
        return counts

    def workers(self) -> set[int]:
        """Pids of the master's live children (the gunicorn workers)."""
        pids = set()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError):  # a process may end while we look
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
                if parent == self.master_pid:
                    pids.add(int(stat.parent.name))
        return pids

    def log_tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]

    def diagnosis(self, answers: object) -> str:
        requests = self.counts_by_worker(REQUESTS, view="ofrep-flag")
        evaluations = {
            reason: self.counts_by_worker(EVALUATIONS, reason=reason)
            for reason in ("SPLIT", "DISABLED")
        }
        return f"requests by worker {requests}\nevaluations {evaluations}\n{answers}\n" + (
            self.log_tail()
        )


@contextlib.contextmanager
def two_worker_server(tmp_path: Path, **env: str) -> Iterator[LiveServer]:
    """gunicorn with two workers on the test database, as deployed (snapshot poller thread on)."""
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    port = free_port()
    environment = child_env(
        # tests.settings turns the poller thread off for in-process tests; a deployment has it on.
        DJANGO_SETTINGS_MODULE="rollout_control.settings",
        SNAPSHOT_POLLER_THREAD="true",
        PROMETHEUS_MULTIPROC_DIR=str(metrics_dir),
        WEB_CONCURRENCY="2",
        **env,
    )
    command = gunicorn(port)
    log = tmp_path / "gunicorn.log"
    with running(command, env=environment, log=log) as process:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", 60, process)
        yield LiveServer(base=base, master_pid=process.pid, metrics_dir=metrics_dir, log=log)


def bucket(salt: str, unit: str) -> int:
    """DESIGN.md's bucketing, written out independently of flags/evaluation.py."""
    h = mmh3.hash(f"{salt}:{unit}", 0, signed=False)
    return (h % 100) * 100 + (h // 100) % 100


def unit_for(salt: str, basis_points: int, *, on: bool) -> str:
    return next(
        unit
        for unit in (f"user-{n}" for n in range(1000))
        if (bucket(salt, unit) < basis_points) is on
    )


def admin_patch(base: str, key: str, token: str, body: dict) -> dict:
    request = urllib.request.Request(
        f"{base}/api/v1/flags/{key}/",
        data=json.dumps(body).encode(),
        method="PATCH",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
        return json.loads(response.read())


@pytest.fixture
def tokens() -> tuple[str, str]:
    """(client token, admin token); made here because transactional tests flush the roles."""
    client = api_token_create(name="app", scope="client", actor=SYSTEM)[1]
    admin = api_token_create(name="ops", scope="admin", actor=SYSTEM)[1]
    return client, admin


@pytest.fixture
def openfeature_clients() -> Iterator[Callable[[str, str], list[OpenFeatureClient]]]:
    """Makes PROBES OpenFeature clients, each bound to its own OFREPProvider."""

    def make(base: str, token: str) -> list[OpenFeatureClient]:
        clients = []
        for index in range(PROBES):
            provider = OFREPProvider(
                base,
                # A new connection per request (gunicorn's sync workers close it anyway), so the
                # kernel may hand each request to either worker.
                headers_factory=lambda: {"Authorization": f"Bearer {token}", "Connection": "close"},
            )
            api.set_provider_and_wait(provider, domain=f"probe-{index}")
            clients.append(api.get_client(f"probe-{index}"))
        return clients

    yield make
    api.shutdown()


def test_openfeature_python_provider__two_workers__evaluates_and_sees_kill_switch(
    tmp_path: Path,
    tokens: tuple[str, str],
    openfeature_clients: Callable[[str, str], list[OpenFeatureClient]],
) -> None:
    client_token, admin_token = tokens
    services.flag_create(key="new-checkout", actor=SYSTEM, rollout_percentage=50)
    services.flag_create(key="dark-mode", actor=SYSTEM, forced_on=True)
    on_unit = unit_for("new-checkout", 5000, on=True)
    off_unit = unit_for("new-checkout", 5000, on=False)

    with two_worker_server(tmp_path) as server:
        clients = openfeature_clients(server.base, client_token)
        client = clients[0]

        details = client.get_boolean_details("new-checkout", False, EvaluationContext(on_unit))
        assert (details.value, details.variant, details.reason) == (True, "on", Reason.SPLIT)
        assert details.error_code is None
        assert details.flag_metadata["percentage"] == 50
        assert details.flag_metadata["snapshotAgeSeconds"] >= 0
        details = client.get_boolean_details("new-checkout", True, EvaluationContext(off_unit))
        assert (details.value, details.variant, details.reason) == (False, "off", Reason.SPLIT)
        details = client.get_boolean_details("dark-mode", False, EvaluationContext("anyone"))
        assert (details.value, details.variant, details.reason) == (True, "on", Reason.STATIC)

        details = client.get_boolean_details("no-such-flag", True, EvaluationContext(on_unit))
        assert (details.value, details.reason) == (True, Reason.ERROR)
        assert details.error_code == ErrorCode.FLAG_NOT_FOUND

        no_key = EvaluationContext(attributes={"plan": "pro"})
        details = client.get_boolean_details("new-checkout", True, no_key)
        assert (details.value, details.reason) == (True, Reason.ERROR)
        assert details.error_code == ErrorCode.TARGETING_KEY_MISSING
        # A flag that needs no bucketing answers without a targeting key.
        assert client.get_boolean_value("dark-mode", False, no_key) is True

        context = EvaluationContext(on_unit)

        def evaluate_round(pool: ThreadPoolExecutor) -> list[Reason]:
            calls = [
                pool.submit(c.get_boolean_details, "new-checkout", False, context) for c in clients
            ]
            results = [call.result() for call in calls]
            assert all(r.error_code is None for r in results), results
            return [r.reason for r in results]

        def workers_that_served(reason: str) -> set[int]:
            return set(server.counts_by_worker(EVALUATIONS, flag="new-checkout", reason=reason))

        workers = server.workers()
        assert len(workers) == 2, f"expected two gunicorn workers, found {workers}"
        with ThreadPoolExecutor(PROBES) as pool:
            # Both workers answer (and so hold a snapshot with the flag on) before the change.
            deadline = time.monotonic() + 10
            while workers_that_served(Reason.SPLIT) != workers and time.monotonic() < deadline:
                assert set(evaluate_round(pool)) == {Reason.SPLIT}
            assert workers_that_served(Reason.SPLIT) == workers, server.log_tail()

            flag = admin_patch(server.base, "new-checkout", admin_token, {"kill_switch": True})
            assert flag["kill_switch"] is True
            patched = time.monotonic()
            answers: list[tuple[float, Reason]] = []
            # Done when each worker's own counter shows a DISABLED answer. The counters may lag
            # the answers a little, so this time is an upper bound on the propagation.
            while workers_that_served(Reason.DISABLED) != workers:
                assert time.monotonic() - patched < 5, server.diagnosis(answers)
                answers.extend((time.monotonic() - patched, r) for r in evaluate_round(pool))
            confirmed = time.monotonic() - patched
            # A worker's snapshot never goes back, so from here on every answer is DISABLED.
            after = [reason for _ in range(5) for reason in evaluate_round(pool)]

        stale = [t for t, reason in answers if reason != Reason.DISABLED]
        print(
            f"\nkill switch: last stale answer {max(stale, default=0.0):.3f}s after the PATCH "
            f"returned; both workers confirmed DISABLED after {confirmed:.3f}s "
            f"({len(answers)} answers in between)"
        )
        assert after == [Reason.DISABLED] * len(after)
        assert confirmed < 2.0
        assert server.workers() == workers, "a worker restarted during the test"


def bulk(
    base: str, token: str, context: dict, etag: str | None = None
) -> tuple[int, str | None, bytes]:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if etag:
        headers["If-None-Match"] = etag
    request = urllib.request.Request(
        f"{base}/ofrep/v1/evaluate/flags",
        data=json.dumps({"context": context}).encode(),
        method="POST",
        headers=headers,
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.headers.get("ETag"), response.read()
    except urllib.error.HTTPError as exc:  # urllib raises for 304 as well
        return exc.code, exc.headers.get("ETag"), exc.read()


def test_ofrep_bulk__two_workers__etag_304_and_new_etag_after_change(
    tmp_path: Path, tokens: tuple[str, str]
) -> None:
    client_token, admin_token = tokens
    services.flag_create(key="new-checkout", actor=SYSTEM, rollout_percentage=50)
    services.flag_create(key="dark-mode", actor=SYSTEM, forced_on=True)
    unit = unit_for("new-checkout", 5000, on=True)
    context = {"targetingKey": unit, "plan": "pro"}

    with two_worker_server(tmp_path) as server:
        workers = server.workers()
        status, etag, body = bulk(server.base, client_token, context)
        assert status == 200 and etag, (status, body)
        values = {f["key"]: (f["value"], f["reason"]) for f in json.loads(body)["flags"]}
        assert values == {"new-checkout": (True, "SPLIT"), "dark-mode": (True, "STATIC")}

        def served_304() -> set[int]:
            return set(server.counts_by_worker(REQUESTS, view="ofrep-bulk", status="304"))

        with ThreadPoolExecutor(PROBES) as pool:

            def concurrently(tag: str | None) -> list[tuple[int, str | None, bytes]]:
                calls = [
                    pool.submit(bulk, server.base, client_token, context, tag)
                    for _ in range(PROBES)
                ]
                return [call.result() for call in calls]

            # Every worker computes the same ETag for the same version and context.
            deadline = time.monotonic() + 10
            while served_304() != workers and time.monotonic() < deadline:
                assert concurrently(etag) == [(304, etag, b"")] * PROBES
            assert served_304() == workers, server.log_tail()

            # The same context with its keys in another order is the same context.
            reordered = {"plan": "pro", "targetingKey": unit}
            assert bulk(server.base, client_token, reordered, etag)[0] == 304
            other_status, other_etag, _ = bulk(server.base, client_token, {"targetingKey": "x"})
            assert other_status == 200 and other_etag != etag
            assert bulk(server.base, client_token, context, '"stale", ' + etag)[0] == 304

            admin_patch(server.base, "dark-mode", admin_token, {"kill_switch": True})
            patched = time.monotonic()
            before_200 = server.counts_by_worker(REQUESTS, view="ofrep-bulk", status="200")
            while True:
                answers = concurrently(etag)
                now_200 = server.counts_by_worker(REQUESTS, view="ofrep-bulk", status="200")
                moved = {pid for pid in workers if now_200.get(pid, 0) > before_200.get(pid, 0)}
                if moved == workers and all(a[0] == 200 for a in answers):
                    break
                assert time.monotonic() - patched < 2, (answers, moved, server.log_tail())

        new_etags = {tag for _, tag, _ in answers}
        assert len(new_etags) == 1 and etag not in new_etags, answers
        (new_etag,) = new_etags
        values = {f["key"]: (f["value"], f["reason"]) for f in json.loads(answers[0][2])["flags"]}
        assert values == {"new-checkout": (True, "SPLIT"), "dark-mode": (False, "DISABLED")}
        assert bulk(server.base, client_token, context, new_etag)[:2] == (304, new_etag)
