"""The Prometheus provider against a real Prometheus server (Debian's `prometheus` package),
started on a loopback port, scraping a small target this test controls."""

import shutil
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import override_settings
from prometheus_client import CollectorRegistry, Gauge, start_http_server

from monitoring.models import MetricDefinition
from monitoring.selectors import metric_value
from tests.processes import free_port, running, wait_http

pytestmark = [pytest.mark.slow, pytest.mark.django_db]
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def target() -> Iterator[tuple[int, Gauge]]:
    registry = CollectorRegistry()
    errors = Gauge(
        "rollout_test_errors", "Errors seen by the test target", ["flag"], registry=registry
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    yield port, errors
    server.shutdown()
    thread.join(timeout=5)


@pytest.fixture
def prometheus(tmp_path: Path, target: tuple[int, Gauge]) -> Iterator[str]:
    target_port, _ = target
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        f"  - job_name: target\n    static_configs:\n      - targets: ['127.0.0.1:{target_port}']\n"
    )
    port = free_port()
    command = [
        PROMETHEUS,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with running(
        command, env={"PATH": "/usr/bin:/bin"}, log=tmp_path / "prometheus.log"
    ) as process:
        url = f"http://127.0.0.1:{port}"
        wait_http(f"{url}/-/ready", 60, process)
        yield url


def _wait_for(name: str, flag: str, expected: float, timeout: float = 30) -> float | None:
    deadline = time.monotonic() + timeout
    value = None
    while time.monotonic() < deadline:
        value = metric_value(name=name, window=timedelta(minutes=5), filters={"flag": flag}).value
        if value == expected:
            return value
        time.sleep(0.5)
    return value


def test_prometheus_provider__instant_query__follows_the_target(
    prometheus: str, target: tuple[int, Gauge]
) -> None:
    _, errors = target
    errors.labels("checkout").set(7)
    errors.labels("search").set(2)
    MetricDefinition.objects.create(
        name="prom_errors",
        source="prometheus",
        aggregation="value",
        query='max_over_time(rollout_test_errors{flag="$flag"}[$window])',
        filter_labels=["flag"],
    )
    with override_settings(PROMETHEUS_URL=prometheus):
        assert _wait_for("prom_errors", "checkout", 7.0) == 7.0
        assert (
            metric_value(
                name="prom_errors", window=timedelta(minutes=5), filters={"flag": "search"}
            ).value
            == 2
        )
        errors.labels("checkout").set(11)
        assert _wait_for("prom_errors", "checkout", 11.0) == 11.0
        missing = metric_value(
            name="prom_errors", window=timedelta(minutes=5), filters={"flag": "none"}
        )
        assert missing.status == "insufficient_data"
        assert missing.value is None


def test_prometheus_provider__bad_promql__error_status(prometheus: str) -> None:
    MetricDefinition.objects.create(
        name="prom_bad", source="prometheus", aggregation="value", query="sum("
    )
    with override_settings(PROMETHEUS_URL=prometheus):
        result = metric_value(name="prom_bad", window=timedelta(minutes=5))
    assert result.status == "error"
    assert "parse error" in result.detail


def test_prometheus_provider__server_down__error_status() -> None:
    MetricDefinition.objects.create(
        name="prom_any", source="prometheus", aggregation="value", query="up"
    )
    with override_settings(PROMETHEUS_URL=f"http://127.0.0.1:{free_port()}"):
        result = metric_value(name="prom_any", window=timedelta(minutes=5))
    assert result.status == "error"
    assert result.value is None
