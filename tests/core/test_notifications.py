import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery.exceptions import Retry
from django.core import mail

from rollout_control.core.models import WebhookDelivery, WebhookEndpoint
from rollout_control.core.notifications import notify, sign
from rollout_control.core.tasks import deliver_webhook
from tests.processes import free_port

pytestmark = pytest.mark.django_db


class Flaky(BaseHTTPRequestHandler):
    statuses: list[int] = []
    bodies: list[tuple[dict, bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Flaky.bodies.append((dict(self.headers), body))
        self.send_response(Flaky.statuses.pop(0) if Flaky.statuses else 200)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Flaky.statuses, Flaky.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Flaky)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


def test_webhook__signed_body_verifies(
    hook: str, django_capture_on_commit_callbacks: object
) -> None:
    WebhookEndpoint.objects.create(name="ops", url=hook, secret="k3y")
    with django_capture_on_commit_callbacks(execute=True):
        notify(event="test.event", subject="Hello", text="World", data={"n": 1})
    headers, body = Flaky.bodies[0]
    assert headers["X-Rollout-Signature"] == sign("k3y", headers["X-Rollout-Timestamp"], body)
    digest = hmac.new(
        b"k3y", headers["X-Rollout-Timestamp"].encode() + b"." + body, hashlib.sha256
    ).hexdigest()
    assert headers["X-Rollout-Signature"] == f"sha256={digest}"
    assert json.loads(body) == {
        "event": "test.event",
        "sent_at": json.loads(body)["sent_at"],
        "data": {"n": 1, "subject": "Hello", "text": "World"},
    }
    assert mail.outbox[0].subject == "Hello"


def test_webhook__failure_recorded_and_retried_then_delivered(hook: str) -> None:
    endpoint = WebhookEndpoint.objects.create(name="ops", url=hook, secret="k3y")
    Flaky.statuses = [502]
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    with pytest.raises(Retry):
        deliver_webhook.apply(kwargs={"delivery_id": delivery_id})
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.attempts, delivery.response_status, delivery.delivered_at) == (1, 502, None)
    endpoint.refresh_from_db()
    assert endpoint.last_error == "HTTP 502" and endpoint.last_failure_at is not None
    deliver_webhook.apply(kwargs={"delivery_id": delivery_id})  # the retry
    delivery.refresh_from_db()
    assert delivery.delivered_at is not None and delivery.attempts == 2
    deliver_webhook.apply(kwargs={"delivery_id": delivery_id})  # a duplicate run sends nothing
    assert len(Flaky.bodies) == 2


def test_webhook__unreachable__error_kept_for_the_admin() -> None:
    WebhookEndpoint.objects.create(
        name="gone", url=f"http://127.0.0.1:{free_port()}/", kind="slack"
    )
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    with pytest.raises(Retry):
        deliver_webhook.apply(kwargs={"delivery_id": delivery_id})
    # Kept in general terms: the admin sees a failure, not which ports are open (issue 14).
    error = WebhookDelivery.objects.get(pk=delivery_id).last_error
    assert error.startswith("Could not connect") and "refused" not in error.lower()


def test_webhook__events_filter() -> None:
    WebhookEndpoint.objects.create(
        name="only-rollbacks", url="http://127.0.0.1:9/", events=["plan.rolled_back"]
    )
    assert notify(event="gate.decision", subject="s", text="t", email=False) == []
    assert len(notify(event="plan.rolled_back", subject="s", text="t", email=False)) == 1
