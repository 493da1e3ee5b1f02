"""Guardrails, checkpoints and automatic rollback; graceful degradation."""

import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.db import connection
from django.test import Client
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import Flag
from phases import services
from phases.models import Guardrail, GuardrailCheck, Incident, RampSkip, RolloutPlan
from phases.seed_templates import DEFAULT_GUARDRAILS
from phases.services.flagops import flag_current_bp
from rollout_control.core.models import WebhookDelivery, WebhookEndpoint
from tests.phases.conftest import SYSTEM

START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # Monday, after the 9:00 step hour


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.shutdown()


def _open_beta_plan(key: str = "checkout", guardrails: list | None = None) -> RolloutPlan:
    flag_services.flag_create(key=key, actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {
                "name": "Open beta",
                "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}],
            }
        ],
        "guardrails": DEFAULT_GUARDRAILS if guardrails is None else guardrails,
    }
    return services.plan_create(
        name="Checkout", definition=definition, flags={"f": key}, actor=SYSTEM
    )


def _push(
    client: APIClient, *, errors: float, requests: float = 50, n: int = 25, flag: str = "checkout"
) -> None:
    now = datetime.now(UTC).isoformat()
    batch = [
        {"metric": "requests", "value": requests, "timestamp": now, "labels": {"flag": flag}}
        for _ in range(n)
    ]
    batch.append({"metric": "errors", "value": errors, "timestamp": now, "labels": {"flag": flag}})
    assert client.post("/api/v1/metrics/", {"samples": batch}, format="json").status_code == 201


def _ofrep_percentage(client: Client, token: str, key: str) -> float:
    body = client.post(
        f"/ofrep/v1/evaluate/flags/{key}",
        json.dumps({"context": {"targetingKey": "u-1"}}),
        content_type="application/json",
        HTTP_AUTHORIZATION=f"Bearer {token}",
    ).json()
    return body["metadata"]["percentage"]


