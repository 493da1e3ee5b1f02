from datetime import datetime

from django.conf import settings
from django.db import models
from django.db.models.functions import Length
from django.db.models.lookups import LessThanOrEqual
from django.utils import timezone

MAX_TEXT = 10_000


class FeedbackType(models.TextChoices):
    BUG = "bug", "Bug"
    BLOCKER = "blocker", "Blocker"
    USABILITY = "usability", "Usability"
    FEATURE_REQUEST = "feature_request", "Feature request"
    QUESTION = "question", "Question"
    PRAISE = "praise", "Praise"


class FeedbackPriority(models.TextChoices):
    CRITICAL = "critical", "Critical"
    HIGH = "high", "High"
    MEDIUM = "medium", "Medium"
    LOW = "low", "Low"


class FeedbackStatus(models.TextChoices):
    NEW = "new", "New"
    TRIAGED = "triaged", "Triaged"
    IN_PROGRESS = "in_progress", "In progress"
    RESOLVED = "resolved", "Resolved"
    CLOSED = "closed", "Closed"
    DUPLICATE = "duplicate", "Duplicate"


class FeedbackSource(models.TextChoices):
    API = "api", "Client app"
    DASHBOARD = "dashboard", "Dashboard"


class FeedbackItem(models.Model):
    """One piece of beta feedback, with the flag state its reporter saw when sending it.

    `due_at` is the response deadline (created_at + the priority's response target). An item is
    answered once staff first triage or comment on it (`first_response_at`); an open item past
    its deadline without an answer is overdue, and the beat task stamps `overdue_at` when it
    notifies about it."""

    Type = FeedbackType
    Priority = FeedbackPriority
    Status = FeedbackStatus
    Source = FeedbackSource

    OPEN_STATUSES = (Status.NEW, Status.TRIAGED, Status.IN_PROGRESS)

    type = models.CharField(max_length=20, choices=Type.choices)
    text = models.TextField()
    rating = models.PositiveSmallIntegerField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=Priority.choices)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)

    flag_key = models.CharField(max_length=100, blank=True)
    unit = models.CharField(max_length=200, blank=True)
    org = models.CharField(max_length=200, blank=True)
    app_version = models.CharField(max_length=50, blank=True)
    metadata = models.JSONField(default=dict, blank=True)

    # The flag as the reporter saw it at intake (null when no flag was named).
    flag_value = models.BooleanField(null=True, blank=True)
    flag_reason = models.CharField(max_length=30, blank=True)
    flag_percentage = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    flag_cohort = models.CharField(max_length=100, blank=True)
    # The live plan that owned the flag then, and its active phase; the names are kept as they
    # were, so gates and filters still find the item after a rename or a deleted plan.
    plan = models.ForeignKey(
        "phases.RolloutPlan", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    phase = models.ForeignKey(
        "phases.Phase", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    plan_name = models.CharField(max_length=200, blank=True)
    phase_name = models.CharField(max_length=100, blank=True)

    source = models.CharField(max_length=10, choices=Source.choices, default=Source.API)
    submitted_by = models.CharField(max_length=150, help_text="The token or user that sent it.")
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)
    due_at = models.DateTimeField(help_text="Response deadline from the priority's target.")
    first_response_at = models.DateTimeField(null=True, blank=True)
    overdue_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(
        null=True, blank=True, help_text="When it became resolved, closed or a duplicate."
    )
    time_to_resolution = models.DurationField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="assigned_feedback",
    )
    duplicate_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.PROTECT, related_name="duplicates"
    )
    exclusion_requested_at = models.DateTimeField(null=True, blank=True)
    exclusion_requested_by = models.CharField(max_length=150, blank=True)
    unit_excluded_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["due_at", "id"]
        indexes = [
            models.Index(fields=["status", "due_at"], name="feedback_status_due_idx"),
            models.Index(fields=["priority", "status"], name="feedback_priority_status_idx"),
            models.Index(fields=["created_at"], name="feedback_created_idx"),
            models.Index(fields=["flag_key", "created_at"], name="feedback_flag_created_idx"),
            models.Index(fields=["plan_name", "created_at"], name="feedback_plan_created_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(rating__isnull=True)
                | (models.Q(rating__gte=1) & models.Q(rating__lte=5)),
                name="feedback_rating_1_to_5",
            ),
            models.CheckConstraint(condition=~models.Q(text=""), name="feedback_text_not_empty"),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("text"), MAX_TEXT), name="feedback_text_max"
            ),
            models.CheckConstraint(
                condition=models.Q(type__in=FeedbackType.values), name="feedback_type_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(priority__in=FeedbackPriority.values),
                name="feedback_priority_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=FeedbackStatus.values),
                name="feedback_status_valid",
            ),
            models.CheckConstraint(
                condition=models.Q(status="duplicate", duplicate_of__isnull=False)
                | (~models.Q(status="duplicate") & models.Q(duplicate_of__isnull=True)),
                name="feedback_duplicate_has_original",
            ),
            models.CheckConstraint(
                condition=~models.Q(duplicate_of=models.F("id")), name="feedback_not_own_duplicate"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.get_type_display()}: {self.text[:60]}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    def is_overdue(self, now: datetime | None = None) -> bool:
        """Open, unanswered and past its response deadline (whether or not beat saw it yet)."""
        now = now or timezone.now()
        return self.is_open and self.first_response_at is None and self.due_at <= now

    @property
    def can_exclude_unit(self) -> bool:
        """A blocker (or an item staff rated critical) naming a flag and a unit."""
        serious = self.type == FeedbackType.BLOCKER or self.priority == FeedbackPriority.CRITICAL
        return serious and bool(self.flag_key and self.unit)

    @property
    def answered_in_time(self) -> bool | None:
        if self.first_response_at is None:
            return None
        return self.first_response_at <= self.due_at


