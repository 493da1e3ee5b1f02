from datetime import UTC, datetime

import pytest
from django.core import mail

from phases import services
from tests.phases.conftest import SYSTEM, two_flag_release

pytestmark = pytest.mark.django_db
START = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
COHORT_MAP = {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]}


def _plan(release_flags: dict) -> object:
    return services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=release_flags,
        cohorts=COHORT_MAP,
        actor=SYSTEM,
    )


def test_kickoff__phase_start__one_message_per_cohort_contact(
    release_flags: dict, django_capture_on_commit_callbacks: object
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        services.plan_activate(plan=_plan(release_flags), actor=SYSTEM, now=START)
    assert [m.to for m in mail.outbox] == [["internal@example.com"]]
    message = mail.outbox[0]
    assert message.subject == "Stripboard - Internal testing beginning 2026-03-02"
    assert "selected for Internal testing" in message.body
    assert "Dear internal@example.com" in message.body


def test_kickoff__edited_template__used(
    release_flags: dict, django_capture_on_commit_callbacks: object
) -> None:
    plan = _plan(release_flags)
    first = plan.phases.get(position=0)
    first.kickoff_subject = "Hello {{ recipient }}: {{ phase }}"
    first.save(update_fields=["kickoff_subject"])
    with django_capture_on_commit_callbacks(execute=True):
        services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    assert mail.outbox[0].subject == "Hello internal@example.com: Internal testing"


def test_decision__notifies_the_team(
    release_flags: dict, managers: tuple, django_capture_on_commit_callbacks: object
) -> None:
    ann, _ = managers
    plan = _plan(release_flags)
    services.plan_activate(plan=plan, actor=SYSTEM, now=START)
    mail.outbox.clear()
    with django_capture_on_commit_callbacks(execute=True):
        services.decide(
            phase=plan.phases.get(status="active"),
            kind="no_go",
            user=ann,
            comment="error rate too high",
        )
    assert [m.to for m in mail.outbox] == [["releases@example.com"]]
    assert mail.outbox[0].subject == "[NO-GO] Stripboard: Internal testing"
    assert "error rate too high" in mail.outbox[0].body


def test_send_email__smtp_down__retry_scheduled_not_lost(settings: object) -> None:
    from celery.exceptions import Retry

    from phases.tasks import send_email
    from tests.processes import free_port

    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", free_port()  # nothing listens there
    with pytest.raises(Retry) as retry:
        send_email.apply(kwargs={"subject": "s", "body": "b", "recipients": ["ops@example.com"]})
    assert isinstance(retry.value.exc, ConnectionRefusedError)
    assert 0 <= retry.value.when <= 5  # first backoff step (jittered)
