from django.apps import AppConfig
from django.conf import settings


class CoreConfig(AppConfig):
    name = "rollout_control.core"
    label = "core"
    verbose_name = "Accounts, tokens and audit"

    def ready(self) -> None:
        from rollout_control.core import tokens  # noqa: F401 (registers the token snapshot)
        from rollout_control.core.errors import list_valid_choices
        from rollout_control.core.snapshots import store

        store.threaded = settings.SNAPSHOT_POLLER_THREAD
        list_valid_choices()
