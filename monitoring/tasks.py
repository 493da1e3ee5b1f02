from celery import shared_task

from monitoring.services import heartbeat_record, samples_compact


@shared_task(name="monitoring.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Sent by beat every minute; running it proves both beat and a worker are alive."""
    heartbeat_record(component="worker")


@shared_task(name="monitoring.tasks.compact", ignore_result=True)
def compact() -> dict[str, int]:
    """Hourly: raw samples past their retention become hourly rollups; old rows are pruned."""
    return samples_compact()
