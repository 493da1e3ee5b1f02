import operator
from collections.abc import Callable

from django.conf import settings
from django.db import models
from django.utils.timezone import now as _now

from flags.models import Cohort, Flag

_BP = 10_000


def _bp_range(field: str) -> models.Q:
    return models.Q(**{f"{field}__gte": 0}) & models.Q(**{f"{field}__lte": _BP})


class PlanTemplate(models.Model):
    """A reusable plan shape (phases, targets, admissions, criteria), from the seed plans."""

    key = models.SlugField(max_length=50, unique=True)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    definition = models.JSONField(
        help_text="Phases, flag and cohort slots, criteria; see docs/phases.md."
    )

    class Meta:
        ordering = ["key"]

    def __str__(self) -> str:
        return self.name


class RollbackTo(models.TextChoices):
    """What a rollback goes back to: the last verified safe point (capped by the current state),
    or off (the kill switch on for every flag of the plan)."""

    SAFE_POINT = "safe_point", "The last verified safe point"
    OFF = "off", "Off (kill switch on)"


class RolloutPlan(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft"
        ACTIVE = "active"
        PAUSED = "paused"
        ROLLED_BACK = "rolled_back"
        COMPLETED = "completed"

    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    template = models.ForeignKey(PlanTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.DRAFT)
    status_reason = models.TextField(blank=True)
    timezone = models.CharField(max_length=64, default="UTC")
    step_hour = models.PositiveSmallIntegerField(
        default=9, help_text="Plan-local hour after which ramps step."
    )
    allowed_weekdays = models.JSONField(default=list, help_text="0 = Monday … 6 = Sunday.")
    held_reason = models.TextField(blank=True, help_text="Set by guardrails: ramps hold while set.")
    rollback_to = models.CharField(
        max_length=20, choices=RollbackTo.choices, default=RollbackTo.SAFE_POINT
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=_now)
    activated_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    version = models.PositiveIntegerField(default=1)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(step_hour__lte=23), name="plan_step_hour_range"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def is_held(self) -> bool:
        return bool(self.held_reason)


class FreezeWindow(models.Model):
    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="freeze_windows")
    starts_at = models.DateTimeField()
    ends_at = models.DateTimeField()
    reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["starts_at"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(ends_at__gt=models.F("starts_at")), name="freeze_window_order"
            )
        ]

    def __str__(self) -> str:
        return f"{self.starts_at:%Y-%m-%d} to {self.ends_at:%Y-%m-%d} {self.reason}"


