from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail

from rollout_control.core.notifications import webhook_deliver
from rollout_control.core.outbox import outbox_drain, outbox_run
from rollout_control.core.validators import one_line


# deliver_webhook and send_team_email are what releases before the outbox queued; kept so
# messages still in the broker at an upgrade are sent. New messages go through outbox_send.
@shared_task(
    name="core.tasks.deliver_webhook",
    autoretry_for=(OSError,),
    retry_backoff=2,
    retry_backoff_max=600,
    max_retries=10,
    ignore_result=True,
)
def deliver_webhook(*, delivery_id: int) -> bool:
    return webhook_deliver(delivery_id=delivery_id)


@shared_task(
    name="core.tasks.send_team_email",
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
    ignore_result=True,
)
def send_team_email(*, subject: str, body: str, recipients: list[str]) -> None:
    # one_line: a BadHeaderError is not retried, so a bad subject would lose the message.
    send_mail(one_line(subject), body, settings.DEFAULT_FROM_EMAIL, recipients)


@shared_task(name="core.tasks.outbox_send", ignore_result=True)
def outbox_send(*, message_id: int) -> bool:
    # Retries are the outbox's (backoff on the row, pushed again by the drain), not Celery's:
    # a retry queued in a broker that then goes away would be lost.
    return outbox_run(message_id=message_id)


@shared_task(name="core.tasks.outbox_drain", ignore_result=True)
def outbox_drain_task() -> int:
    return outbox_drain()
