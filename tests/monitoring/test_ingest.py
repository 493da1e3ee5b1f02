from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from monitoring.models import MetricRollup, MetricSample, UsageEvent
from monitoring.services import samples_compact, samples_ingest

pytestmark = pytest.mark.django_db


def _sample(**overrides: object) -> dict:
    return {
        "metric": "requests",
        "value": 1,
        "timestamp": timezone.now().isoformat(),
        "labels": {"flag": "f"},
    } | overrides


def test_samples__good_batch__stored_with_label_columns(ingest_api: APIClient) -> None:
    batch = [
        _sample(value=i, labels={"flag": "f", "plan": "p1", "region": "eu"}) for i in range(1000)
    ]
    response = ingest_api.post("/api/v1/metrics/", {"samples": batch}, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {"accepted": 1000}
    stored = MetricSample.objects.filter(metric="requests")
    assert stored.count() == 1000
    sample = stored.first()
    assert (sample.flag, sample.plan, sample.labels["region"]) == ("f", "p1", "eu")


def test_samples__bare_list_and_unix_seconds__accepted(ingest_api: APIClient) -> None:
    now = timezone.now().timestamp()
    response = ingest_api.post(
        "/api/v1/metrics/", [_sample(timestamp=now), _sample(timestamp=None)], format="json"
    )
    assert response.status_code == 201
    assert MetricSample.objects.count() == 2


def test_samples__partly_bad__400_lists_every_bad_item_nothing_stored(
    ingest_api: APIClient,
) -> None:
    future = (timezone.now() + timedelta(minutes=6)).isoformat()
    batch = [
        _sample(),
        _sample(value="12"),
        _sample(),
        _sample(timestamp=future),
        _sample(metric="bad name!"),
        _sample(value=True),
        _sample(labels={"flag": {"nested": 1}}),
        "not an object",
        _sample(extra=1),
    ]
    response = ingest_api.post("/api/v1/metrics/", {"samples": batch}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error["fields"]) == {
        "samples[1].value",
        "samples[3].timestamp",
        "samples[4].metric",
        "samples[5].value",
        "samples[6].labels.flag",
        "samples[7]",
        "samples[8].extra",
    }
    assert "7 of 9 samples are invalid" in error["message"]
    assert MetricSample.objects.count() == 0


def test_samples__four_minutes_ahead__accepted(ingest_api: APIClient) -> None:
    ahead = (timezone.now() + timedelta(minutes=4)).isoformat()
    assert (
        ingest_api.post("/api/v1/metrics/", [_sample(timestamp=ahead)], format="json").status_code
        == 201
    )


@override_settings(METRICS_MAX_BATCH=100)
def test_samples__over_limit__400_nothing_stored(ingest_api: APIClient) -> None:
    response = ingest_api.post("/api/v1/metrics/", [_sample() for _ in range(101)], format="json")
    assert response.status_code == 400
    assert "samples" in response.json()["error"]["fields"]
    assert MetricSample.objects.count() == 0


def test_samples__10000_default_limit__accepted(ingest_api: APIClient) -> None:
    response = ingest_api.post(
        "/api/v1/metrics/", [_sample(value=i) for i in range(10_000)], format="json"
    )
    assert response.status_code == 201
    assert MetricSample.objects.count() == 10_000


def test_samples__no_token__401(api: APIClient) -> None:
    assert api.post("/api/v1/metrics/", [_sample()], format="json").status_code == 401


def test_events__good_and_bad(client_api: APIClient) -> None:
    good = [
        {"unit": "u1", "flag": "f", "action": "exposure"},
        {"unit": 7, "flag": "f", "action": "use"},
    ]
    assert client_api.post("/api/v1/events/", {"events": good}, format="json").json() == {
        "accepted": 2
    }
    bad = [
        {"unit": "", "flag": "f", "action": "use"},
        {"unit": "u", "flag": "f", "action": "use", "x": 1},
    ]
    response = client_api.post("/api/v1/events/", {"events": bad}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["fields"]) == {"events[0].unit", "events[1].x"}
    assert UsageEvent.objects.count() == 2


def test_compact__old_samples_rolled_up_and_pruned() -> None:
    now = datetime(2026, 3, 10, 12, 30, tzinfo=UTC)
    base = now - timedelta(days=1)
    points = [(1, 100.0), (2, 300.0), (65, 50.0)]
    with time_machine.travel(now, tick=False):
        samples_ingest(
            items=[
                {
                    "metric": "latency_ms",
                    "value": v,
                    "timestamp": (base + timedelta(minutes=m)).isoformat(),
                }
                for m, v in points
            ]
        )
    later = now + timedelta(days=8)
    result = samples_compact(now=later)
    assert result["samples_deleted"] == 3
    rollups = {r.bucket_start.hour: r for r in MetricRollup.objects.order_by("bucket_start")}
    first = rollups[12]
    assert (first.count, first.total, first.minimum, first.maximum) == (2, 400.0, 100.0, 300.0)
    assert rollups[13].count == 1
    assert samples_compact(now=later) == {
        "rollups": 0,
        "samples_deleted": 0,
        "rollups_deleted": 0,
        "events_deleted": 0,
    }
    assert samples_compact(now=now + timedelta(days=200))["rollups_deleted"] == 2


def test_compact__recent_samples_kept_for_7_days() -> None:
    samples_ingest(items=[_sample()])
    assert samples_compact(now=timezone.now() + timedelta(days=6))["samples_deleted"] == 0
    assert MetricSample.objects.count() == 1


def test_metrics_endpoint__scheduler_stall_and_ingest_counters(ingest_api: APIClient) -> None:
    from django.test import Client

    from monitoring.services import heartbeat_record

    heartbeat_record(component="worker")
    ingest_api.post("/api/v1/metrics/", [_sample()], format="json")
    ingest_api.post("/api/v1/metrics/", [_sample(value="x")], format="json")
    text = Client().get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    assert 'rollout_control_scheduler_stalled{component="worker"} 0.0' in text
    assert 'rollout_control_scheduler_stalled{component="beat"} 1.0' in text
    assert 'rollout_control_ingest_items_total{kind="samples"}' in text
    assert 'rollout_control_ingest_rejected_batches_total{kind="samples"}' in text


def test_scheduler_status__stalled_after_two_intervals() -> None:
    from monitoring.selectors import scheduler_status
    from monitoring.services import heartbeat_record

    start = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    with time_machine.travel(start, tick=False):
        heartbeat_record(component="beat")
    beat = {s.component: s for s in scheduler_status(now=start + timedelta(seconds=119))}["beat"]
    assert not beat.stalled
    beat = {s.component: s for s in scheduler_status(now=start + timedelta(seconds=121))}["beat"]
    assert beat.stalled


def test_samples__nul_character_in_label__400_not_500(ingest_api: APIClient) -> None:
    response = ingest_api.post(
        "/api/v1/metrics/", [_sample(labels={"flag": "a\x00b"})], format="json"
    )
    assert response.status_code == 400
    assert "samples[0].labels.flag" in response.json()["error"]["fields"]
