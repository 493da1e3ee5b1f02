"""The published OFREP web provider (from npm, bundled with esbuild) in Chromium, cross-origin.

The page is served from one loopback port and the API from another, so every OFREP call is a CORS
request (with a preflight: it sends Authorization and a JSON content type). The provider uses the
bulk endpoint and polls it with If-None-Match, so an unchanged configuration comes back as 304.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from playwright.sync_api import Page, Response, expect

from flags import services
from rollout_control.core.services import api_token_create
from tests.e2e.conftest import screenshot
from tests.flags.test_ofrep_providers import SYSTEM, admin_patch, two_worker_server, unit_for
from tests.processes import free_port, running, wait_http

pytestmark = [pytest.mark.e2e, pytest.mark.slow, pytest.mark.django_db(transaction=True)]

WEB = Path(__file__).resolve().parent / "ofrep_web"
POLL_MS = 250

PAGE = """<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Checkout</title><link rel="icon" href="data:,"></head>
<body>
  <h1>Checkout</h1>
  <p>new-checkout for {unit}: <output id="value">loading</output></p>
  <script id="config" type="application/json">{config}</script>
  <script src="ofrep-web.js"></script>
</body>
</html>
"""


def build_bundle(out_dir: Path) -> None:
    """`npm ci` when node_modules is missing, then esbuild bundles entry.js into out_dir."""
    npm, node = shutil.which("npm"), shutil.which("node")
    assert npm and node, "node and npm are needed (.ci/run installs them)"
    if not (WEB / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=WEB, check=True)
    subprocess.run([node, "build.mjs", str(out_dir / "ofrep-web.js")], cwd=WEB, check=True)


class NetworkLog:
    """The page's bulk OFREP responses, plus a readable trace of everything for failure messages."""

    def __init__(self, page: Page, bulk_url: str) -> None:
        self.bulk_url = bulk_url
        self.responses: list[tuple[float, Response]] = []
        self.lines: list[str] = []
        self._started = time.monotonic()
        page.on("response", self._response)
        page.on("requestfailed", lambda r: self._note(f"FAILED {r.method} {r.url} {r.failure}"))
        page.on("console", lambda m: self._note(f"console {m.type}: {m.text}"))

    def _note(self, line: str) -> None:
        self.lines.append(f"{time.monotonic() - self._started:7.3f} {line}")

    def _response(self, response: Response) -> None:
        self._note(f"{response.request.method} {response.url} -> {response.status}")
        if response.url == self.bulk_url:
            self.responses.append((time.monotonic(), response))

    def statuses(self) -> list[int]:
        return [r.status for _, r in self.responses]

    def __str__(self) -> str:
        return "\n".join(self.lines)


def test_ofrep_web_provider__cross_origin__polls_with_304_and_sees_kill_switch(
    tmp_path: Path, page: Page, console_errors: list[str]
) -> None:
    client_token = api_token_create(name="web", scope="client", actor=SYSTEM)[1]
    admin_token = api_token_create(name="ops", scope="admin", actor=SYSTEM)[1]
    services.flag_create(key="new-checkout", actor=SYSTEM, rollout_percentage=50)
    unit = unit_for("new-checkout", 5000, on=True)

    site = tmp_path / "site"
    site.mkdir()
    build_bundle(site)
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    static = [sys.executable, "-m", "http.server", str(page_port), "--bind", "127.0.0.1"]
    static_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}

    with (
        two_worker_server(tmp_path, CORS_ALLOWED_ORIGINS=origin) as server,
        running(static, env=static_env, cwd=site) as static_server,
    ):
        assert server.base != origin
        config = {
            "baseUrl": server.base,
            "token": client_token,
            "flag": "new-checkout",
            "context": {"targetingKey": unit},
            "pollInterval": POLL_MS,
        }
        (site / "index.html").write_text(PAGE.format(unit=unit, config=json.dumps(config)))
        wait_http(f"{origin}/index.html", 10, static_server)
        network = NetworkLog(page, f"{server.base}/ofrep/v1/evaluate/flags")

        def wait_for(condition: Callable[[], bool], seconds: float) -> None:
            deadline = time.monotonic() + seconds
            while not condition() and time.monotonic() < deadline:
                page.wait_for_timeout(50)  # lets Playwright deliver the network events
            assert condition(), str(network)

        page.goto(f"{origin}/index.html")
        value = page.locator("#value")
        expect(value).to_have_text("true (SPLIT, variant on)")
        expect(value).to_have_attribute("data-value", "true")

        wait_for(lambda: network.statuses().count(304) >= 2, 5)
        first = network.responses[0][1]
        assert first.status == 200 and first.headers.get("etag"), str(network)

        admin_patch(server.base, "new-checkout", admin_token, {"kill_switch": True})
        patched = time.monotonic()
        expect(value).to_have_attribute("data-reason", "DISABLED", timeout=5000)
        shown = time.monotonic() - patched
        expect(value).to_have_text("false (DISABLED, variant off)")
        print(f"\nthe web provider showed the kill switch {shown:.3f}s after the PATCH returned")
        changed = [r for t, r in network.responses if t > patched and r.status == 200]
        assert changed, str(network)
        new_etag = changed[0].headers.get("etag")
        assert new_etag and new_etag != first.headers["etag"]
        # The provider goes on polling with the new ETag, and is answered 304.
        wait_for(lambda: network.responses[-1][1].headers.get("etag") == new_etag, 3)
        wait_for(lambda: network.responses[-1][1].status == 304, 3)
        screenshot(page, "ofrep-web-provider")

    assert set(network.statuses()) == {200, 304}, str(network)
    # Each poll sends the ETag of the last 200 it had; a 304 carries that same ETag back.
    last_etag = None
    for _, response in network.responses:
        assert response.request.method == "POST"
        assert response.headers.get("access-control-allow-origin") == origin
        sent = response.request.headers.get("if-none-match")
        assert sent == last_etag, str(network)
        if response.status == 200:
            last_etag = response.headers["etag"]
        else:
            assert response.headers.get("etag") == sent
    assert last_etag == new_etag
    # Polling every POLL_MS: the change shows within a poll or two plus the propagation.
    assert shown < 2 * POLL_MS / 1000 + 2, shown
