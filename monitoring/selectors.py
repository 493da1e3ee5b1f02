from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from monitoring.models import Heartbeat
from rollout_control.schedule import HEARTBEAT_INTERVAL_SECONDS

STALL_AFTER = timedelta(seconds=2 * HEARTBEAT_INTERVAL_SECONDS)


@dataclass(frozen=True, slots=True)
class ComponentStatus:
    component: str
    last_seen_at: datetime | None
    stalled: bool


def scheduler_status(*, now: datetime | None = None) -> list[ComponentStatus]:
    """Beat and worker, each stalled when not seen for more than two heartbeat intervals."""
    now = now or timezone.now()
    seen = dict(Heartbeat.objects.values_list("component", "last_seen_at"))
    return [
        ComponentStatus(
            component=component,
            last_seen_at=seen.get(component),
            stalled=seen.get(component) is None or now - seen[component] > STALL_AFTER,
        )
        for component in Heartbeat.Component.values
    ]
