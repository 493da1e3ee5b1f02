from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

from rollout_control.core.outbound import TargetRefused, check_url


class ApiToken(models.Model):
    """A credential for client apps and automation. Only the SHA-256 of the secret is stored."""

    class Scope(models.TextChoices):
        CLIENT = "client", "Client (public: evaluate, send usage events and feedback, opt in)"
        INGEST = "ingest", "Ingest (server-side reporters: push metric samples)"
        ADMIN = "admin", "Admin (everything, plus manage flags, cohorts and plans)"

    name = models.CharField(max_length=100)
    scope = models.CharField(max_length=10, choices=Scope.choices)
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(
        max_length=12, editable=False, help_text="First characters, to tell tokens apart."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="api_tokens",
        help_text="Decisions made with this token are attributed to this user.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(scope__in=["client", "ingest", "admin"]),
                name="api_token_scope_valid",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.scope}, {self.prefix}…)"

    def is_usable(self, at: "timezone.datetime") -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or self.expires_at > at

    @property
    def is_admin(self) -> bool:
        return self.scope == self.Scope.ADMIN


class AuditEntry(models.Model):
    """One row per change, whoever made it. Written only by `core.services.audit_record`."""

    class ActorType(models.TextChoices):
        USER = "user"
        TOKEN = "token"  # noqa: S105
        SYSTEM = "system"

    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    actor_type = models.CharField(max_length=10, choices=ActorType.choices)
    actor_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    actor_token = models.ForeignKey(
        ApiToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    # Kept as text so the entry still says who acted after the user or token is gone.
    actor_label = models.CharField(max_length=150)
    action = models.CharField(max_length=64)
    object_type = models.CharField(max_length=64)
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    task_id = models.CharField(max_length=64, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"
        indexes = [
            models.Index(
                fields=["object_type", "object_id", "created_at"], name="audit_object_idx"
            ),
            models.Index(fields=["action", "created_at"], name="audit_action_idx"),
        ]

    def __str__(self) -> str:
        when = f"{self.created_at:%Y-%m-%d %H:%M:%S}"
        return f"{when} {self.actor_label} {self.action} {self.object_repr}"


class ConfigVersion(models.Model):
    """A single counter, bumped in the same transaction as any change to what processes cache
    in memory (flags, cohorts, tokens). Each process polls it to know when to rebuild."""

    version = models.BigIntegerField(default=0)
    changed_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"config version {self.version}"


class WebhookEndpoint(models.Model):
    """Where alerts go besides e-mail: generic JSON signed with HMAC-SHA256, or Slack-style."""

    class Kind(models.TextChoices):
        GENERIC = "generic", "Generic JSON (signed)"
        SLACK = "slack", 'Slack-compatible {"text": …}'

    name = models.CharField(max_length=100)
    url = models.URLField(max_length=500)
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.GENERIC)
    secret = models.CharField(
        max_length=200, blank=True, help_text="HMAC key for generic webhooks."
    )
    events = models.JSONField(
        default=list, blank=True, help_text="Event kinds to send; empty = all."
    )
    enabled = models.BooleanField(default=True)
    last_success_at = models.DateTimeField(null=True, blank=True)
    last_failure_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def wants(self, event: str) -> bool:
        return self.enabled and (not self.events or event in self.events)

    def clean(self) -> None:
        # Never aimed inside (issue 14): checked here for the admin form, again at send time.
        if not self.url:
            return  # the field's own validation has said what is wrong
        try:
            check_url(self.url)
        except TargetRefused as exc:
            raise ValidationError({"url": exc.message}) from None


class WebhookDelivery(models.Model):
    """One webhook message and how its delivery went (visible in the admin)."""

    endpoint = models.ForeignKey(
        WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries"
    )
    event = models.CharField(max_length=50)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    delivered_at = models.DateTimeField(null=True, blank=True)
    response_status = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        state = "delivered" if self.delivered_at else f"{self.attempts} attempt(s)"
        return f"{self.event} → {self.endpoint} ({state})"


class OutboxMessage(models.Model):
    """Work owed to the broker (an e-mail, a webhook delivery), written in the transaction that
    owes it and pushed to Celery after the commit (rollout_control/core/outbox.py). A broker
    that is away delays it; it is never lost and never sent twice."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook", "Webhook delivery"

    kind = models.CharField(max_length=20, choices=Kind.choices)
    payload = models.JSONField()
    created_at = models.DateTimeField(default=timezone.now)
    # Not before (a retry's backoff); empty: at once.
    available_at = models.DateTimeField(null=True, blank=True)
    # Last pushed to the broker by the drain (empty: never, or pushed on commit).
    dispatched_at = models.DateTimeField(null=True, blank=True)
    # A run holds the row until then (a worker that dies mid-run frees it by expiry).
    locked_until = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    sent_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(
                fields=["created_at"],
                condition=models.Q(sent_at__isnull=True, failed_at__isnull=True),
                name="core_outbox_pending",
            )
        ]

    def __str__(self) -> str:
        state = "sent" if self.sent_at else "failed" if self.failed_at else "pending"
        return f"{self.kind} #{self.pk} ({state}, {self.attempts} attempt(s))"
