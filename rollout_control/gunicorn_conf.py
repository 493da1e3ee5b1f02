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