@pytest.mark.django_db
def test_error_rate_breach__rolls_back_to_verified_safe_point_once_and_signs_webhook(
    ingest_api: APIClient,
    client_token: str,
    receiver: str,
    django_capture_on_commit_callbacks: object,
) -> None:
    WebhookEndpoint.objects.create(name="ops", url=receiver, secret="s3cret")
    with time_machine.travel(START, tick=False) as clock:
        plan = _open_beta_plan(
            guardrails=[g for g in DEFAULT_GUARDRAILS if g["metric"] == "error_rate"]
        )
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        clock.shift(timedelta(days=1))
        services.advance_ramps(now=datetime.now(UTC))  # 20 %
        for _ in range(6):  # healthy for a full 5-minute window: 20 % is a verified safe point
            _push(ingest_api, errors=2)  # 0.16 %
            services.check_guardrails(now=datetime.now(UTC))
            clock.shift(timedelta(minutes=1))
        (safe,) = plan.checkpoints.filter(verified_at__isnull=False)
        assert safe.config["checkout"]["rollout_percentage"] == 20
        clock.shift(timedelta(days=1))
        services.advance_ramps(now=datetime.now(UTC))  # 30 %
        assert flag_current_bp("checkout", None) == 3000
        assert _ofrep_percentage(Client(), client_token, "checkout") == 30

        _push(ingest_api, errors=100)  # 8 %: a spike
        with django_capture_on_commit_callbacks(execute=True):
            for minute in range(4):
                clock.shift(timedelta(minutes=1))
                services.check_guardrails(now=datetime.now(UTC))
                plan.refresh_from_db()
                if minute < 2:
                    assert plan.status == "active" and plan.held_reason  # failing holds the ramp
    assert plan.status == "rolled_back"
    assert _ofrep_percentage(Client(), client_token, "checkout") == 20
    incident = Incident.objects.get()
    assert incident.trigger == "error_rate_spike"
    assert incident.observed["value"] == pytest.approx(100 / 1250)
    assert incident.restored_to["kind"] == "safe_point"
    assert incident.restored_to["checkpoint"] == safe.pk
    assert [s["action"] for s in incident.steps] == ["lowered", "team_alerted"]
    assert incident.steps[0]["before"]["rollout_percentage"] == 30
    assert incident.steps[0]["after"]["rollout_percentage"] == 20
    spike = Guardrail.objects.get(name="Error rate spike")
    assert list(spike.checks.filter(acted="rollback").values_list("verdict", flat=True)) == ["fail"]
    rollbacks = [
        (h, b) for h, b in Receiver.received if json.loads(b)["event"] == "plan.rolled_back"
    ]
    assert len(rollbacks) == 1
    headers, body = rollbacks[0]
    expected = hmac.new(
        b"s3cret", headers["X-Rollout-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Rollout-Signature"] == f"sha256={expected}"
    assert json.loads(body)["data"]["trigger"] == "error_rate_spike"
    assert (
        WebhookDelivery.objects.filter(event="plan.rolled_back", delivered_at__isnull=False).count()
        == 1
    )


@pytest.mark.django_db(transaction=True)
def test_breach__two_workers_racing__one_incident() -> None:
    guardrail = {
        **next(g for g in DEFAULT_GUARDRAILS if g["name"] == "Error rate spike"),
        "failures_to_act": 1,
    }
    plan = _open_beta_plan(guardrails=[guardrail])
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    from monitoring.services import samples_ingest

    samples_ingest(
        items=[
            {"metric": "requests", "value": 10, "labels": {"flag": "checkout"}} for _ in range(30)
        ]
        + [{"metric": "errors", "value": 50, "labels": {"flag": "checkout"}}]
    )
    now = datetime.now(UTC)
    barrier, errors = threading.Barrier(2), []

    def worker() -> None:
        try:
            barrier.wait()
            services.check_guardrails(now=now)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert list(GuardrailCheck.objects.values_list("verdict", "acted")) == [("fail", "rollback")]
    assert Incident.objects.count() == 1
    # No safe point verified: back to the flag as it was before the plan (0 %), not further.
    checkout = Flag.objects.get(name="checkout")
    assert (checkout.everyone, checkout.basis_points) == (None, 0)


@pytest.mark.django_db
def test_insufficient_data__neither_counts_nor_resets(ingest_api: APIClient) -> None:
    guardrail = {
        "name": "spike",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "1m",
        "failures_to_act": 3,
        "action": "rollback",
        "trigger": "error_rate_spike",
    }
    with time_machine.travel(START, tick=False) as clock:
        plan = _open_beta_plan(guardrails=[guardrail])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        verdicts = []
        for bad in [True, True, None, True]:  # None: no traffic in the window
            clock.shift(timedelta(minutes=1))
            if bad:
                _push(ingest_api, errors=100)
            services.check_guardrails(now=datetime.now(UTC))
            verdicts.append(GuardrailCheck.objects.order_by("-minute").first().verdict)
            plan.refresh_from_db()
    assert verdicts == ["fail", "fail", "insufficient_data", "fail"]
    assert plan.status == "rolled_back"
    assert Guardrail.objects.get().checks.filter(acted="rollback").count() == 1


@pytest.mark.django_db
def test_failing_pause_guardrail__holds_ramp_until_it_passes(ingest_api: APIClient) -> None:
    guardrail = {
        "name": "slow",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "5m",
        "failures_to_act": 5,
        "action": "pause",
    }
    with time_machine.travel(START, tick=False) as clock:
        plan = _open_beta_plan(guardrails=[guardrail])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        clock.shift(timedelta(days=1))
        _push(ingest_api, errors=100)
        services.check_guardrails(now=datetime.now(UTC))
        services.advance_ramps(now=datetime.now(UTC))
        assert flag_current_bp("checkout", None) == 1000
        assert "held" in RampSkip.objects.get().reason
        clock.shift(timedelta(minutes=10))
        _push(ingest_api, errors=0)
        services.check_guardrails(now=datetime.now(UTC))
        plan.refresh_from_db()
        assert plan.held_reason == ""
        clock.shift(timedelta(days=1))
        services.advance_ramps(now=datetime.now(UTC))
    assert flag_current_bp("checkout", None) == 2000


@pytest.mark.django_db
def test_alert_guardrail__notifies_once_per_breach(
    ingest_api: APIClient, receiver: str, django_capture_on_commit_callbacks: object
) -> None:
    WebhookEndpoint.objects.create(name="slack", url=receiver, kind="slack")
    alert = next(g for g in DEFAULT_GUARDRAILS if g["name"] == "Error rate above 2 %")
    with (
        time_machine.travel(START, tick=False) as clock,
        django_capture_on_commit_callbacks(execute=True),
    ):
        plan = _open_beta_plan(guardrails=[alert])
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _push(ingest_api, errors=100)
        for _ in range(3):
            clock.shift(timedelta(minutes=1))
            services.check_guardrails(now=datetime.now(UTC))
    plan.refresh_from_db()
    assert plan.status == "active"
    alerts = [json.loads(body) for _, body in Receiver.received]
    assert len(alerts) == 1
    assert alerts[0]["text"].startswith("*[guardrail] Checkout: Error rate above 2 %")


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"metric": "nope"}, "metric"),
        ({"window": "0m"}, "window"),
        ({"failures_to_act": 0}, "failures_to_act"),
        ({"action": "explode"}, "action"),
        ({"trigger": ""}, "trigger"),
    ],
)
@pytest.mark.django_db
def test_guardrail_api__bad_input__400_nothing_created(
    admin_api: APIClient, change: dict, field: str
) -> None:
    plan = _open_beta_plan(guardrails=[])
    body = {
        "name": "g",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "5m",
        "failures_to_act": 3,
        "action": "rollback",
        "trigger": "error_rate_spike",
    } | change
    response = admin_api.post(f"/api/v1/plans/{plan.pk}/guardrails/", body, format="json")
    assert response.status_code == 400, response.json()
    assert field in response.json()["error"]["fields"]
    assert Guardrail.objects.count() == 0


