"""Floods are bounded (issue 14, point 8): feedback is limited per client token as well as per
unit (rotating `unit` values used to lift the limit: 70 blockers all passed and queued 210
webhook deliveries plus e-mails), and critical alerts come at most once per flag and priority
per FEEDBACK_ALERT_WINDOW_MINUTES, the rest in one digest when the window ends."""

import json
from datetime import timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from feedback import api as feedback_api
from feedback.models import FeedbackAlertWindow, FeedbackItem
from feedback.services import feedback_send_alert_digests, feedback_set_priority
from feedback.tasks import send_alert_digests
from rollout_control.core.models import WebhookDelivery, WebhookEndpoint
from rollout_control.core.ratelimit import TokenBucket
from tests.feedback.conftest import SYSTEM, Receiver, file

URL = "/api/v1/feedback/"
pytestmark = pytest.mark.django_db


@pytest.fixture
def fresh_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured limits, with buckets no earlier test has drawn on."""
    monkeypatch.setattr(
        feedback_api,
        "_sender_limiter",
        TokenBucket(
            rate=settings.FEEDBACK_TOKEN_RATE_PER_HOUR / 3600,
            burst=settings.FEEDBACK_TOKEN_RATE_BURST,
        ),
    )
    monkeypatch.setattr(
        feedback_api,
        "_limiter",
        TokenBucket(
            rate=settings.FEEDBACK_RATE_PER_HOUR / 3600, burst=settings.FEEDBACK_RATE_BURST
        ),
    )


def _critical_alerts() -> list[dict[str, Any]]:
    return [
        json.loads(body)["data"]
        for _, body in Receiver.received
        if json.loads(body)["event"] == "feedback.critical"
    ]


def test_intake__70_blockers_one_token_rotating_units__most_429_one_alert_per_flag(
    client_api: APIClient,
    beta_flag: str,
    receiver: str,
    fresh_limits: None,
    django_capture_on_commit_callbacks: Any,
) -> None:
    WebhookEndpoint.objects.create(name="ops", url=receiver, secret="s3cret")
    statuses = []
    with django_capture_on_commit_callbacks(execute=True):
        for n in range(70):
            body = {
                "type": "blocker",
                "text": f"Crash {n}",
                "unit": f"user-{n}",
                "flag": ["reports", "other"][n % 2],
            }
            response = client_api.post(URL, body, format="json")
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.json()["error"]["code"] == "rate_limited"
                assert int(response["Retry-After"]) >= 1
    accepted = statuses.count(201)
    assert set(statuses) == {201, 429}
    assert settings.FEEDBACK_TOKEN_RATE_BURST <= accepted <= settings.FEEDBACK_TOKEN_RATE_BURST + 1
    burst = settings.FEEDBACK_TOKEN_RATE_BURST
    assert statuses.count(429) >= 70 - burst - 1 and statuses[:burst] == [201] * burst
    assert FeedbackItem.objects.count() == accepted
    # One immediate alert per flag (and priority), not one per item: webhooks and e-mails.
    alerts = _critical_alerts()
    assert sorted(alert["flag"] for alert in alerts) == ["other", "reports"]
    assert WebhookDelivery.objects.count() == 2
    assert len(mail.outbox) == 2
    # When the window ends, one digest per flag carries the rest.
    later = timezone.now() + timedelta(minutes=settings.FEEDBACK_ALERT_WINDOW_MINUTES, seconds=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert feedback_send_alert_digests(now=later) == 2
    digests = [alert for alert in _critical_alerts() if alert.get("digest")]
    assert sorted((d["flag"], d["count"]) for d in digests) == [
        ("other", accepted // 2 - 1),
        ("reports", accepted - accepted // 2 - 1),
    ]
    assert sum(d["count"] for d in digests) + 2 == accepted
    assert len(mail.outbox) == 4 and "more on flag" in mail.outbox[-1].subject
    assert feedback_send_alert_digests(now=later) == 0  # nothing twice


def test_intake__sender_over_its_limit__429_even_for_a_new_unit(
    client_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_api, "_sender_limiter", TokenBucket(rate=1 / 3600, burst=2))
    bodies = [{"type": "question", "text": "How?", "unit": f"u{n}"} for n in range(3)]
    statuses = [client_api.post(URL, body, format="json").status_code for body in bodies]
    assert statuses == [201, 201, 429]
    assert FeedbackItem.objects.count() == 2


def test_intake__malformed_over_the_limit__400_not_429(
    client_api: APIClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feedback_api, "_sender_limiter", TokenBucket(rate=1 / 3600, burst=1))
    assert client_api.post(URL, {"type": "bug", "text": "x"}, format="json").status_code == 201
    response = client_api.post(URL, {"type": "nope", "text": "x"}, format="json")
    assert response.status_code == 400 and "type" in response.json()["error"]["fields"]


def test_alert_window__over_time__one_alert_then_one_digest_per_window_then_alert_again(
    beta_flag: str, django_capture_on_commit_callbacks: Any
) -> None:
    window = timedelta(minutes=settings.FEEDBACK_ALERT_WINDOW_MINUTES)
    start = timezone.now()
    with time_machine.travel(start, tick=False) as clock:
        with django_capture_on_commit_callbacks(execute=True):
            file(type="blocker", flag_key="reports", unit="a")  # alerts, opens a window
            held = file(type="blocker", flag_key="reports", unit="b")
            assert feedback_send_alert_digests(now=timezone.now()) == 0  # not before its end
        assert len(mail.outbox) == 1
        clock.shift(window + timedelta(seconds=1))
        with django_capture_on_commit_callbacks(execute=True):
            assert send_alert_digests.apply().get() == 1  # and the digest opens the next window
            clock.shift(timedelta(minutes=1))
            later = file(type="blocker", flag_key="reports", unit="c")  # held again
        assert len(mail.outbox) == 2 and f"#{held.pk} " in mail.outbox[1].body
        assert FeedbackAlertWindow.objects.get(flag_key="reports").held == [later.pk]
        clock.shift(window)
        with django_capture_on_commit_callbacks(execute=True):
            assert send_alert_digests.apply().get() == 1
            assert send_alert_digests.apply().get() == 0  # a second beat sends nothing twice
        assert len(mail.outbox) == 3 and f"#{later.pk} " in mail.outbox[2].body
        clock.shift(window + timedelta(seconds=1))  # quiet for a whole window
        with django_capture_on_commit_callbacks(execute=True):
            file(type="blocker", flag_key="reports", unit="d")
        assert len(mail.outbox) == 4 and "1 more" not in mail.outbox[3].subject


def test_alert_window__other_flag_or_priority_raised__own_window(
    beta_flag: str, django_capture_on_commit_callbacks: Any
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        file(type="blocker", flag_key="reports", unit="a")
        file(type="blocker", flag_key="reports", unit="b")  # held
        file(type="blocker", flag_key="other", unit="c")  # another flag: alerts
        bug = file(type="bug", flag_key="reports", unit="d")  # high: no alert at all
        feedback_set_priority(item=bug, priority="critical", reason="data loss", actor=SYSTEM)
    subjects = [message.subject for message in mail.outbox]
    assert len(subjects) == 2, subjects
    assert any("on flag other" in s for s in subjects)
    with django_capture_on_commit_callbacks(execute=True):
        assert send_alert_digests.apply().get() == 0
    assert len(mail.outbox) == 2  # the window has not ended yet: nothing sent early


def test_alert_window__turned_off__every_critical_item_alerts(
    beta_flag: str, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.FEEDBACK_ALERT_WINDOW_MINUTES = 0
    with django_capture_on_commit_callbacks(execute=True):
        for unit in "abc":
            file(type="blocker", flag_key="reports", unit=unit)
    assert len(mail.outbox) == 3
