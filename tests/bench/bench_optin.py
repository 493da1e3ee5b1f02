"""OFREP latency while clients opt units in; not collected by pytest (the name is not test_*.py).

Run from the repository root:  .venv/bin/python tests/bench/bench_optin.py [--seconds 20]

Sets everything up itself, like bench_ofrep.py (whose database, seed and gunicorn helpers it
uses): the 50 flags and 5 cohorts of that benchmark, plus a cohort of 200,000 members that three
flags target and an opt-in cohort that two flags target. Gunicorn (the project's config, 2
workers) is driven by 8 keep-alive client threads asking OFREP for single flags, first idle, then
while a ninth thread opts a new unit in 10 times a second with the same client token. Each opt-in
changes the configuration every process serves, so each process must take it in: the figure that
matters is OFREP's p99 under the opt-ins against its idle p99 (issue 14 point 3: within 2x).
"""

from __future__ import annotations

import argparse
import http.client
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import bench_ofrep as base

BIG = 200_000
OPT_INS_PER_SECOND = 10
CLIENTS = 8
BIG_FLAGS = ("big-1", "big-2", "big-3")
OPT_IN_FLAGS = ("optin-1", "optin-2")


def seed_big() -> None:
    """The 200,000-member cohort, the opt-in cohort and the flags that target them."""
    sys.path.insert(0, str(base.ROOT))
    import django

    django.setup()
    from decimal import Decimal

    from flags.services import CohortRuleInput, cohort_create, cohort_members_add, flag_create
    from rollout_control.core.actors import Actor

    actor = Actor.system("bench")
    cohort_create(key="big", actor=actor)
    units = [f"member-{n}" for n in range(BIG)]
    for start in range(0, BIG, 50_000):
        cohort_members_add(key="big", units=units[start : start + 50_000], actor=actor)
    cohort_create(key="beta-optin", actor=actor, opt_in=True)
    for key in BIG_FLAGS:
        rules = [CohortRuleInput("big", Decimal(100))]
        flag_create(key=key, actor=actor, rollout_percentage=20, cohort_rules=rules)
    for key in OPT_IN_FLAGS:
        rules = [CohortRuleInput("beta-optin", Decimal(100))]
        flag_create(key=key, actor=actor, rollout_percentage=5, cohort_rules=rules)


class Client(threading.Thread):
    def __init__(self, port: int, token: str, index: int, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port, self.token, self.index, self.stop = port, token, index, stop
        self.latencies: list[float] = []
        self.errors = 0
        self.statuses: dict[int, int] = {}

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"}
        keys = [*BIG_FLAGS, *OPT_IN_FLAGS]  # every answer is a 200 (they bucket targetingKey)
        n = self.index
        while not self.stop.is_set():
            n += CLIENTS
            unit = f"member-{n * 7919 % (BIG * 2)}"  # half of them members of the big cohort
            body = json.dumps({"context": {"targetingKey": unit}})
            started = time.perf_counter()
            try:
                connection.request(
                    "POST", f"/ofrep/v1/evaluate/flags/{keys[n % len(keys)]}", body, headers
                )
                response = connection.getresponse()
                response.read()
                ok = response.status == 200
                self.statuses[response.status] = self.statuses.get(response.status, 0) + 1
            except OSError:
                ok = False
                connection.close()
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            self.latencies.append(time.perf_counter() - started)
            self.errors += not ok


def opt_ins(port: int, token: str, stop: threading.Event, sent: list[int]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    n, started = 0, time.monotonic()
    while not stop.is_set():
        n += 1
        body = json.dumps({"unit": f"opt-{n}"})
        connection.request("POST", "/api/v1/cohorts/beta-optin/opt-in/", body, headers)
        response = connection.getresponse()
        response.read()
        if response.status != 200:
            sys.exit(f"opt-in answered {response.status}: {response.read()[:300]!r}")
        sent.append(n)
        delay = started + n / OPT_INS_PER_SECOND - time.monotonic()
        if delay > 0:
            time.sleep(delay)


def measure(port: int, token: str, seconds: float, with_opt_ins: bool) -> dict[str, float]:
    stop = threading.Event()
    clients = [Client(port, token, i, stop) for i in range(CLIENTS)]
    sent: list[int] = []
    writer = threading.Thread(target=opt_ins, args=(port, token, stop, sent), daemon=True)
    for client in clients:
        client.start()
    if with_opt_ins:
        writer.start()
    time.sleep(seconds)
    stop.set()
    for client in clients:
        client.join()
    if with_opt_ins:
        writer.join()
    latencies = sorted(x for c in clients for x in c.latencies)
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "rps": len(latencies) / seconds,
        "p50_ms": quantiles[49] * 1000,
        "p95_ms": quantiles[94] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "max_ms": latencies[-1] * 1000,
        "errors": sum(c.errors for c in clients),
        "statuses": {
            s: sum(c.statuses.get(s, 0) for c in clients)
            for s in {599}.union(*(c.statuses for c in clients))
        },
        "opt_ins_per_s": len(sent) / seconds,
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--seed-big", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.seed_big:
        seed_big()
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        env = base.server_env(Path(tmp))
        env["OPT_IN_RATE_PER_TOKEN"] = "1000"  # the benchmark's one token stands for many apps
        print("preparing the database (200,000 members take a minute) ...", flush=True)
        token = base.prepare(env)
        import subprocess

        subprocess.run([sys.executable, __file__, "--seed-big"], cwd=base.ROOT, env=env, check=True)
        port = base.free_port()
        try:
            with base.gunicorn(env, port, Path(tmp) / "web.log"):
                measure(port, token, 3, with_opt_ins=False)  # warm both workers
                idle = measure(port, token, args.seconds, with_opt_ins=False)
                busy = measure(port, token, args.seconds, with_opt_ins=True)
                again = measure(port, token, args.seconds, with_opt_ins=False)
        finally:
            base.drop_database()
    print(f"\nOFREP single flag, {CLIENTS} keep-alive clients, {base.WORKERS} gunicorn workers,")
    print(f"a {BIG:,}-member cohort; {args.seconds:.0f} s per phase\n")
    header = ("req/s", 8), ("p50 ms", 9), ("p95 ms", 9), ("p99 ms", 9), ("max ms", 9)
    print(f"{'phase':<24}" + "".join(f"{t:>{w}}" for t, w in header) + f"{'opt-ins/s':>11}")
    for name, row in (("idle", idle), ("10 opt-ins/s", busy), ("idle again", again)):
        print(
            f"{name:<24}{row['rps']:>8.0f}{row['p50_ms']:>9.1f}{row['p95_ms']:>9.1f}"
            f"{row['p99_ms']:>9.1f}{row['max_ms']:>9.1f}{row['opt_ins_per_s']:>11.1f}"
        )
    ratio = busy["p99_ms"] / idle["p99_ms"]
    errors = idle["errors"] + busy["errors"] + again["errors"]
    print(f"\np99 under opt-ins / idle p99: {ratio:.2f} (target <= 2.0); errors: {errors}")
    if errors:
        print("statuses:", idle["statuses"], busy["statuses"], again["statuses"])
    return 0 if ratio <= 2.0 and errors == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
