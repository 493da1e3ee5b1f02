"""Someone notices when the safety net stops (issue 13, point 6).

Beat is played by `_minute`: each simulated minute the scheduler components tick, the guardrail
task runs if its periodic task is enabled (as beat would run it), and a web process's stall
check looks at the heartbeats. The team's alerts are the e-mails in `mail.outbox`."""

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail
from django.db import connection
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from monitoring.selectors import scheduler_status
from monitoring.services import heartbeat_record, samples_ingest
from monitoring.stall import scheduler_stall_check
from phases import services
from phases.models import RolloutPlan
from phases.tasks import check_guardrails_task
from rollout_control.celery import app
from rollout_control.core.services import periodic_task_set_enabled
from rollout_control.schedule import BEAT_SCHEDULE, install_periodic_tasks
from tests.phases.conftest import COHORTS, SYSTEM, two_flag_release

pytestmark = pytest.mark.django_db
START = datetime(2026, 4, 1, 12, 0, 30, tzinfo=UTC)
GUARDRAIL_TASK = "check guardrails"


@pytest.fixture
def clock() -> Iterator[time_machine.Traveller]:
    with time_machine.travel(START, tick=False) as coordinates:
        install_periodic_tasks(app, BEAT_SCHEDULE)
        yield coordinates


def _live_plan(release_flags: dict[str, str]) -> RolloutPlan:
    plan = services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=release_flags,
        actor=SYSTEM,
        cohorts={c: c for c in COHORTS},
    )
    return services.plan_activate(plan=plan, actor=SYSTEM)


def _set_task(enabled: bool) -> None:
    task = PeriodicTask.objects.get(name=GUARDRAIL_TASK)
    periodic_task_set_enabled(task=task, enabled=enabled, actor=SYSTEM)


def _minute(clock: time_machine.Traveller) -> list[str]:
    """One minute later: beat and the worker tick, the guardrail task runs when enabled (and
    may crash), the stall check runs; returns the guardrail alerts it sent."""
    clock.shift(timedelta(seconds=60))
    heartbeat_record(component="beat")
    heartbeat_record(component="worker")
    # A calm stress reading: each run's degradation check then updates its state row.
    samples_ingest(items=[{"metric": "stress", "value": 0.3}])
    if PeriodicTask.objects.get(name=GUARDRAIL_TASK).enabled:
        with contextlib.suppress(Exception):  # a crashing run: the worker would log it
            check_guardrails_task()
    return [alert for alert in scheduler_stall_check() if alert.startswith("guardrails")]


def _guardrail_mail() -> list[str]:
    return [m.subject for m in mail.outbox if m.subject.startswith("[scheduler] guardrails")]


def _status(component: str = "guardrails") -> object:
    return {s.component: s for s in scheduler_status(now=timezone.now())}[component]


def test_guardrail_stall__task_disabled_with_live_plan__one_alert_then_one_on_recovery(
    release_flags: dict[str, str], clock: time_machine.Traveller
) -> None:
    _live_plan(release_flags)
    assert _minute(clock) == []  # checks run: heartbeat fresh
    ran_at = timezone.now()
    _set_task(False)  # someone disables it in the admin
    assert [_minute(clock) for _ in range(3)] == [[], [], []]  # 180 s: not yet three intervals
    assert _minute(clock) == ["guardrails stalled"]
    assert _status().stalled and _status().last_seen_at == ran_at
    assert [_minute(clock) for _ in range(10)] == [[]] * 10  # once, not every check
    assert _guardrail_mail() == ["[scheduler] guardrails stalled"]

    _set_task(True)
    assert _minute(clock) == ["guardrails recovered"]
    assert [_minute(clock) for _ in range(5)] == [[]] * 5
    assert _guardrail_mail() == [
        "[scheduler] guardrails stalled",
        "[scheduler] guardrails recovered",
    ]
    assert not _status().stalled


def test_guardrail_stall__no_live_plan__no_alert_until_a_plan_goes_live(
    release_flags: dict[str, str], clock: time_machine.Traveller
) -> None:
    assert _minute(clock) == []
    _set_task(False)
    assert [_minute(clock) for _ in range(10)] == [[]] * 10  # nothing to check: no alert
    assert _status().idle and not _status().stalled
    assert _guardrail_mail() == []

    _live_plan(release_flags)  # now the stopped checks matter at once
    assert _minute(clock) == ["guardrails stalled"]


def test_guardrail_stall__never_ran_on_fresh_install__no_alert(
    clock: time_machine.Traveller,
) -> None:
    _set_task(False)
    assert [_minute(clock) for _ in range(5)] == [[]] * 5
    status = _status()
    assert (status.last_seen_at, status.stalled, status.idle) == (None, False, True)


def test_guardrail_stall__every_run_crashes__one_alert_then_one_on_recovery(
    release_flags: dict[str, str], clock: time_machine.Traveller
) -> None:
    _live_plan(release_flags)
    assert _minute(clock) == []
    # The database refuses the degradation state's update: every run fails as a whole after
    # its guardrails (one failing guardrail is that guardrail's `error`, not a failed run).
    with connection.cursor() as cursor:
        cursor.execute(
            "CREATE FUNCTION refuse_writes() RETURNS trigger LANGUAGE plpgsql AS"
            " $$ BEGIN RAISE EXCEPTION 'disk full'; END $$;"
            " CREATE TRIGGER refuse_writes BEFORE UPDATE ON phases_degradationstate"
            " FOR EACH ROW EXECUTE FUNCTION refuse_writes();"
        )
    with pytest.raises(Exception, match="disk full"):
        check_guardrails_task()
    alerts = [_minute(clock) for _ in range(6)]
    assert alerts == [[], [], [], ["guardrails stalled"], [], []]

    with connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER refuse_writes ON phases_degradationstate")
    assert _minute(clock) == ["guardrails recovered"]
    assert _guardrail_mail() == [
        "[scheduler] guardrails stalled",
        "[scheduler] guardrails recovered",
    ]


def _guardrail_row(client: Client) -> str:
    page = client.get(reverse("dashboard:home")).content.decode()
    return page.split(">Guardrail checks<", 1)[1].split("</tr>", 1)[0]


def test_guardrail_stall__dashboard__shows_when_guardrail_checks_last_ran(
    release_flags: dict[str, str], clock: time_machine.Traveller, release_manager: object
) -> None:
    client = Client()
    client.force_login(release_manager)
    _live_plan(release_flags)
    _minute(clock)
    row = _guardrail_row(client)
    assert "running" in row and "never" not in row
    _set_task(False)
    for _ in range(4):
        _minute(clock)
    row = _guardrail_row(client)
    assert "stalled" in row and "4\xa0minutes ago" in row
