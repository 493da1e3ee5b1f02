import re
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from monitoring import providers
from monitoring.exceptions import InvalidQuery
from monitoring.models import MetricDefinition
from monitoring.providers import MetricResult, percentile, register_provider
from monitoring.selectors import metric_series, metric_value
from monitoring.services import events_ingest, samples_ingest
from monitoring.windows import WINDOW_PATTERN, parse_window

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 5, 4, 10, 0, tzinfo=UTC)
LATENCIES = [120.0, 80.0, 300.0, 95.0, 2500.0, 101.0, 99.0, 130.0, 110.0, 90.0]


@pytest.fixture(autouse=True)
def _clock(time_machine: object) -> None:
    time_machine.move_to(NOW, tick=False)


def _push(metric: str, values: list[float], *, minutes_ago: float = 1, **labels: str) -> None:
    at = (NOW - timedelta(minutes=minutes_ago)).isoformat()
    samples_ingest(
        items=[{"metric": metric, "value": v, "timestamp": at, "labels": labels} for v in values]
    )


def _define(name: str, aggregation: str, metric: str = "", **fields: object) -> None:
    MetricDefinition.objects.create(
        name=name, aggregation=aggregation, metric=metric, filter_labels=["flag", "plan"], **fields
    )


def test_aggregations__match_hand_computed_answers() -> None:
    _push("latency_ms", LATENCIES, flag="f")
    _push("latency_ms", [10_000.0], flag="other")
    _push("latency_ms", [7.0], minutes_ago=20, flag="f")  # outside a 15-minute window
    for name, aggregation in [
        ("n", "count"),
        ("s", "sum"),
        ("r", "rate"),
        ("m", "mean"),
        ("p50", "p50"),
        ("p95", "p95"),
        ("p99", "p99"),
    ]:
        _define(f"lat_{name}", aggregation, "latency_ms")
    window, flag = timedelta(minutes=15), {"flag": "f"}
    total = sum(LATENCIES)  # 3625
    ordered = sorted(LATENCIES)  # 80 90 95 99 101 110 120 130 300 2500

    def value(name: str) -> float:
        return metric_value(name=name, window=window, filters=flag).value

    assert value("lat_n") == 10
    assert value("lat_s") == total
    assert value("lat_r") == pytest.approx(total / 15)
    assert value("lat_m") == pytest.approx(362.5)
    assert value("lat_p50") == pytest.approx((101 + 110) / 2)
    # p95: rank 0.95 * 9 = 8.55 -> 300 + 0.55 * (2500 - 300)
    assert value("lat_p95") == pytest.approx(300 + 0.55 * 2200)
    assert value("lat_p99") == pytest.approx(300 + 0.91 * 2200)
    assert ordered[0] == 80
    assert metric_value(name="lat_n", window=window).value == 11  # no filter: both flags
    assert metric_value(name="lat_n", window=timedelta(minutes=30), filters=flag).value == 11


def test_percentile__python_fallback_equals_postgres() -> None:
    _push("latency_ms", LATENCIES)
    _define("lat_p95", "p95", "latency_ms")
    postgres = metric_value(name="lat_p95", window=timedelta(minutes=5)).value
    assert percentile(LATENCIES, 0.95) == pytest.approx(postgres)


def test_ratio__errors_over_requests() -> None:
    _push("requests", [100, 100, 100], flag="f")
    _push("errors", [1, 2], flag="f")
    _push("errors", [50], flag="g")
    result = metric_value(name="error_rate", window=timedelta(minutes=15), filters={"flag": "f"})
    assert result.status == "insufficient_data"  # the seeded definition needs 20 request samples
    _push("requests", [10] * 17, flag="f")
    result = metric_value(name="error_rate", window=timedelta(minutes=15), filters={"flag": "f"})
    assert result.status == "ok"
    assert result.value == pytest.approx(3 / 470)
    assert result.samples == 20


