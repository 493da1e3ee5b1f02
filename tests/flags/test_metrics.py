"""Evaluation counts: tallied in memory, in /metrics within a second (flags/metrics.py)."""

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.test import Client
from prometheus_client import CollectorRegistry, Counter
from prometheus_client.parser import text_string_to_metric_families

from flags import metrics, services
from flags.metrics import EvaluationTally
from tests.flags.conftest import SYSTEM

EVALUATIONS = "rollout_control_flag_evaluations_total"

Labels = tuple[str, str, str]


def _counts(client: Client) -> dict[Labels, float]:
    """{(flag, variant, reason): value} of the evaluations counter, read from /metrics."""
    text = client.get("/metrics").content.decode()
    return {
        (s.labels["flag"], s.labels["variant"], s.labels["reason"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == EVALUATIONS
    }


def _new(after: dict[Labels, float], before: dict[Labels, float]) -> dict[Labels, float]:
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


@pytest.mark.django_db
def test_ofrep_evaluations__single_and_bulk__in_metrics_by_label_within_a_second(
    client: Client, client_token: str
) -> None:
    services.flag_create(key="m-on", actor=SYSTEM, forced_on=True)
    services.flag_create(key="m-off", actor=SYSTEM, rollout_percentage=0)
    services.flag_create(key="m-killed", actor=SYSTEM, kill_switch=True)
    metrics.evaluations.flush()  # what earlier tests tallied must not land in this test's window
    before = _counts(client)
    auth = {"HTTP_AUTHORIZATION": f"Bearer {client_token}"}
    body = json.dumps({"context": {"targetingKey": "u-1"}})
    for _ in range(3):
        client.post("/ofrep/v1/evaluate/flags", body, "application/json", **auth)
    client.post("/ofrep/v1/evaluate/flags/m-on", body, "application/json", **auth)
    client.post("/ofrep/v1/evaluate/flags/no-such", body, "application/json", **auth)
    expected = {
        ("m-on", "on", "STATIC"): 4,
        ("m-off", "off", "DEFAULT"): 3,
        ("m-killed", "off", "DISABLED"): 3,
        ("(unknown)", "off", "ERROR"): 1,
    }

    sent = time.monotonic()
    while (new := _new(_counts(client), before)) != expected and time.monotonic() - sent < 1:
        time.sleep(0.05)

    assert new == expected


def test_evaluation_tally__threads_adding_at_once__flush_counts_each_exactly_once() -> None:
    registry = CollectorRegistry()
    counter = Counter(
        "tally_test", "Test counter.", ["flag", "variant", "reason"], registry=registry
    )
    tally = EvaluationTally(counter, interval=3600)  # flushed by hand below, not by the thread
    outcomes = [("a", "on", "SPLIT"), ("b", "off", "SPLIT"), ("a", "on", "SPLIT")]

    def add_many() -> None:
        for _ in range(2_000):
            tally.add(outcomes)

    with ThreadPoolExecutor(4) as pool:
        for _ in range(4):
            pool.submit(add_many)
            tally.flush()  # flushing while others add must lose nothing
    tally.flush()

    def value(flag: str, variant: str) -> float | None:
        labels = {"flag": flag, "variant": variant, "reason": "SPLIT"}
        return registry.get_sample_value("tally_test_total", labels)

    assert value("a", "on") == 4 * 2_000 * 2
    assert value("b", "off") == 4 * 2_000
    assert tally.flush() == 0
