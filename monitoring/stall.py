"""Alerts when beat or the worker stops ticking, once, and once more when it recovers; the same
for the components other apps register (monitoring.heartbeats: the guardrail checks).

Checked from the web processes, because a dead beat or worker cannot report on itself; sent
directly rather than through Celery for the same reason. The check runs on a timer thread of its
own (started by the snapshot poller, every 30 s), never on the poller itself: a mail server or
webhook that hangs (EMAIL_TIMEOUT, the webhook timeout) must not stop flag changes reaching this
process. A conditional update makes sure only one process sends each alert."""

import logging
import os
import threading
import time

from django.utils import timezone

from monitoring.models import Heartbeat
from monitoring.selectors import scheduler_status

logger = logging.getLogger(__name__)
CHECK_EVERY_SECONDS = 30.0


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


_started_in: int | None = None
_start_lock = threading.Lock()


def _check_forever() -> None:
    from django.db import close_old_connections

    while True:
        time.sleep(CHECK_EVERY_SECONDS)
        try:
            scheduler_stall_check()
        except Exception:
            logger.warning("scheduler stall check failed", exc_info=True)
        finally:
            close_old_connections()


def stall_check_from_poller() -> None:
    """The poller's hook: makes sure this process's stall-alert timer runs (one per process, a
    new one after a fork). It returns at once whatever the check is doing."""
    global _started_in
    from rollout_control.core.snapshots import store

    if not store.threaded or _started_in == os.getpid():
        return
    with _start_lock:
        if _started_in == os.getpid():
            return
        _started_in = os.getpid()
        threading.Thread(target=_check_forever, name="stall-alerts", daemon=True).start()
