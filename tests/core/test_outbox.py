"""The outbox (rollout_control/core/outbox.py) and the cache that shrugs off Redis (issue 14
point 1). Redis really stopped under gunicorn and a worker: test_redis_outage_writes.py.

In these tests the request's transaction never commits (pytest-django rolls it back), so the push
on commit never happens: exactly the state a failed push leaves, rows waiting for the drain.
"""

import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine
from django.core import mail
from django.utils import timezone
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import Flag
from rollout_control.core.actors import Actor
from rollout_control.core.cache import TolerantRedisCache
from rollout_control.core.models import OutboxMessage, WebhookDelivery, WebhookEndpoint
from rollout_control.core.notifications import notify
from rollout_control.core.outbox import (
    BACKOFF_SECONDS,
    MAX_ATTEMPTS,
    outbox_drain,
    outbox_email,
    outbox_run,
)
from tests.processes import free_port

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("tests")


class Receiver(BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[bytes] = []

    def do_POST(self) -> None:
        Receiver.bodies.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(Receiver.statuses.pop(0) if Receiver.statuses else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Receiver.statuses, Receiver.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def _later(seconds: float) -> time_machine.travel:
    return time_machine.travel(timezone.now() + timedelta(seconds=seconds), tick=False)


def test_notify__not_pushed_on_commit__kept_in_outbox_and_drained_once(hook: str) -> None:
    WebhookEndpoint.objects.create(name="ops", url=hook, secret="k3y")
    [delivery_id] = notify(event="feedback.critical", subject="Blocker", text="Scenes vanish")
    pending = OutboxMessage.objects.filter(sent_at__isnull=True)
    assert sorted(pending.values_list("kind", flat=True)) == ["email", "webhook"]
    assert (Receiver.bodies, mail.outbox) == ([], [])

    with _later(60):
        assert outbox_drain() == 2
    assert len(Receiver.bodies) == 1 and [m.subject for m in mail.outbox] == ["Blocker"]
    assert not pending.exists()
    assert WebhookDelivery.objects.get(pk=delivery_id).delivered_at is not None

    with _later(3600):  # later drains, and a stray copy of the task, send nothing again
        assert outbox_drain() == 0
        assert not any(outbox_run(message_id=m.pk) for m in OutboxMessage.objects.all())
    assert len(Receiver.bodies) == 1 and len(mail.outbox) == 1


def test_outbox_send__claimed_elsewhere_then_run_twice__sends_once() -> None:
    message_id = outbox_email(subject="Kickoff", body="b", recipients=["org@example.com"])
    OutboxMessage.objects.filter(pk=message_id).update(
        locked_until=timezone.now() + timedelta(minutes=1)
    )
    assert outbox_run(message_id=message_id) is False  # another worker is sending it
    assert mail.outbox == []
    OutboxMessage.objects.filter(pk=message_id).update(locked_until=None)
    assert outbox_run(message_id=message_id) is True
    assert outbox_run(message_id=message_id) is False
    assert len(mail.outbox) == 1
    message = OutboxMessage.objects.get(pk=message_id)
    assert message.sent_at is not None and message.attempts == 1


def test_outbox_send__receiver_fails__retried_by_the_drain_after_backoff(hook: str) -> None:
    WebhookEndpoint.objects.create(name="ops", url=hook)
    Receiver.statuses = [502]
    notify(event="e", subject="s", text="t", email=False)
    message = OutboxMessage.objects.get()
    assert outbox_run(message_id=message.pk) is False
    message.refresh_from_db()
    assert (message.attempts, message.sent_at) == (1, None)
    assert "502" in message.last_error and message.available_at is not None
    assert outbox_run(message_id=message.pk) is False  # not due yet: no second request
    assert len(Receiver.bodies) == 1

    with _later(BACKOFF_SECONDS + 1):
        assert outbox_drain() == 1
    message.refresh_from_db()
    assert message.sent_at is not None and message.attempts == 2
    assert len(Receiver.bodies) == 2


def test_outbox_send__failing_every_time__given_up_after_max_attempts() -> None:
    WebhookEndpoint.objects.create(name="gone", url=f"http://127.0.0.1:{free_port()}/")
    notify(event="e", subject="s", text="t", email=False)
    message = OutboxMessage.objects.get()
    OutboxMessage.objects.filter(pk=message.pk).update(attempts=MAX_ATTEMPTS - 1)
    assert outbox_run(message_id=message.pk) is False
    message.refresh_from_db()
    assert message.failed_at is not None and message.attempts == MAX_ATTEMPTS
    with _later(3600):
        assert outbox_drain() == 0


def test_outbox_drain__sent_rows_older_than_a_week__deleted() -> None:
    message_id = outbox_email(subject="s", body="b", recipients=["ops@example.com"])
    assert outbox_run(message_id=message_id)
    with _later(6 * 86400):
        outbox_drain()
    assert OutboxMessage.objects.filter(pk=message_id).exists()
    with _later(8 * 86400):
        outbox_drain()
    assert not OutboxMessage.objects.filter(pk=message_id).exists()


# The cache ---------------------------------------------------------------------------------


@pytest.fixture
def redis_stopped(settings: object) -> str:
    """The project's cache pointed at a port where no Redis listens."""
    url = f"redis://127.0.0.1:{free_port()}/0"
    settings.CACHES = {  # type: ignore[attr-defined]
        "default": {
            "BACKEND": "rollout_control.core.cache.TolerantRedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 1, "socket_timeout": 1},
        }
    }
    return url


def test_cache__redis_stopped__reads_miss_and_writes_are_dropped(redis_stopped: str) -> None:
    cache = TolerantRedisCache(redis_stopped, {})
    assert cache.get("k", "default") == "default"
    assert cache.add("k", 1) is False
    cache.set("k", 1)
    cache.delete_many(["k", "j"])
    assert cache.set_many({"k": 1}) == ["k"]
    assert cache.get_or_set("k", 2) == 2


def test_flag_patch__redis_stopped__200_and_committed(
    redis_stopped: str, admin_api: APIClient, django_capture_on_commit_callbacks: object
) -> None:
    flag_services.flag_create(key="checkout", actor=SYSTEM)
    # waffle flushes its flag cache on commit: with Django's plain RedisCache that raised here.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_api.patch(
            "/api/v1/flags/checkout/", {"rollout_percentage": 25}, format="json"
        )
    assert response.status_code == 200, response.content
    assert callbacks, "waffle's flush must have run"
    assert Flag.objects.get(name="checkout").basis_points == 2500
