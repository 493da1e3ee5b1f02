from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "rollout_control.core"
    label = "core"
    verbose_name = "Accounts, tokens and audit"
