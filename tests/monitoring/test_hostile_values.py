"""Hostile metric input: out-of-range values are refused, values stored some other way cannot
make a window query overflow, and a flood of usage events counts once (issue 13)."""

import json
import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import IntegrityError, connection, transaction
from rest_framework.test import APIClient

from monitoring.models import MetricDefinition, MetricRollup, MetricSample, UsageEvent
from monitoring.selectors import metric_series, metric_value
from monitoring.services import events_ingest, samples_compact, samples_ingest

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
HUGE = 1e308
BOUND = 1e12


@pytest.fixture(autouse=True)
def _clock(time_machine: object) -> None:
    time_machine.move_to(NOW, tick=False)


def _good(value: str = "1") -> str:
    return f'{{"metric": "requests", "value": {value}, "labels": {{"flag": "f"}}}}'


def _post_raw(client: APIClient, values: list[str]) -> object:
    body = '{"samples": [' + ", ".join(_good(v) for v in values) + "]}"
    return client.generic("POST", "/api/v1/metrics/", body, content_type="application/json")


@pytest.mark.parametrize(
    "value",
    ["1e308", "-1e308", "NaN", "Infinity", "-Infinity", "1e400", "-1e13", "1" + "0" * 399],
    ids=["1e308", "-1e308", "NaN", "Infinity", "-Infinity", "1e400", "-1e13", "400 digits"],
)
def test_samples__value_out_of_range__400_names_item_nothing_stored(
    admin_api: APIClient, value: str
) -> None:
    response = _post_raw(admin_api, ["1", "2", "3", value, "4"])
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert set(error["fields"]) == {"samples[3].value"}
    assert "finite number" in error["fields"]["samples[3].value"][0]
    assert MetricSample.objects.count() == 0


def test_samples__at_the_bound__accepted(admin_api: APIClient) -> None:
    response = _post_raw(admin_api, ["1e12", "-1e12", "1000000000000", "0.5"])
    assert response.status_code == 201, response.content
    assert sorted(MetricSample.objects.values_list("value", flat=True)) == [
        -BOUND,
        0.5,
        BOUND,
        BOUND,
    ]


def test_samples__bound_from_setting(admin_api: APIClient, settings: object) -> None:
    settings.METRICS_MAX_ABS_VALUE = 100
    assert _post_raw(admin_api, ["100", "-100"]).status_code == 201
    response = _post_raw(admin_api, ["100.5"])
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"samples[0].value"}
    assert MetricSample.objects.count() == 2


def test_samples_ingest__huge_integer__refused_not_overflowing() -> None:
    from monitoring.exceptions import InvalidBatch

    with pytest.raises(InvalidBatch) as refused:
        samples_ingest(items=[{"metric": "requests", "value": 10**400}])
    assert set(refused.value.fields) == {"samples[0].value"}


def _store(metric: str, values: list[float], *, at: datetime | None = None, **labels: str) -> None:
    """Rows written past ingestion's checks (an older version, a hand-written INSERT)."""
    MetricSample.objects.bulk_create(
        MetricSample(
            metric=metric,
            value=value,
            recorded_at=at or NOW - timedelta(minutes=1),
            labels=labels,
            **labels,
        )
        for value in values
    )


def _define(name: str, aggregation: str, metric: str, **fields: object) -> None:
    MetricDefinition.objects.create(
        name=name, aggregation=aggregation, metric=metric, filter_labels=["flag"], **fields
    )


AGGREGATIONS = ["count", "sum", "rate", "mean", "p50", "p95", "p99"]


def test_window_queries__stored_1e308__answer_clamped_values() -> None:
    for aggregation in AGGREGATIONS:
        _define(f"big_{aggregation}", aggregation, "big")
    _store("big", [HUGE, HUGE, HUGE, -HUGE, 1.0], flag="f")
    window = timedelta(minutes=15)
    results = {a: metric_value(name=f"big_{a}", window=window) for a in AGGREGATIONS}
    assert all(r.status == "ok" for r in results.values()), results
    assert results["count"].value == 5
    assert results["sum"].value == pytest.approx(2 * BOUND + 1)
    assert results["mean"].value == pytest.approx((2 * BOUND + 1) / 5)
    assert results["rate"].value == pytest.approx((2 * BOUND + 1) / 15)
    assert results["p50"].value == BOUND
    assert results["p99"].value == pytest.approx(BOUND)
    # The same with a label filter (the flag index path).
    filtered = metric_value(name="big_sum", window=window, filters={"flag": "f"})
    assert filtered.value == pytest.approx(2 * BOUND + 1)


def test_error_rate__stored_1e308_requests__answers_instead_of_overflowing() -> None:
    _store("requests", [HUGE] * 30, flag="f")
    _store("errors", [HUGE, HUGE], flag="f")
    result = metric_value(name="error_rate", window=timedelta(minutes=5), filters={"flag": "f"})
    assert result.status == "ok"
    assert result.value == pytest.approx(2 / 30)
    assert math.isfinite(result.value)


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite stores NaN as NULL")
def test_window_queries__stored_nan_and_infinity__answer() -> None:
    _define("odd_sum", "sum", "odd")
    _define("odd_p95", "p95", "odd")
    _store("odd", [math.nan, math.inf, -math.inf, 2.0])
    window = timedelta(minutes=15)
    assert metric_value(name="odd_sum", window=window).value == pytest.approx(BOUND + 2)
    assert metric_value(name="odd_p95", window=window).status == "ok"


