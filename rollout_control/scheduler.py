"""Beat's scheduler: django-celery-beat's database scheduler, plus a heartbeat and an install
step that never overwrites what an operator changed in the admin."""

import time
from typing import Any

from django_celery_beat.schedulers import DatabaseScheduler

from rollout_control.schedule import install_periodic_tasks

BEAT_HEARTBEAT_SECONDS = 30.0


class Scheduler(DatabaseScheduler):
    _last_heartbeat = 0.0

    def update_from_dict(self, mapping: dict[str, dict[str, Any]]) -> None:
        install_periodic_tasks(self.app, mapping)

    def tick(self, *args: Any, **kwargs: Any) -> float:
        delay = super().tick(*args, **kwargs)
        now = time.monotonic()
        if now - self._last_heartbeat >= BEAT_HEARTBEAT_SECONDS:
            from monitoring.services import heartbeat_record

            heartbeat_record(component="beat")
            self._last_heartbeat = now
        return delay
