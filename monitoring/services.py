from django.utils import timezone

from monitoring import metrics
from monitoring.models import Heartbeat


def heartbeat_record(*, component: str) -> Heartbeat:
    """Notes that a scheduler component is alive. Not audited: it is telemetry, not a change."""
    now = timezone.now()
    heartbeat, _ = Heartbeat.objects.update_or_create(
        component=component, defaults={"last_seen_at": now}
    )
    metrics.scheduler_heartbeat_timestamp_seconds.labels(component).set(now.timestamp())
    return heartbeat
