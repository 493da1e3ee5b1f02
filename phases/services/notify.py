"""Messages about plans: kickoff e-mails to a phase's cohort contacts, and decision notes to the
team. Rendered here, written to the outbox (core/outbox.py) and sent by Celery after the
transaction commits."""

from django.conf import settings
from django.template import Context, Template

from phases.models import Phase
from rollout_control.core.outbox import outbox_email

DEFAULT_KICKOFF_SUBJECT = "{{ plan }} - {{ phase }} beginning {{ date }}"
DEFAULT_KICKOFF_BODY = """Dear {{ recipient }},

We're excited to announce that your organization has been selected for {{ phase }}
of the {{ plan }} rollout!

What to Expect:
- Go-live date: {{ date }}
- Support available: {{ support_hours }}
- Contact: {{ support_contact }}

Next Steps:
1. Attend training session
2. Review getting started guide
3. Begin using the new features
4. Provide feedback

We're here to support you every step of the way!

Best regards,
{{ team }}
"""


def _render(template: str, context: dict[str, object]) -> str:
    return Template(template).render(Context(context, autoescape=False))


def _send_later(subject: str, body: str, recipients: list[str]) -> None:
    # In the outbox with the change, sent after the commit, also when the broker was away then.
    if recipients:
        outbox_email(subject=subject, body=body, recipients=recipients)


def phase_contacts(phase: Phase) -> list[str]:
    cohorts = {t.cohort for t in phase.targets.select_related("cohort") if t.cohort_id}
    cohorts |= {a.cohort for a in phase.admissions.select_related("cohort")}
    return sorted({address for cohort in cohorts for address in cohort.contacts})


def send_kickoff(phase: Phase) -> list[str]:
    """One message per contact, rendered from the phase's (editable) kickoff template."""
    recipients = phase_contacts(phase)
    base = {
        "plan": phase.plan.name,
        "phase": phase.name,
        "date": f"{phase.started_at:%Y-%m-%d}" if phase.started_at else "",
        "support_hours": settings.SUPPORT_HOURS,
        "support_contact": settings.SUPPORT_CONTACT,
        "team": settings.TEAM_NAME,
    }
    for address in recipients:
        context = base | {"recipient": address}
        subject = _render(phase.kickoff_subject or DEFAULT_KICKOFF_SUBJECT, context).strip()
        _send_later(
            subject, _render(phase.kickoff_body or DEFAULT_KICKOFF_BODY, context), [address]
        )
    return recipients


def send_team_note(
    event: str, subject: str, body: str, data: dict[str, object] | None = None
) -> list[str]:
    """E-mail to the team and every interested webhook (see core/notifications.py)."""
    from rollout_control.core.notifications import notify

    notify(event=event, subject=subject, text=body, data=data)
    return list(settings.TEAM_EMAILS)
