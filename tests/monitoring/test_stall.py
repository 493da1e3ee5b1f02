from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.core import mail

from monitoring.services import heartbeat_record
from monitoring.stall import scheduler_stall_check

pytestmark = pytest.mark.django_db
START = datetime(2026, 4, 1, 12, 0, tzinfo=UTC)


def test_stall_alert__once_when_stalled_once_when_recovered() -> None:
    with time_machine.travel(START, tick=False) as clock:
        heartbeat_record(component="beat")
        heartbeat_record(component="worker")
        assert scheduler_stall_check() == []
        clock.shift(timedelta(seconds=90))
        heartbeat_record(component="worker")  # the worker keeps going; beat has stopped
        clock.shift(timedelta(seconds=60))
        assert scheduler_stall_check() == ["beat stalled"]
        assert scheduler_stall_check() == []  # once
        assert [m.subject for m in mail.outbox] == ["[scheduler] beat stalled"]
        heartbeat_record(component="beat")
        assert scheduler_stall_check() == ["beat recovered"]
        assert scheduler_stall_check() == []
    assert [m.subject for m in mail.outbox] == [
        "[scheduler] beat stalled",
        "[scheduler] beat recovered",
    ]


def test_stall_alert__component_never_started__no_alert() -> None:
    with time_machine.travel(START, tick=False):
        heartbeat_record(component="worker")
    assert scheduler_stall_check() == ["worker stalled"]  # real time is months later
    assert len(mail.outbox) == 1
