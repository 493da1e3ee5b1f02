from django.apps import AppConfig


class PhasesConfig(AppConfig):
    name = "phases"
    verbose_name = "Rollout plans"

    def ready(self) -> None:
        from phases import listeners  # noqa: F401 (hooks into flags: snapshot metadata, manual changes)