class Phase(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        ACTIVE = "active"
        PASSED = "passed"
        FAILED = "failed"
        ROLLED_BACK = "rolled_back"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="phases")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    min_duration_days = models.PositiveIntegerField(default=0)
    planned_start = models.DateField(null=True, blank=True)
    planned_end = models.DateField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    required_signoffs = models.JSONField(
        default=list, blank=True, help_text='Roles, e.g. ["support"].'
    )
    kickoff_subject = models.CharField(max_length=200, blank=True)
    kickoff_body = models.TextField(blank=True)

    class Meta:
        ordering = ["plan", "position"]
        constraints = [
            models.UniqueConstraint(fields=["plan", "position"], name="phase_position_unique"),
            models.UniqueConstraint(
                fields=["plan"],
                condition=models.Q(status="active"),
                name="one_active_phase_per_plan",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.plan} · {self.position + 1}. {self.name}"


class PhaseTarget(models.Model):
    """Per flag: a cohort's rule (or, with no cohort, the flag's default percentage for everyone
    else) ramps from start to target by `step` basis points a day."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="targets")
    flag = models.ForeignKey(Flag, on_delete=models.PROTECT, related_name="phase_targets")
    cohort = models.ForeignKey(
        Cohort, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    start_bp = models.PositiveIntegerField()
    step_bp = models.PositiveIntegerField(default=0)
    target_bp = models.PositiveIntegerField()

    class Meta:
        ordering = ["phase", "id"]
        constraints = [
            models.CheckConstraint(condition=_bp_range("start_bp"), name="target_start_range"),
            models.CheckConstraint(condition=_bp_range("step_bp"), name="target_step_range"),
            models.CheckConstraint(condition=_bp_range("target_bp"), name="target_target_range"),
            models.CheckConstraint(
                condition=models.Q(target_bp__gte=models.F("start_bp")),
                name="target_not_below_start",
            ),
            # One target per flag and cohort, and one "everyone else" target per flag (two partial
            # constraints: SQLite cannot treat NULLs as equal in a unique constraint).
            models.UniqueConstraint(
                fields=["phase", "flag", "cohort"],
                condition=models.Q(cohort__isnull=False),
                name="target_unique",
            ),
            models.UniqueConstraint(
                fields=["phase", "flag"],
                condition=models.Q(cohort__isnull=True),
                name="target_unique_default",
            ),
        ]

    def __str__(self) -> str:
        who = self.cohort.key if self.cohort_id else "everyone else"
        return f"{self.flag.name} / {who}: {self.start_bp / 100}% → {self.target_bp / 100}%"


class RampStep(models.Model):
    """One step of one target on one plan-local date. The unique constraint is the exactly-once
    guarantee: beat firing twice, retries or two workers all hit it."""

    target = models.ForeignKey(PhaseTarget, on_delete=models.CASCADE, related_name="steps")
    local_date = models.DateField()
    from_bp = models.PositiveIntegerField()
    to_bp = models.PositiveIntegerField()
    created_at = models.DateTimeField(default=_now)
    reason = models.CharField(max_length=20, default="ramp")  # ramp | activation

    class Meta:
        ordering = ["created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["target", "local_date"], name="one_step_per_target_per_day"
            )
        ]

    def __str__(self) -> str:
        return f"{self.target} on {self.local_date}: {self.from_bp / 100}% → {self.to_bp / 100}%"


class RampSkip(models.Model):
    """A plan-local day on which ramps did not step, and why (weekday, freeze, held, paused)."""

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="skips")
    local_date = models.DateField()
    reason = models.CharField(max_length=200)
    created_at = models.DateTimeField(default=_now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["plan", "local_date"], name="one_skip_note_per_day")
        ]

    def __str__(self) -> str:
        return f"{self.plan} {self.local_date}: {self.reason}"


class CohortAdmission(models.Model):
    """Admits the next batch from an ordered waiting list into a cohort each period."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="admissions")
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="+")
    waiting_list = models.JSONField(default=list, help_text="Units in admission order.")
    batch_sizes = models.JSONField(default=list, help_text="e.g. [3, 3, 4]; the last size repeats.")
    period_days = models.PositiveIntegerField(default=7)
    cap = models.PositiveIntegerField(
        null=True, blank=True, help_text="Admit at most this many in this phase."
    )

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=models.Q(period_days__gte=1), name="admission_period_positive"
            )
        ]

    def __str__(self) -> str:
        return f"{self.phase}: admit into {self.cohort.key}"


class AdmissionBatch(models.Model):
    admission = models.ForeignKey(CohortAdmission, on_delete=models.CASCADE, related_name="batches")
    period_index = models.PositiveIntegerField()
    units = models.JSONField(default=list)
    created_at = models.DateTimeField(default=_now)

    class Meta:
        ordering = ["period_index"]
        verbose_name_plural = "admission batches"
        constraints = [
            models.UniqueConstraint(
                fields=["admission", "period_index"], name="one_batch_per_period"
            )
        ]

    def __str__(self) -> str:
        return f"{self.admission} period {self.period_index}: {len(self.units)}"


class GateCriterion(models.Model):
    """An automatic exit criterion: a metric compared with a threshold over a window."""

    class Kind(models.TextChoices):
        METRIC = "metric"
        FEEDBACK = "feedback"

    class Comparator(models.TextChoices):
        LT = "lt", "<"
        LTE = "lte", "≤"
        GT = "gt", ">"
        GTE = "gte", "≥"
        EQ = "eq", "="

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="criteria")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.METRIC)
    description = models.CharField(max_length=200)
    metric = models.CharField(max_length=100)
    comparator = models.CharField(max_length=3, choices=Comparator.choices)
    threshold = models.FloatField()
    window = models.CharField(max_length=10, default="24h")
    min_samples = models.PositiveIntegerField(default=0, help_text="0: the metric's own minimum.")
    filters = models.JSONField(default=dict, blank=True, help_text='e.g. {"flag": "reports"}')

    class Meta:
        ordering = ["phase", "id"]

    def __str__(self) -> str:
        return f"{self.metric} {self.get_comparator_display()} {self.threshold} over {self.window}"