def test_metric_api__stored_1e308__value_and_series_answer_200(admin_api: APIClient) -> None:
    _define("big_sum", "sum", "big")
    _store("big", [HUGE, HUGE], flag="f")
    _store("big", [HUGE, HUGE], at=NOW - timedelta(hours=30), flag="f")
    value = admin_api.get("/api/v1/metrics/big_sum/?window=1h")
    assert value.status_code == 200, value.content
    assert value.json()["value"] == pytest.approx(2 * BOUND)
    series = admin_api.get("/api/v1/metrics/big_sum/series/?window=7d&step=1d")
    assert series.status_code == 200, series.content
    assert [p["value"] for p in series.json()["points"]][-2:] == [
        pytest.approx(2 * BOUND),
        pytest.approx(2 * BOUND),
    ]
    rate = admin_api.get("/api/v1/metrics/error_rate/series/?window=1h&step=15m")
    assert rate.status_code == 200


def test_compaction__stored_1e308__rolls_up_clamped_and_rollups_answer() -> None:
    _define("big_sum", "sum", "big")
    old = NOW - timedelta(days=8)
    _store("big", [HUGE, HUGE, 5.0], at=old)
    assert samples_compact(now=NOW)["samples_deleted"] == 3
    rollup = MetricRollup.objects.get()
    assert (rollup.count, rollup.total, rollup.maximum) == (3, 2 * BOUND + 5, BOUND)
    # A rollup stored some other way, with an overflowing total, is clamped too.
    MetricRollup.objects.create(
        metric="big",
        bucket_start=old - timedelta(hours=2),
        count=2,
        total=HUGE,
        minimum=HUGE,
        maximum=HUGE,
    )
    result = metric_value(name="big_sum", window=timedelta(days=9))
    assert result.status == "ok"
    assert result.value == pytest.approx(4 * BOUND + 5)


# Usage events -----------------------------------------------------------------------------------


def test_events__flood_of_one_event__accepted_and_stored_once(client_api: APIClient) -> None:
    event = {"unit": "u1", "flag": "f", "action": "exposure"}
    for _ in range(3):
        response = client_api.post("/api/v1/events/", {"events": [event] * 500}, format="json")
        assert response.status_code == 201
        assert response.json() == {"accepted": 500}
    assert UsageEvent.objects.count() == 1


def test_events__same_unit_next_utc_day__counted_again() -> None:
    event = {"unit": "u1", "flag": "f", "action": "use"}
    events_ingest(items=[event | {"timestamp": "2026-05-04T00:00:00Z"}])
    events_ingest(items=[event | {"timestamp": "2026-05-04T09:59:00+02:00"}])  # 07:59 UTC
    events_ingest(items=[event | {"timestamp": "2026-05-03T23:59:59Z"}])
    events_ingest(items=[event | {"action": "exposure"}, event | {"flag": "g"}])
    days = UsageEvent.objects.order_by("day", "action", "flag").values_list("day", "action", "flag")
    assert [(str(d), a, f) for d, a, f in days] == [
        ("2026-05-03", "use", "f"),
        ("2026-05-04", "exposure", "f"),
        ("2026-05-04", "use", "f"),
        ("2026-05-04", "use", "g"),
    ]


def test_events__unique_in_the_database__not_only_in_python() -> None:
    at = NOW - timedelta(minutes=1)
    row = {"unit": "u1", "flag": "f", "action": "use", "day": at.date()}
    UsageEvent.objects.create(occurred_at=at, **row)
    with pytest.raises(IntegrityError), transaction.atomic():
        UsageEvent.objects.create(occurred_at=at + timedelta(seconds=5), **row)


def test_adoption__flood_from_a_few_units__counts_each_unit_once() -> None:
    at = (NOW - timedelta(minutes=2)).isoformat()

    def event(unit: str, action: str) -> dict:
        return {"unit": unit, "flag": "f", "action": action, "timestamp": at}

    events_ingest(items=[event(f"u{i}", "exposure") for i in range(10)])
    events_ingest(items=[event("u1", "use")] * 1000 + [event("u1", "exposure")] * 1000)
    result = metric_value(name="adoption", window=timedelta(hours=1), filters={"flag": "f"})
    assert (result.status, result.value, result.samples) == ("ok", pytest.approx(0.1), 10)
    assert UsageEvent.objects.filter(unit="u1").count() == 2


def test_metric_series__stored_1e308__json_serialisable() -> None:
    _define("big_mean", "mean", "big")
    _store("big", [HUGE, -HUGE, HUGE])
    points = metric_series(name="big_mean", window=timedelta(hours=1), step=timedelta(minutes=30))
    json.dumps([p.result.value for p in points], allow_nan=False)
