from django.db import models
from django.utils import timezone


class Heartbeat(models.Model):
    """When a scheduler component (beat, worker) last ran. One row per component."""

    class Component(models.TextChoices):
        BEAT = "beat"
        WORKER = "worker"

    component = models.CharField(max_length=20, choices=Component.choices, unique=True)
    last_seen_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"{self.component} last seen {self.last_seen_at:%Y-%m-%d %H:%M:%S}"
