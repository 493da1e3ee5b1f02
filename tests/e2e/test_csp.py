"""The Content-Security-Policy allows no inline script, and the pages still work under it: a
violation is a console error, which fails every browser test (tests/e2e/conftest.py)."""

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _policy(response: object) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]  # type: ignore[index]
    return {
        name: values
        for name, *values in (part.split() for part in header.split(";") if part.strip())
    }


def test_pages__csp_header__scripts_only_from_self_no_inline() -> None:
    client = Client()
    for path in ("/accounts/login/", "/api/docs/"):
        policy = _policy(client.get(path))
        assert policy["script-src"] == ["'self'"], path
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert "Content-Security-Policy" not in client.get("/healthz")


def test_api_docs__under_the_policy__swagger_ui_renders(
    live_server: object, page: Page, console_errors: list[str]
) -> None:
    get_user_model().objects.create_user(username="dev", password="x")
    page.goto(f"{live_server.url}/api/docs/")  # type: ignore[attr-defined]
    expect(page.locator(".swagger-ui .information-container")).to_be_visible(timeout=20_000)
    expect(page.get_by_text("/ofrep/v1/evaluate/flags/{key}").first).to_be_visible()
    screenshot(page, "api-docs")
