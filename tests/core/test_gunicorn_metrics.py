"""/metrics under gunicorn with two workers: counters are summed across worker processes."""

import re
import urllib.request

import pytest

from tests.processes import child_env, free_port, gunicorn, running, wait_http


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_metrics__two_gunicorn_workers__counter_summed(tmp_path: object) -> None:
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    port = free_port()
    env = child_env(PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), WEB_CONCURRENCY="2")
    command = gunicorn(port)
    with running(command, env=env, log=tmp_path / "gunicorn.log") as server:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", 60, server)
        # Each request on a new connection; both workers accept from the same socket.
        for _ in range(200):
            _get(f"{base}/healthz")
        pids = {p.name.split("_")[-1] for p in metrics_dir.glob("counter_*.db")}
        text = _get(f"{base}/metrics")
    assert len(pids) >= 2, f"expected two workers to have counted, saw files for {pids}"
    match = re.search(
        r'rollout_control_http_requests_total\{method="GET",status="200",view="healthz"\} (\S+)',
        text,
    )
    assert match, text[:2000]
    # 200 requests plus the one wait_http made (maybe more while it was polling).
    assert 201 <= float(match.group(1)) <= 230
