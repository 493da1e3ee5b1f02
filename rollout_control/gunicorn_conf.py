"""gunicorn settings shared by docker-compose, the quickstart and the tests."""

import os

from prometheus_client import multiprocess

workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
threads = int(os.environ.get("WEB_THREADS", "1"))
timeout = 30
graceful_timeout = 10
accesslog = os.environ.get("GUNICORN_ACCESS_LOG") or None
errorlog = "-"
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def child_exit(server: object, worker: object) -> None:
    # A dead worker's live gauges must not be summed into /metrics any more.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)


# gunicorn's control socket lives at one fixed path per user; several servers on one machine
# (tests, benchmarks, the quickstart) would fight over it, and nothing here uses it.
control_socket_disable = True


def post_worker_init(worker: object) -> None:
    # Build the snapshots before the first request, so a worker (re)started while the database
    # is briefly away still has something to serve once it comes back, without a cold request.
    try:
        from rollout_control.core.snapshots import store

        store.get("tokens")
        store.get("flags")
    except Exception as exc:  # the database may be down; the first request will retry
        worker.log.warning("snapshot warm-up failed: %s", exc)
