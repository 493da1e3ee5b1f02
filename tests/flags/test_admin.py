"""The flag admin writes only what the person changed, from the version they read."""

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse

from flags import services
from flags.models import Flag
from rollout_control.core.actors import Actor

pytestmark = pytest.mark.django_db
SYSTEM = Actor.system("test")


@pytest.fixture
def admin_client() -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def _form(client: Client, flag: Flag) -> tuple[str, dict[str, Any]]:
    """The change form as the browser would post it back unchanged."""
    url = reverse("admin:flags_flag_change", args=[flag.pk])
    form = client.get(url).context["adminform"].form
    data = {name: form[name].value() for name in form.fields if not form.fields[name].disabled}
    data = {k: "" if v is None else v for k, v in data.items()}
    return url, data


def test_change_form__one_field_changed__only_that_field_written(admin_client: Client) -> None:
    flag = services.flag_create(key="reports", actor=SYSTEM, rollout_percentage=10)
    url, data = _form(admin_client, flag)
    response = admin_client.post(url, data | {"rollout_percentage": "25", "reason": "more"})
    assert response.status_code == 302, response.content.decode()[:2000]
    flag.refresh_from_db()
    assert (flag.basis_points, flag.version) == (2500, 2)


def test_change_form__stale_form__refused_with_message_nothing_written(
    admin_client: Client,
) -> None:
    flag = services.flag_create(key="reports", actor=SYSTEM, rollout_percentage=10)
    url, data = _form(admin_client, flag)
    # meanwhile, someone turns the kill switch on
    services.flag_set_kill_switch(key="reports", killed=True, actor=SYSTEM, reason="incident")
    response = admin_client.post(url, data | {"description": "new words"})
    assert response.status_code == 200  # the form again, with the error
    assert "changed since you opened it" in response.content.decode()
    flag.refresh_from_db()
    assert (flag.everyone, flag.description, flag.version) == (False, "", 2)


def test_change_form__untouched_state_field__cannot_put_back_a_newer_kill_switch(
    admin_client: Client,
) -> None:
    """Even when the version check is passed (the form re-read after the change), fields the
    person did not change are not sent, so only their edit lands."""
    flag = services.flag_create(key="reports", actor=SYSTEM, rollout_percentage=10)
    services.flag_set_kill_switch(key="reports", killed=True, actor=SYSTEM, reason="incident")
    url, data = _form(admin_client, Flag.objects.get(pk=flag.pk))
    response = admin_client.post(url, data | {"owner": "team-b"})
    assert response.status_code == 302
    flag.refresh_from_db()
    assert (flag.everyone, flag.owner, flag.basis_points) == (False, "team-b", 1000)
    entry = flag_audit_last(flag)
    assert set(k for k in entry.after if entry.after[k] != entry.before[k]) == {"owner", "version"}


def flag_audit_last(flag: Flag) -> Any:
    from rollout_control.core.models import AuditEntry

    return AuditEntry.objects.filter(object_type="flags.flag", object_id=str(flag.pk)).latest("id")
