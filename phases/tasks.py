from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from phases.services import admit_cohorts, advance_ramps


@shared_task(
    name="phases.tasks.send_email",
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
    ignore_result=True,
)
def send_email(*, subject: str, body: str, recipients: list[str]) -> None:
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, recipients)


@shared_task(name="phases.tasks.advance_rollouts", ignore_result=True)
def advance_rollouts() -> dict[str, int]:
    """Every 15 minutes: step ramps that are due. Exactly once per target per plan-local date
    however often it runs (the step row is unique), so retries and double beats are harmless."""
    return advance_ramps(now=timezone.now())


@shared_task(name="phases.tasks.admit_cohorts", ignore_result=True)
def admit_cohorts_task() -> dict[str, int]:
    return admit_cohorts(now=timezone.now())


@shared_task(name="phases.tasks.check_guardrails", ignore_result=True)
def check_guardrails_task() -> dict[str, object]:
    """Every minute: guardrails of live plans, then graceful degradation."""
    from phases.services import check_guardrails, degradation_check

    now = timezone.now()
    return check_guardrails(now=now) | {"degradation": degradation_check(now=now)}