_COMPARATORS: dict[str, Callable[[float, float], bool]] = {
    GateCriterion.Comparator.LT: operator.lt,
    GateCriterion.Comparator.LTE: operator.le,
    GateCriterion.Comparator.GT: operator.gt,
    GateCriterion.Comparator.GTE: operator.ge,
    GateCriterion.Comparator.EQ: operator.eq,
}


def comparison_holds(comparator: str, value: float, threshold: float) -> bool:
    """`value <comparator> threshold`: a gate criterion passes, a guardrail fails, if it holds."""
    return _COMPARATORS[comparator](value, threshold)


class ChecklistItem(models.Model):
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="checklist")
    text = models.CharField(max_length=300)
    ticked_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    ticked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["phase", "id"]

    def __str__(self) -> str:
        return self.text


class SignOff(models.Model):
    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="signoffs")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    role = models.CharField(max_length=50)
    comment = models.TextField(blank=True)
    token = models.ForeignKey(
        "core.ApiToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The API token the sign-off was made with, if any.",
    )
    token_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=_now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["phase", "user"], name="one_signoff_per_user")
        ]

    def __str__(self) -> str:
        return f"{self.user} ({self.role}) signed {self.phase}"


class GateReview(models.Model):
    """An immutable record of one gate run: each criterion's observed value and verdict."""

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="reviews")
    created_at = models.DateTimeField(default=_now)
    created_by = models.CharField(max_length=150)
    passed = models.BooleanField(help_text="Every automatic criterion passed.")
    results = models.JSONField()
    checklist = models.JSONField(default=list)
    signoffs = models.JSONField(default=list)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        verdict = "pass" if self.passed else "fail"
        return f"{self.phase} review {self.created_at:%Y-%m-%d %H:%M} {verdict}"


class Decision(models.Model):
    class Kind(models.TextChoices):
        GO = "go", "GO"
        NO_GO = "no_go", "NO-GO"
        ROLLBACK = "rollback", "ROLLBACK"

    phase = models.ForeignKey(Phase, on_delete=models.CASCADE, related_name="decisions")
    review = models.ForeignKey(
        GateReview, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    comment = models.TextField(blank=True)
    override_reason = models.TextField(blank=True)
    token = models.ForeignKey(
        "core.ApiToken",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The API token the decision was made with, if any.",
    )
    token_name = models.CharField(max_length=100, blank=True)
    created_at = models.DateTimeField(default=_now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.phase} by {self.user}"


class Checkpoint(models.Model):
    """A configuration of the plan's flags that a rollback may go back to.

    `baseline`: the flags just before a phase began (for the first phase, before the plan).
    `observed`: a configuration seen live with every guardrail passing; it becomes a verified
    safe point (`verified_at`) once it has stayed live, every guardrail passing with data, for a
    full guardrail window. Only the newest observed checkpoint is ever unverified."""

    class Kind(models.TextChoices):
        BASELINE = "baseline"
        OBSERVED = "observed"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="checkpoints")
    phase = models.ForeignKey(
        Phase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.OBSERVED)
    created_at = models.DateTimeField(default=_now)
    config = models.JSONField(help_text="{flag key: flag state}")
    passing_since = models.DateTimeField(
        null=True, blank=True, help_text="Every guardrail has passed with data since then."
    )
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan} {self.kind} checkpoint {self.created_at:%Y-%m-%d %H:%M}"


class Incident(models.Model):
    """A rollback: what triggered it, what was observed, and each step taken."""

    class Trigger(models.TextChoices):
        ERROR_RATE_SPIKE = "error_rate_spike"
        PERFORMANCE_DEGRADATION = "performance_degradation"
        DATA_CORRUPTION_DETECTED = "data_corruption_detected"
        USER_SATISFACTION_DROP = "user_satisfaction_drop"
        MANUAL = "manual"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="incidents")
    phase = models.ForeignKey(
        Phase, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    trigger = models.CharField(max_length=40, choices=Trigger.choices)
    reason = models.TextField(blank=True)
    observed = models.JSONField(default=dict, blank=True)
    restored_to = models.JSONField(
        default=dict, blank=True, help_text="What it went back to: safe point, baseline or off."
    )
    steps = models.JSONField(default=list, blank=True)
    actor_label = models.CharField(max_length=150)
    created_at = models.DateTimeField(default=_now)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.plan} {self.trigger} at {self.created_at:%Y-%m-%d %H:%M}"


