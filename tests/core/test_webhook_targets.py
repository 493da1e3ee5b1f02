"""Webhooks cannot be aimed inside (issue 14, point 7): loopback, private, link-local, multicast,
unspecified and reserved targets (IPv4, IPv6, IPv4 inside IPv6, names resolving to them) and
non-http schemes are refused when an endpoint is saved and again, on the address resolved then,
at send time; the connection goes to the checked address (no DNS rebinding); redirects are not
followed; `last_error` tells an admin nothing about internal ports.

The suite allows 127.0.0.0/8 (tests/settings.py, as an operator with a LAN receiver would);
these tests take that away to show the refusal."""

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from rollout_control.core import outbound
from rollout_control.core.models import AuditEntry, WebhookDelivery, WebhookEndpoint
from rollout_control.core.notifications import notify
from rollout_control.core.tasks import deliver_webhook
from tests.processes import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture
def no_allowed_networks(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = []


class Recorder(BaseHTTPRequestHandler):
    requests: list[tuple[int, dict[str, str]]] = []
    answer: tuple[int, dict[str, str]] = (204, {})

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        port = self.server.server_address[1]
        Recorder.requests.append((port, dict(self.headers)))
        status, headers = Recorder.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def servers() -> Iterator[list[int]]:
    """Two local receivers (ports); what they got is in Recorder.requests."""
    Recorder.requests, Recorder.answer = [], (204, {})
    running = [ThreadingHTTPServer(("127.0.0.1", 0), Recorder) for _ in range(2)]
    for server in running:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield [server.server_address[1] for server in running]
    for server in running:
        server.shutdown()


INSIDE = [
    "http://127.0.0.1:8000/",
    "http://127.9.9.9/",
    "http://localhost:5432/",  # a name resolving to loopback
    "http://[::1]:5432/",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.5/",
    "http://172.16.3.4/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",
    "http://0.0.0.0:8000/",
    "http://[::]/",
    "http://224.0.0.1/",
    "http://239.255.255.250:1900/",
    "http://255.255.255.255/",
    "http://[ff02::1]/",
    "http://[fe80::1]/",
    "http://[fd12:3456::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://[::ffff:a9fe:a9fe]/",  # IPv4-mapped 169.254.169.254
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[64:ff9b::a9fe:a9fe]/",  # NAT64 of 169.254.169.254
    "http://2130706433/",  # 127.0.0.1 as one number
    "http://0x7f.1/",
]
NOT_HTTP = ["ftp://example.com/", "file:///etc/passwd", "gopher://93.184.216.34/", "//x/"]


@pytest.mark.parametrize("url", INSIDE + NOT_HTTP)
def test_check_url__inside_or_not_http__refused(no_allowed_networks: None, url: str) -> None:
    with pytest.raises(outbound.TargetRefused):
        outbound.check_url(url)


@pytest.mark.parametrize(
    "url", ["http://93.184.216.34/hook", "https://[2606:4700:4700::1111]:8443/x?y=1"]
)
def test_check_url__public_address__accepted(no_allowed_networks: None, url: str) -> None:
    outbound.check_url(url)


def test_check_url__network_allowed_by_operator__accepted(settings: Any) -> None:
    settings.WEBHOOK_ALLOWED_NETWORKS = [ipaddress.ip_network("10.1.0.0/16")]
    outbound.check_url("http://10.1.2.3/hook")
    with pytest.raises(outbound.TargetRefused):
        outbound.check_url("http://10.2.0.1/hook")


ADMIN_FORM = {
    "name": "ops",
    "kind": "generic",
    "enabled": "on",
    "events": "[]",
    "secret": "",
    "deliveries-TOTAL_FORMS": "0",
    "deliveries-INITIAL_FORMS": "0",
    "deliveries-MIN_NUM_FORMS": "0",
    "deliveries-MAX_NUM_FORMS": "0",
}


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://[::1]:5432/", "loopback"),
        ("http://169.254.169.254/", "link-local"),
        ("ftp://93.184.216.34/", "http"),
    ],
)
def test_admin_webhook_add__inside_target__form_error_on_url_nothing_saved(
    admin_client: Client, no_allowed_networks: None, url: str, says: str
) -> None:
    response = admin_client.post(
        reverse("admin:core_webhookendpoint_add"), ADMIN_FORM | {"url": url}
    )
    assert response.status_code == 200  # the form again, with its errors
    errors = response.context["adminform"].form.errors
    assert list(errors) == ["url"] and says in " ".join(errors["url"])
    assert not WebhookEndpoint.objects.exists()
    assert not AuditEntry.objects.filter(action="webhook.create").exists()