def test_insufficient_data__below_min_samples__no_number() -> None:
    _define("lat_m", "mean", "latency_ms", min_samples=5)
    _push("latency_ms", [1, 2, 3, 4])
    result = metric_value(name="lat_m", window=timedelta(minutes=5))
    assert (result.value, result.status, result.samples) == (None, "insufficient_data", 4)
    _push("latency_ms", [5])
    assert metric_value(name="lat_m", window=timedelta(minutes=5)).value == 3


def test_no_samples__min_samples_zero__sum_is_zero_and_mean_insufficient() -> None:
    # Regression (found by tests/test_fuzz_api.py): a sum with min_samples=0, such as the seeded
    # data_corruption, over an empty window divided by zero computing an unused mean -> 500.
    _define("lat_s", "sum", "latency_ms", min_samples=0)
    _define("lat_m", "mean", "latency_ms", min_samples=0)
    window = timedelta(minutes=5)
    assert metric_value(name="lat_s", window=window).value == 0
    assert metric_value(name="data_corruption", window=window).status == "ok"
    result = metric_value(name="lat_m", window=window)
    assert (result.value, result.status, result.samples) == (None, "insufficient_data", 0)


def test_adoption__share_of_exposed_units_that_used() -> None:
    at = (NOW - timedelta(minutes=2)).isoformat()
    exposures = [
        {"unit": f"u{i}", "flag": "f", "action": "exposure", "timestamp": at} for i in range(10)
    ]
    uses = [
        {"unit": u, "flag": "f", "action": "use", "timestamp": at}
        for u in ["u1", "u2", "u3", "u1", "stranger"]
    ]
    events_ingest(items=exposures + exposures[:3] + uses)
    result = metric_value(name="adoption", window=timedelta(hours=1), filters={"flag": "f"})
    assert result.status == "ok"
    assert result.value == pytest.approx(3 / 10)
    assert result.samples == 10


def test_series__bucketed_oldest_first() -> None:
    _define("req_n", "count", "requests")
    _push("requests", [1], minutes_ago=50)
    _push("requests", [1, 1], minutes_ago=10)
    points = metric_series(name="req_n", window=timedelta(hours=1), step=timedelta(minutes=20))
    assert [p.result.value for p in points] == [1, None, 2]
    assert [p.result.status for p in points] == ["ok", "insufficient_data", "ok"]
    assert points[0].start == NOW - timedelta(hours=1)
    assert [p.result.samples for p in points] == [1, 0, 2]


def test_provider_registry__app_registers_its_own_source() -> None:
    class UserCount:
        def evaluate(
            self, definition: MetricDefinition, *, start: datetime, end: datetime, filters: dict
        ) -> MetricResult:
            count = (
                get_user_model().objects.filter(date_joined__gt=start, date_joined__lte=end).count()
            )
            return MetricResult(value=float(count), samples=count, status="ok")

    register_provider("users", UserCount())
    try:
        MetricDefinition.objects.create(name="signups", aggregation="value", source="users")
        get_user_model().objects.create_user("a")
        get_user_model().objects.create_user("b")
        assert metric_value(name="signups", window=timedelta(minutes=1)).value == 2
        assert "users" in providers.provider_names()
    finally:
        providers._providers.pop("users")


def test_api__value_and_series(admin_api: APIClient) -> None:
    _push("requests", [5] * 30, flag="f")
    _push("errors", [1] * 3, flag="f")
    body = admin_api.get("/api/v1/metrics/error_rate/?window=15m&flag=f").json()
    assert body["status"] == "ok" and body["value"] == pytest.approx(3 / 150)
    assert body["filters"] == {"flag": "f"} and body["window"] == "15m"
    series = admin_api.get("/api/v1/metrics/request_rate/series/?window=1h&step=15m").json()
    assert len(series["points"]) == 4
    assert series["points"][-1]["value"] == pytest.approx(150 / 15)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("window=0m", "window"),
        ("window=91d", "window"),
        ("window=soon", "window"),
        ("window=1h&step=0m", "step"),
        ("window=1h&region=eu", "region"),
    ],
)
def test_api__bad_query__400_naming_field(admin_api: APIClient, query: str, field: str) -> None:
    path = (
        "/api/v1/metrics/request_rate/series/"
        if "step" in query
        else "/api/v1/metrics/request_rate/"
    )
    response = admin_api.get(f"{path}?{query}")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]