class FeedbackComment(models.Model):
    """An internal note by staff; reporters never see these."""

    item = models.ForeignKey(FeedbackItem, on_delete=models.CASCADE, related_name="comments")
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    author_label = models.CharField(max_length=150)
    text = models.TextField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(condition=~models.Q(text=""), name="feedback_comment_not_empty"),
            models.CheckConstraint(
                condition=LessThanOrEqual(Length("text"), MAX_TEXT),
                name="feedback_comment_max",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.author_label} on #{self.item_id}: {self.text[:60]}"


class FeedbackEvent(models.Model):
    """The item's own history, one row per change, shown on its page (the audit log has the
    same changes across every object)."""

    class Kind(models.TextChoices):
        CREATED = "created", "Received"
        STATUS = "status", "Status changed"
        PRIORITY = "priority", "Priority changed"
        ASSIGNED = "assigned", "Assignee changed"
        COMMENTED = "commented", "Commented"
        OVERDUE = "overdue", "Past its response time"
        EXCLUSION_REQUESTED = "exclusion_requested", "Exclusion requested"
        UNIT_EXCLUDED = "unit_excluded", "Unit excluded from the flag"

    item = models.ForeignKey(FeedbackItem, on_delete=models.CASCADE, related_name="events")
    kind = models.CharField(max_length=30, choices=Kind.choices)
    actor_label = models.CharField(max_length=150)
    before = models.JSONField(null=True, blank=True)
    after = models.JSONField(null=True, blank=True)
    reason = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["created_at", "id"]
        indexes = [models.Index(fields=["item", "created_at"], name="feedback_event_item_idx")]

    def __str__(self) -> str:
        return f"#{self.item_id} {self.kind} by {self.actor_label}"


class FeedbackAlertWindow(models.Model):
    """At most one immediate alert per flag and priority per window (FEEDBACK_ALERT_WINDOW_MINUTES):
    items arriving while it is open are held here and sent as one digest when it ends."""

    flag_key = models.CharField(max_length=100, blank=True)
    priority = models.CharField(max_length=10, choices=FeedbackPriority.choices)
    ends_at = models.DateTimeField()
    held = models.JSONField(default=list, blank=True, help_text="Ids of items not yet announced.")

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["flag_key", "priority"], name="feedback_alert_window_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.priority} alerts on {self.flag_key or '(no flag)'} until {self.ends_at}"