@pytest.mark.django_db
def test_guardrail_api__create_and_list(admin_api: APIClient) -> None:
    plan = _open_beta_plan(guardrails=[])
    body = {
        "name": "p95",
        "metric": "latency_p95",
        "comparator": "gt",
        "threshold": 2000,
        "action": "alert",
    }
    created = admin_api.post(f"/api/v1/plans/{plan.pk}/guardrails/", body, format="json")
    assert created.status_code == 201, created.json()
    listed = admin_api.get(f"/api/v1/plans/{plan.pk}/guardrails/").json()
    assert [g["name"] for g in listed] == ["p95"]


# --- graceful degradation ----------------------------------------------------------------------


def _stress(value: float) -> None:
    from monitoring.services import samples_ingest

    samples_ingest(items=[{"metric": "stress", "value": value}])


@pytest.mark.django_db
def test_degradation__thresholds_and_recovery_after_ten_calm_minutes() -> None:
    flag_services.flag_create(key="core-search", actor=SYSTEM)
    flag_services.flag_create(
        key="confetti", tier="non_essential", rollout_percentage=40, actor=SYSTEM
    )
    flag_services.flag_create(key="ramping-core", actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 100}]}
        ],
    }
    plan = services.plan_create(
        name="R", definition=definition, flags={"f": "ramping-core"}, actor=SYSTEM
    )

    def killed() -> set[str]:
        return set(Flag.objects.filter(everyone=False).values_list("name", flat=True))

    with time_machine.travel(START, tick=False) as clock:
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
        _stress(0.85)
        assert services.degradation_check(now=datetime.now(UTC))["level"] == 1
        assert killed() == {"confetti"}
        clock.shift(timedelta(minutes=3))
        _stress(0.95)
        assert services.degradation_check(now=datetime.now(UTC))["level"] == 2
        assert killed() == {"confetti", "ramping-core"}
        plan.refresh_from_db()
        assert plan.status == "active"  # degradation is not a manual change
        for minute in range(10):
            clock.shift(timedelta(minutes=3 if minute == 0 else 1))
            _stress(0.5)
            services.degradation_check(now=datetime.now(UTC))
            assert killed() == {"confetti", "ramping-core"}, minute
        clock.shift(timedelta(minutes=1))
        _stress(0.5)
        assert services.degradation_check(now=datetime.now(UTC))["level"] == 0
    assert killed() == set()
    assert flag_current_bp("confetti", None) == 4000
    assert flag_current_bp("ramping-core", None) == 1000


@pytest.mark.django_db
def test_degradation__calm_interrupted__timer_restarts() -> None:
    flag_services.flag_create(key="confetti", tier="non_essential", actor=SYSTEM)
    with time_machine.travel(START, tick=False) as clock:
        _stress(0.85)
        services.degradation_check(now=datetime.now(UTC))
        for stress in [0.5, 0.5, 0.75, 0.5]:  # 0.75 is not calm: the 10 minutes start again
            clock.shift(timedelta(minutes=4))
            _stress(stress)
            services.degradation_check(now=datetime.now(UTC))
        assert Flag.objects.get(name="confetti").everyone is False
        clock.shift(timedelta(minutes=11))
        _stress(0.5)
        services.degradation_check(now=datetime.now(UTC))
    assert Flag.objects.get(name="confetti").everyone is None
