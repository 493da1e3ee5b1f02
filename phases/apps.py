from django.apps import AppConfig


class PhasesConfig(AppConfig):
    name = "phases"
    verbose_name = "Rollout plans"

    def ready(self) -> None:
        from phases import listeners  # noqa: F401 (hooks into flags: snapshot metadata, manual changes)

        _watch_guardrail_checks()


def _watch_guardrail_checks() -> None:
    """Monitoring's stall alert covers the guardrail checks too (it never imports phases)."""
    from datetime import timedelta

    from django.conf import settings

    from monitoring.heartbeats import heartbeat_watch
    from phases.tasks import GUARDRAILS_HEARTBEAT, STALL_INTERVALS

    def needed() -> bool:
        from phases.selectors import guardrail_checks_needed

        return guardrail_checks_needed()

    heartbeat_watch(
        component=GUARDRAILS_HEARTBEAT,
        label="Guardrail checks",
        stall_after=lambda: timedelta(
            seconds=STALL_INTERVALS * settings.GUARDRAIL_INTERVAL_SECONDS
        ),
        needed=needed,
    )
