from celery import shared_task

from monitoring.services import heartbeat_record


@shared_task(name="monitoring.tasks.heartbeat", ignore_result=True)
def heartbeat() -> None:
    """Sent by beat every minute; running it proves both beat and a worker are alive."""
    heartbeat_record(component="worker")
