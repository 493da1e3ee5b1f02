from django.apps import AppConfig


class FeedbackConfig(AppConfig):
    name = "feedback"
    verbose_name = "Beta feedback"

    def ready(self) -> None:
        from feedback.providers import FeedbackProvider
        from monitoring.providers import register_provider

        # Gates and guardrails read feedback_open_critical, feedback_satisfaction, … from here.
        register_provider("feedback", FeedbackProvider())

        from feedback.metrics import QueueCollector
        from rollout_control.core.metrics import register_collector

        register_collector(QueueCollector())
