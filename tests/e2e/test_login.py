import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from playwright.sync_api import Page, expect

from tests.e2e.conftest import screenshot

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def _release_manager() -> None:
    user = get_user_model().objects.create_user(username="rita", password="a-long-password-1")
    user.groups.add(Group.objects.get_or_create(name="release_manager")[0])


def test_login__release_manager__sees_home(
    live_server: object, page: Page, console_errors: list[str]
) -> None:
    _release_manager()
    page.goto(f"{live_server.url}/")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
    screenshot(page, "login")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("a-long-password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Rollouts")).to_be_visible()
    expect(page.get_by_text("release manager")).to_be_visible()
    expect(page.get_by_role("heading", name="Scheduler")).to_be_visible()
    screenshot(page, "home")


def test_login__wrong_password__error_shown(
    live_server: object, page: Page, console_errors: list[str]
) -> None:
    _release_manager()
    page.goto(f"{live_server.url}/accounts/login/")
    page.get_by_label("Username").fill("rita")
    page.get_by_label("Password").fill("nope")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("correct username and password")
