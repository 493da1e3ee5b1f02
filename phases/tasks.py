from celery import shared_task
from django.conf import settings
from django.core.mail import send_mail
from django.utils import timezone

from monitoring.services import heartbeat_record
from phases.services import admit_cohorts, advance_ramps
from rollout_control.core.validators import one_line


@shared_task(
    name="phases.tasks.send_email",
    autoretry_for=(OSError,),
    retry_backoff=5,
    retry_backoff_max=600,
    max_retries=8,
    ignore_result=True,
)
def send_email(*, subject: str, body: str, recipients: list[str]) -> None:
    # Kickoff subjects hold plan and phase names: one line, or BadHeaderError loses the message.
    send_mail(one_line(subject), body, settings.DEFAULT_FROM_EMAIL, recipients)


@shared_task(name="phases.tasks.advance_rollouts", ignore_result=True)
def advance_rollouts() -> dict[str, int]:
    """Every 15 minutes: step ramps that are due. Exactly once per target per plan-local date
    however often it runs (the step row is unique), so retries and double beats are harmless."""
    return advance_ramps(now=timezone.now())


@shared_task(name="phases.tasks.admit_cohorts", ignore_result=True)
def admit_cohorts_task() -> dict[str, int]:
    return admit_cohorts(now=timezone.now())


# The heartbeat a completed guardrail run records; without one for STALL_INTERVALS guardrail
# intervals while a live plan has guardrails, the team is alerted (monitoring.stall).
GUARDRAILS_HEARTBEAT = "guardrails"
STALL_INTERVALS = 3


@shared_task(name="phases.tasks.check_guardrails", ignore_result=True)
def check_guardrails_task() -> dict[str, object]:
    """Every minute: guardrails of live plans, then graceful degradation. Only a run that
    completes records the heartbeat, so a run that crashes every time counts as stopped."""
    from phases.services import check_guardrails, degradation_check

    now = timezone.now()
    result = check_guardrails(now=now) | {"degradation": degradation_check(now=now)}
    heartbeat_record(component=GUARDRAILS_HEARTBEAT)
    return result
