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


def test_stall_alert__mail_server_hangs__poller_hook_returns_at_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The alert runs on its own timer thread: a hanging send cannot hold up the snapshot poller
    (and with it every flag change reaching this process)."""
    import threading

    from monitoring import stall
    from rollout_control.core.snapshots import store

    entered, release = threading.Event(), threading.Event()

    def hanging_check() -> list[str]:
        entered.set()
        release.wait(30)
        threading.Event().wait()  # parks this daemon thread for good: it must not loop on
        return []  # into the real check once the test has ended

    monkeypatch.setattr(stall, "scheduler_stall_check", hanging_check)
    monkeypatch.setattr(stall, "CHECK_EVERY_SECONDS", 0.01)
    monkeypatch.setattr(stall, "_started_in", None)
    monkeypatch.setattr(store, "threaded", True)
    hook = threading.Thread(target=stall.stall_check_from_poller)
    hook.start()
    hook.join(2)
    try:
        assert not hook.is_alive()  # the poller's hook returned
        assert entered.wait(5)  # while the check itself is stuck on its own thread
        stall.stall_check_from_poller()  # and again: no second timer in this process
        assert [t.name for t in threading.enumerate()].count("stall-alerts") == 1
    finally:
        release.set()