class Guardrail(models.Model):
    """A health criterion checked every minute while its plan is live. After `failures_to_act`
    consecutive failures it acts: alert, pause the plan, or roll it back."""

    class Action(models.TextChoices):
        ALERT = "alert"
        PAUSE = "pause"
        ROLLBACK = "rollback"

    plan = models.ForeignKey(RolloutPlan, on_delete=models.CASCADE, related_name="guardrails")
    phase = models.ForeignKey(
        Phase,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="guardrails",
        help_text="Only while this phase is active (empty: the whole plan).",
    )
    name = models.CharField(max_length=100)
    metric = models.CharField(max_length=100)
    comparator = models.CharField(
        max_length=3,
        choices=GateCriterion.Comparator.choices,
        help_text="Fails when value <comparator> threshold",
    )
    threshold = models.FloatField()
    window = models.CharField(max_length=10, default="5m")
    min_samples = models.PositiveIntegerField(default=0)
    filters = models.JSONField(default=dict, blank=True)
    failures_to_act = models.PositiveIntegerField(default=3)
    action = models.CharField(max_length=10, choices=Action.choices)
    trigger = models.CharField(
        max_length=40, choices=Incident.Trigger.choices, blank=True, help_text="For rollbacks."
    )
    rollback_to = models.CharField(
        max_length=20,
        choices=RollbackTo.choices,
        blank=True,
        help_text="Empty: the plan's choice (off for data corruption).",
    )
    enabled = models.BooleanField(default=True)
    consecutive_failures = models.PositiveIntegerField(default=0)
    last_verdict = models.CharField(max_length=20, blank=True)
    last_value = models.FloatField(null=True, blank=True)
    last_checked_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(
        blank=True,
        help_text="Why the latest check could not be computed (empty when it could). An error "
        "leaves last_verdict, the latest decisive check, as it was.",
    )
    acted_at = models.DateTimeField(
        null=True, blank=True, help_text="Set when it acted; cleared when it passes again."
    )

    class Meta:
        ordering = ["plan", "id"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(failures_to_act__gte=1), name="guardrail_failures_positive"
            ),
        ]

    def __str__(self) -> str:
        rule = f"{self.metric} {self.get_comparator_display()} {self.threshold}"
        return f"{self.name}: fails when {rule} ({self.action})"


class GuardrailCheck(models.Model):
    """One check of one guardrail (for the dashboard's charts). Unique per minute: a second
    scheduler or a retried task in the same minute does not count twice."""

    guardrail = models.ForeignKey(Guardrail, on_delete=models.CASCADE, related_name="checks")
    minute = models.DateTimeField()
    checked_at = models.DateTimeField(default=_now)
    value = models.FloatField(null=True, blank=True)
    samples = models.PositiveIntegerField(default=0)
    verdict = models.CharField(max_length=20)
    detail = models.TextField(blank=True, help_text="Why: the error, or the data missing.")
    acted = models.CharField(max_length=20, blank=True)

    class Meta:
        ordering = ["-minute"]
        constraints = [
            models.UniqueConstraint(fields=["guardrail", "minute"], name="one_check_per_minute")
        ]
        indexes = [models.Index(fields=["guardrail", "minute"], name="guardrail_check_time_idx")]

    def __str__(self) -> str:
        return f"{self.guardrail} at {self.minute:%Y-%m-%d %H:%M}: {self.verdict}"


class DegradationState(models.Model):
    """Graceful degradation (a single row): the level, when it started, and what was turned off
    (with each flag's state before) so it can come back as it was."""

    level = models.PositiveSmallIntegerField(
        default=0, help_text="0 normal, 1 non-essential off, 2 also ramping plans off"
    )
    changed_at = models.DateTimeField(default=_now)
    calm_since = models.DateTimeField(null=True, blank=True, help_text="Stress below 0.7 since.")
    last_stress = models.FloatField(null=True, blank=True)
    saved = models.JSONField(
        default=dict, blank=True, help_text="{flag key: state before degradation}"
    )

    def __str__(self) -> str:
        return f"degradation level {self.level}"