def test_admin_webhook_add__public_target__saved(
    admin_client: Client, no_allowed_networks: None
) -> None:
    form = ADMIN_FORM | {"url": "https://93.184.216.34/hooks"}
    response = admin_client.post(reverse("admin:core_webhookendpoint_add"), form)
    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().url == "https://93.184.216.34/hooks"


def test_delivery__saved_inside_target__refused_at_send_not_sent_not_retried(
    servers: list[int], no_allowed_networks: None
) -> None:
    # Saved past the form (or before the rule existed): the send-time check still refuses.
    WebhookEndpoint.objects.create(name="ops", url=f"http://127.0.0.1:{servers[0]}/", secret="k")
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    assert deliver_webhook.apply(kwargs={"delivery_id": delivery_id}).get() is False
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert delivery.last_error.startswith("Refused:") and delivery.delivered_at is None
    assert Recorder.requests == []


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """DNS (outside the machine) for hooks.example.test: the next answer is popped from the
    list; every other name resolves as usual."""
    answers: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "hooks.example.test":
            return real(host, port, *args, **kwargs)
        address = answers.pop(0)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


def test_delivery__name_rebinds_inside_after_save__refused_at_send(
    resolver: list[str], no_allowed_networks: None, servers: list[int]
) -> None:
    resolver.extend(["93.184.216.34", "127.0.0.1"])  # public when saved, loopback when sent
    endpoint = WebhookEndpoint(name="ops", url=f"http://hooks.example.test:{servers[0]}/")
    endpoint.full_clean()
    endpoint.save()
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    assert deliver_webhook.apply(kwargs={"delivery_id": delivery_id}).get() is False
    assert WebhookDelivery.objects.get(pk=delivery_id).last_error.startswith("Refused:")
    assert Recorder.requests == []


def test_delivery__connects_to_the_checked_address_not_a_second_lookup(
    resolver: list[str], servers: list[int]
) -> None:
    # 127.0.0.0/8 is allowed here (tests/settings.py); the name is looked up once, checked,
    # and that address is the one connected to: a later answer (10.x) is never asked for.
    resolver.extend(["127.0.0.1", "10.9.9.9"])
    WebhookEndpoint.objects.create(name="ops", url=f"http://hooks.example.test:{servers[0]}/h")
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    assert deliver_webhook.apply(kwargs={"delivery_id": delivery_id}).get() is True
    assert Recorder.requests[0][1]["Host"] == f"hooks.example.test:{servers[0]}"
    assert resolver == ["10.9.9.9"]


def test_delivery__302_to_another_port__not_followed_signature_not_forwarded(
    servers: list[int],
) -> None:
    first, second = servers
    Recorder.answer = (302, {"Location": f"http://127.0.0.1:{second}/internal"})
    WebhookEndpoint.objects.create(name="ops", url=f"http://127.0.0.1:{first}/", secret="k3y")
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    with pytest.raises(Exception, match="redirects are not followed"):
        deliver_webhook.apply(kwargs={"delivery_id": delivery_id}).get()
    assert [port for port, _ in Recorder.requests] == [first]
    delivery = WebhookDelivery.objects.get(pk=delivery_id)
    assert (delivery.response_status, delivery.delivered_at) == (302, None)


def test_delivery__closed_port__last_error_says_nothing_about_the_port() -> None:
    endpoint = WebhookEndpoint.objects.create(name="gone", url=f"http://127.0.0.1:{free_port()}/")
    delivery_id = notify(event="e", subject="s", text="t", email=False)[0]
    with pytest.raises(Exception, match="Could not connect"):
        deliver_webhook.apply(kwargs={"delivery_id": delivery_id}).get()
    endpoint.refresh_from_db()
    error = WebhookDelivery.objects.get(pk=delivery_id).last_error
    assert error == endpoint.last_error
    assert error == "Could not connect or got no answer (details in the server log)."
