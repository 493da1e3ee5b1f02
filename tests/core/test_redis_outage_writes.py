"""Redis stopped under gunicorn and a Celery worker (issue 14 point 1): a flag PATCH, the
dashboard kill switch and a blocker feedback item answer 2xx and are committed; the e-mail and
webhook the blocker owes wait in the outbox and, once Redis is back and the drain runs (as beat
runs it), each is delivered exactly once.

gunicorn and the worker run the deployed settings (rollout_control.settings: Redis as cache and
broker, console e-mail into the worker's log) on the test database and a throwaway redis-server
(tests/outage.py), never the shared one."""

import http.cookiejar
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from kombu import Connection

from feedback.models import FeedbackItem
from flags import services as flag_services
from flags.models import Flag
from rollout_control.celery import app
from rollout_control.core.actors import Actor
from rollout_control.core.models import OutboxMessage, WebhookEndpoint
from tests.outage import Reply, call, gunicorn, manage, service_env, throwaway_redis
from tests.processes import celery_worker, database_url, running

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]
SYSTEM = Actor.system("tests")


class Receiver(BaseHTTPRequestHandler):
    events: list[bytes] = []

    def do_POST(self) -> None:
        Receiver.events.append(self.rfile.read(int(self.headers["Content-Length"])))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    Receiver.events = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


class Browser:
    """A logged-in dashboard session over real HTTP (cookies and CSRF as a browser keeps them)."""

    def __init__(self, base: str, username: str, password: str) -> None:
        self.base = base
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))
        self.opener.open(f"{base}/accounts/login/", timeout=10).read()
        self.post("/accounts/login/", {"username": username, "password": password})
        assert "sessionid" in self._cookies(), "login failed"

    def _cookies(self) -> dict[str, str]:
        return {cookie.name: cookie.value or "" for cookie in self.jar}

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str, float]:
        """POSTs a form and follows the redirect: (final status, final page, seconds)."""
        data = urllib.parse.urlencode(form | {"csrfmiddlewaretoken": self._cookies()["csrftoken"]})
        request = urllib.request.Request(
            f"{self.base}{path}", data=data.encode(), headers={"Referer": f"{self.base}{path}"}
        )
        started = time.monotonic()
        try:
            with self.opener.open(request, timeout=10) as response:
                status, page = response.status, response.read().decode()
        except urllib.error.HTTPError as exc:
            status, page = exc.code, exc.read().decode(errors="replace")
        return status, page, time.monotonic() - started


def _blocker(web: str, token: str, flag: str) -> Reply:
    body = {"type": "blocker", "text": f"Scenes vanish ({flag})", "flag": flag, "unit": "u-1"}
    return call("POST", f"{web}/api/v1/feedback/", body, token=token)


def _drain_as_beat_does(redis_url: str, queue: str) -> None:
    with Connection(redis_url) as connection:
        app.send_task("core.tasks.outbox_drain", queue=queue, connection=connection)


def _wait(condition: object, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.25)
    raise AssertionError(f"timed out; worker log:\n{log.read_text()[-3000:]}")


def _emails(log: Path, subject_part: str) -> int:
    return sum(
        1
        for line in log.read_text().splitlines()
        if line.startswith("Subject:") and subject_part in line
    )


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")
def test_writes__redis_stopped__2xx_committed_then_owed_messages_delivered_once(
    tmp_path: Path, hook: str, release_manager: object, admin_token: str, client_token: str
) -> None:
    # The suite hashes passwords with MD5; the deployed settings the server runs do not.
    hasher = PBKDF2PasswordHasher()
    release_manager.password = hasher.encode("pw-rita", hasher.salt())  # type: ignore[attr-defined]
    release_manager.save(update_fields=["password"])  # type: ignore[attr-defined]
    WebhookEndpoint.objects.create(name="ops", url=hook, secret="k3y")
    flag_services.flag_create(key="checkout", actor=SYSTEM)
    flag_services.flag_create(key="payments", actor=SYSTEM)
    queue = f"outage-writes-{uuid.uuid4().hex[:8]}"
    worker_log = tmp_path / "worker.log"
    with throwaway_redis() as redis:
        env = service_env(
            database_url=database_url(),
            redis_url=redis.url,
            CELERY_QUEUE=queue,
            TEAM_EMAILS="team@example.com",
            WEBHOOK_ALLOWED_NETWORKS="127.0.0.0/8",
            ROLLOUT_VAR_DIR=str(tmp_path / "var"),
        )
        manage("collectstatic", "--noinput", env=env)  # DEBUG off: the dashboard's assets
        with (
            gunicorn(env, log=tmp_path / "gunicorn.log") as web,
            running(celery_worker(), env=env, log=worker_log),
        ):
            browser = Browser(web.url, "rita", "pw-rita")
            # Redis up: the push on commit delivers at once.
            assert _blocker(web.url, client_token, "checkout").status == 201
            _wait(lambda: len(Receiver.events) == 1, worker_log)

            with redis.outage():
                patch = call(
                    "PATCH",
                    f"{web.url}/api/v1/flags/checkout/",
                    {"rollout_percentage": 25},
                    token=admin_token,
                )
                assert patch.status == 200, patch.text
                version = Flag.objects.get(name="payments").version
                status, page, kill_seconds = browser.post(
                    "/flags/payments/kill-switch/",
                    {"killed": "on", "reason": "payments failing", "version": str(version)},
                )
                assert status == 200 and "kill switch on" in page, page[-2000:]
                blocker = _blocker(web.url, client_token, "payments")
                assert blocker.status == 201, blocker.text

                # Committed, each answered within a second or two, and owed work kept.
                assert max(patch.seconds, kill_seconds, blocker.seconds) < 3
                assert Flag.objects.get(name="checkout").basis_points == 2500
                assert Flag.objects.get(name="payments").everyone is False
                assert FeedbackItem.objects.filter(pk=blocker.body["id"]).exists()
                waiting = OutboxMessage.objects.filter(sent_at__isnull=True)
                assert sorted(waiting.values_list("kind", flat=True)) == ["email", "webhook"]
                time.sleep(1)
                assert len(Receiver.events) == 1

            # Redis is back and the worker reconnects by itself. The drain, sent twice as beat
            # sends it every 30 s: every message once.
            _drain_as_beat_does(redis.url, queue)
            _drain_as_beat_does(redis.url, queue)
            _wait(lambda: not waiting.exists(), worker_log)
            time.sleep(2)  # room for a duplicate to show up

    assert len(Receiver.events) == 2
    assert b"Scenes vanish (payments)" in Receiver.events[1]
    assert _emails(worker_log, "on flag payments") == 1
    assert _emails(worker_log, "on flag checkout") == 1
    assert OutboxMessage.objects.filter(sent_at__isnull=False).count() == 4
