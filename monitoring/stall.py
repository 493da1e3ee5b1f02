"""Alerts when beat or the worker stops ticking, once, and once more when it recovers; the same
for the components other apps register (monitoring.heartbeats: the guardrail checks).

Checked from the web processes (the snapshot poller thread, at most every 30 s), because a dead
beat or worker cannot report on itself; sent directly rather than through Celery for the same
reason. A conditional update makes sure only one process sends each alert."""

import logging
import time

from django.utils import timezone

from monitoring.models import Heartbeat
from monitoring.selectors import scheduler_status

logger = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 30.0
_last_check = 0.0


def scheduler_stall_check() -> list[str]:
    """Sends the alerts that are due; returns what it sent, e.g. ["beat stalled"]."""
    from rollout_control.core.notifications import notify

    sent = []
    for status in scheduler_status(now=timezone.now()):
        if status.last_seen_at is None:
            continue  # never started: nothing has stalled yet
        flip = Heartbeat.objects.filter(
            component=status.component, stall_alerted=not status.stalled
        )
        if not flip.update(stall_alerted=status.stalled):
            continue  # no change, or another process already sent it
        state = "stalled" if status.stalled else "recovered"
        subject = f"[scheduler] {status.component} {state}"
        text = f"{status.component} last ran at {status.last_seen_at:%Y-%m-%d %H:%M:%S} UTC."
        if status.idle:  # it did not come back: what needed it is gone
            text += f" Nothing needs {status.label or status.component} now."
        notify(
            event=f"scheduler.{state}",
            subject=subject,
            text=text,
            data={"component": status.component},
            immediate=True,
        )
        sent.append(f"{status.component} {state}")
    return sent


def stall_check_from_poller() -> None:
    global _last_check
    from rollout_control.core.snapshots import store

    if not store.threaded or time.monotonic() - _last_check < CHECK_EVERY_SECONDS:
        return
    _last_check = time.monotonic()
    scheduler_stall_check()