def test_api__unknown_metric__404(admin_api: APIClient) -> None:
    # The metric is the resource the path names: 404, like any other path that names nothing.
    response = admin_api.get("/api/v1/metrics/nope/?window=15m")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "unknown_metric"


@pytest.mark.parametrize(
    "window",
    ["15m", "90d", "2160h", "129600m", "7776000s", "0m", "91d", "2161h", "015m", " 5m", "5m\n",
     "5 m", "1.5h", "٣m", "", "9999999999d"],
)  # fmt: skip
def test_window_pattern__published_in_schema__accepts_what_parse_window_accepts(
    window: str,
) -> None:
    accepted = True
    try:
        parse_window(window)
    except InvalidQuery:
        accepted = False
    # The schema's pattern is ECMA-262: `$` is the end of the text (Python's fullmatch).
    assert accepted == bool(re.fullmatch(WINDOW_PATTERN, window))


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("window=15m&window=1h", "window"),
        ("flag=a%00b", "flag"),
    ],
)
def test_api__repeated_or_nul_query_value__400_naming_it(
    admin_api: APIClient, query: str, field: str
) -> None:
    response = admin_api.get(f"/api/v1/metrics/error_rate/?{query}")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]


def test_api__client_token_cannot_read_metrics(client_api: APIClient) -> None:
    assert client_api.get("/api/v1/metrics/error_rate/").status_code == 403


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "aggregation": "median", "metric": "m"}, "aggregation"),
        ({"name": "x", "aggregation": "mean", "metric": "m", "source": "astrology"}, "source"),
        ({"name": "x", "aggregation": "ratio", "metric": "m"}, "denominator"),
        ({"name": "x", "aggregation": "value", "source": "prometheus"}, "query"),
        ({"name": "bad name", "aggregation": "mean", "metric": "m"}, "name"),
        ({"name": "x\n", "aggregation": "mean", "metric": "m"}, "name"),
        ({"name": "x", "aggregation": "mean", "metric": "m", "min_samples": "3"}, "min_samples"),
    ],
)
def test_definition_api__bad_input__400_nothing_created(
    admin_api: APIClient, body: dict, field: str
) -> None:
    before = MetricDefinition.objects.count()
    response = admin_api.post("/api/v1/metric-definitions/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert MetricDefinition.objects.count() == before


def test_definition_api__name_taken__400_nothing_created(admin_api: APIClient) -> None:
    before = MetricDefinition.objects.count()
    body = {"name": "error_rate", "aggregation": "mean", "metric": "m"}
    response = admin_api.post("/api/v1/metric-definitions/", body, format="json")
    assert response.status_code == 400, response.json()
    assert response.json()["error"]["code"] == "duplicate_name"
    assert "name" in response.json()["error"]["fields"]
    assert MetricDefinition.objects.count() == before


def test_definition_api__create_then_query(admin_api: APIClient, client_api: APIClient) -> None:
    body = {
        "name": "checkout_p50",
        "aggregation": "p50",
        "metric": "checkout_ms",
        "filter_labels": ["flag"],
    }
    assert admin_api.post("/api/v1/metric-definitions/", body, format="json").status_code == 201
    assert (
        client_api.post(
            "/api/v1/metric-definitions/", {**body, "name": "x"}, format="json"
        ).status_code
        == 403
    )
    _push("checkout_ms", [10, 20, 30])
    value = admin_api.get("/api/v1/metrics/checkout_p50/?window=5m").json()
    assert value["value"] == 20
