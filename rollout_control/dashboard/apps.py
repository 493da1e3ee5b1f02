from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "rollout_control.dashboard"
    label = "dashboard"
    verbose_name = "Dashboard"
