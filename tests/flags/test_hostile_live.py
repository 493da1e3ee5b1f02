"""Hostile input against a live server: two gunicorn workers, as deployed (issue 14, points 0, 4).

Point 0: a lone surrogate (the JSON text "\\udc00") in a targeting key killed the gunicorn worker
with SIGSEGV (mmh3 5.3.1 crashes hashing such a str): the client got no answer. Here it goes to
every evaluation path that takes client input, several times each so both workers see it; each
answers 400 (the dashboard: its form error), a normal request after it succeeds, and the
workers' pids are the same at the end. (waffle's `flag_is_active` buckets the logged-in user's
id, never client text, so it is not reachable with such input.)

Point 4: an OFREP body over OFREP_MAX_BODY_BYTES is refused with 413 without being read: the
client below announces 100 MB, or streams chunks without ever ending them, and still gets its
answer at once.
"""

import json
import socket
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.test import Client

from flags import services
from rollout_control.core.actors import Actor
from rollout_control.core.roles import RELEASE_MANAGER
from rollout_control.core.services import api_token_create
from tests.flags.test_ofrep_providers import bucket, two_worker_server, unit_for

pytestmark = [pytest.mark.slow, pytest.mark.django_db(transaction=True)]

SYSTEM = Actor.system("hostile")
SURROGATE = '"\\udc00"'  # JSON text: a lone low surrogate, as a browser cuts an emoji
ROUNDS = 4
NORMAL_PATH = "/ofrep/v1/evaluate/flags/split"


def _call(
    base: str, method: str, path: str, body: str | None = None, **headers: str
) -> tuple[int, str]:
    request = urllib.request.Request(
        base + path,
        data=body.encode() if body is not None else None,
        method=method,
        headers={"Connection": "close", **headers},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()
    # Anything else (RemoteDisconnected, a reset) is what a crashed worker gives: it propagates.


def _session_cookie() -> str:
    user = get_user_model().objects.create_user(username="rita", password="pw-rita")
    user.groups.add(Group.objects.get(name=RELEASE_MANAGER))
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}"


def test_lone_surrogate__every_evaluation_path_on_two_workers__400_and_workers_survive(
    tmp_path: Path,
) -> None:
    services.flag_create(key="split", actor=SYSTEM, rollout_percentage=50)
    services.flag_create(key="by-org", actor=SYSTEM, rollout_percentage=50, stickiness="orgId")
    token = api_token_create(name="app", scope="client", actor=SYSTEM)[1]
    bearer = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    cookie = {"Cookie": _session_cookie()}
    context = '{"context": {"targetingKey": ' + SURROGATE + "}}"
    tester = urllib.parse.urlencode({"context": '{"targetingKey": ' + SURROGATE + "}"})
    org = '{"orgId": ' + SURROGATE + "}"
    why = urllib.parse.urlencode({"unit": "u-1", "kind": "user", "extra": org})
    feedback = '{"type": "bug", "text": "x", "flag": "split", "context": ' + org + "}"
    # (method, path, body, headers, expected status, text the answer must hold)
    cases = [
        ("POST", "/ofrep/v1/evaluate/flags/split", context, bearer, 400, "INVALID_CONTEXT"),
        ("POST", "/ofrep/v1/evaluate/flags", context, bearer, 400, "INVALID_CONTEXT"),
        ("POST", "/api/v1/evaluate/", context, bearer, 400, "context.targetingKey"),
        ("POST", "/api/v1/feedback/", feedback, bearer, 400, "context.orgId"),
        ("GET", f"/flags/split/?{tester}", None, cookie, 200, "Not usable"),
        ("GET", f"/flags/split/evaluate/?{tester}", None, cookie, 200, "Not usable"),
        ("GET", f"/why/?{why}", None, cookie, 200, "Not usable"),
    ]
    normal = '{"context": {"targetingKey": "u-1"}}'

    with two_worker_server(tmp_path) as server:
        workers = server.workers()
        assert len(workers) == 2
        for method, path, body, headers, status, text in cases:
            for _ in range(ROUNDS):
                answer = _call(server.base, method, path, body, **headers)
                assert answer[0] == status and text in answer[1], (
                    path,
                    answer[0],
                    answer[1][-500:],
                )
                after = _call(server.base, "POST", NORMAL_PATH, normal, **bearer)
                assert after[0] == 200, (path, after)
        assert server.workers() == workers, server.log_tail()
        # None died and restarted (read before the shutdown, which logs its own SIGTERMs).
        log = server.log.read_text()
        assert "Worker (pid" not in log and log.count("Booting worker") == 2, server.log_tail()


def _raw_exchange(base: str, head: bytes, body_parts: list[bytes]) -> bytes:
    """Sends `head` and `body_parts`, never finishing the body, and reads the answer: a server
    that waited for the rest would time out here instead of answering."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(head)
        for part in body_parts:
            sock.sendall(part)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


@pytest.mark.parametrize("path", ["/ofrep/v1/evaluate/flags/split", "/ofrep/v1/evaluate/flags"])
def test_ofrep_body_over_limit__live_server__413_without_reading_it(
    tmp_path: Path, path: str
) -> None:
    services.flag_create(key="split", actor=SYSTEM, rollout_percentage=50)
    token = api_token_create(name="app", scope="client", actor=SYSTEM)[1]
    start = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
    start += "Content-Type: application/json\r\nConnection: close\r\n"
    with two_worker_server(tmp_path) as server:
        # 100 MB announced, 1 KiB sent: the answer comes from the Content-Length alone.
        head = (start + "Content-Length: 100000000\r\n\r\n").encode()
        answer = _raw_exchange(server.base, head, [b"x" * 1024])
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
        assert b'"errorCode":"GENERAL"' in answer and b"OFREP_MAX_BODY_BYTES" in answer

        # Chunked, no Content-Length, never terminated: read up to the limit, then refused.
        head = (start + "Transfer-Encoding: chunked\r\n\r\n").encode()
        body = b'{"context": {"targetingKey": "u-1", "pad": "' + b"x" * 70_000
        answer = _raw_exchange(server.base, head, [_chunk(body[:40_000]), _chunk(body[40_000:])])
        assert answer.startswith(b"HTTP/1.1 413"), answer[:300]

        # A small chunked body is read and evaluated like any other.
        unit = unit_for("split", 5000, on=True)
        body = json.dumps({"context": {"targetingKey": unit}}).encode()
        parts = [_chunk(body[:10]), _chunk(body[10:]), b"0\r\n\r\n"]
        answer = _raw_exchange(server.base, head, parts)
        assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
        assert bucket("split", unit) < 5000 and b'"variant":"on"' in answer
