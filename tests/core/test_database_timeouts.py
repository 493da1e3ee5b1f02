"""A slow PostgreSQL (issue 14, point 2): a row lock held elsewhere fails a write in seconds with
a JSON 503 and Retry-After (lock_timeout), never a hang until gunicorn kills the worker; runaway
statements stop at statement_timeout; evaluation keeps serving from the snapshot."""

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from django.conf import settings
from django.db import connection, connections
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import Flag
from rollout_control.celery import _task_statement_timeout
from rollout_control.core.actors import Actor
from rollout_control.core.models import AuditEntry


@pytest.fixture
def flag(db: None) -> Flag:
    return flag_services.flag_create(key="checkout", actor=Actor.system(), rollout_percentage=10)


@pytest.fixture
def row_lock(flag: Flag) -> Iterator[psycopg.Connection]:
    """Another session holding the flag's row lock, as a long transaction elsewhere would."""
    params = connection.settings_dict
    other = psycopg.connect(
        host=params["HOST"],
        port=params["PORT"] or 5432,
        user=params["USER"],
        password=params["PASSWORD"] or None,
        dbname=params["NAME"],
    )
    other.execute("SELECT id FROM flags_flag WHERE name = 'checkout' FOR UPDATE")
    try:
        yield other
    finally:
        other.rollback()
        other.close()
        connections.close_all()


def _show(setting: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"SHOW {setting}")
        return cursor.fetchone()[0]


@pytest.mark.django_db
def test_connection__default_settings__lock_and_statement_timeouts_set() -> None:
    assert (settings.DATABASE_LOCK_TIMEOUT, settings.DATABASE_STATEMENT_TIMEOUT) == (5, 15)
    assert (_show("lock_timeout"), _show("statement_timeout")) == ("5s", "15s")


@pytest.mark.django_db(transaction=True)
def test_flag_patch__row_locked_elsewhere__503_json_within_lock_timeout_nothing_changed(
    admin_token: str, client_token: str, flag: Flag, row_lock: psycopg.Connection
) -> None:
    admin = APIClient()
    admin.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")
    audited = AuditEntry.objects.filter(action="flag.update").count()
    started = time.monotonic()
    response = admin.patch("/api/v1/flags/checkout/", {"rollout_percentage": 50}, format="json")
    elapsed = time.monotonic() - started
    assert response.status_code == 503, response.content
    assert response["Content-Type"] == "application/json"
    error = response.json()["error"]
    assert error["code"] == "unavailable" and "busy" in error["message"]
    assert int(response["Retry-After"]) > 0
    assert settings.DATABASE_LOCK_TIMEOUT - 0.5 < elapsed < settings.DATABASE_LOCK_TIMEOUT + 1
    # Evaluation reads the snapshot, not the locked row: it keeps answering meanwhile.
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {client_token}")
    started = time.monotonic()
    evaluated = client.post(
        "/ofrep/v1/evaluate/flags/checkout", {"context": {"targetingKey": "u1"}}, format="json"
    )
    assert evaluated.status_code == 200, evaluated.content
    assert time.monotonic() - started < 1
    row_lock.rollback()
    flag.refresh_from_db()
    assert (flag.basis_points, flag.version) == (1000, 1)
    assert AuditEntry.objects.filter(action="flag.update").count() == audited


@pytest.mark.django_db(transaction=True)
def test_dashboard_kill_switch__row_locked_elsewhere__503_page_with_retry_after(
    release_manager: Any, flag: Flag, row_lock: psycopg.Connection
) -> None:
    client = Client()
    client.force_login(release_manager)
    started = time.monotonic()
    response = client.post(
        reverse("dashboard:flag_kill_switch", args=["checkout"]),
        {"killed": "on", "reason": "incident", "version": 1},
    )
    assert response.status_code == 503
    assert "Try again shortly" in response.content.decode()
    assert int(response["Retry-After"]) > 0
    assert time.monotonic() - started < settings.DATABASE_LOCK_TIMEOUT + 1
    row_lock.rollback()
    flag.refresh_from_db()
    assert (flag.everyone, flag.version) == (None, 1)


@pytest.mark.django_db(transaction=True)
def test_celery_worker__started__longer_statement_timeout_same_lock_timeout() -> None:
    options = settings.DATABASES["default"]["OPTIONS"]
    before = options["options"]
    try:
        _task_statement_timeout()
        assert (_show("lock_timeout"), _show("statement_timeout")) == ("5s", "5min")
    finally:
        options["options"] = before
        connections.close_all()
    assert _show("statement_timeout") == "15s"
