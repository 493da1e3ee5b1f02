from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone
from waffle.models import AbstractUserFlag

MAX_BASIS_POINTS = 10_000
KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
key_validator = RegexValidator(
    KEY_PATTERN, "Use 1-100 letters, digits, '-', '_' or '.', starting with a letter or digit."
)
_BASIS_POINTS_RANGE = models.Q(basis_points__gte=0) & models.Q(basis_points__lte=MAX_BASIS_POINTS)


class Flag(AbstractUserFlag):
    """A feature flag. waffle's `name` is the key; `everyone` is the kill switch (False), forced
    on (True) or "use the rules" (None). Percentages are basis points (0-10,000)."""

    class Tier(models.TextChoices):
        CORE = "core", "Core (never degraded)"
        NON_ESSENTIAL = "non_essential", "Non-essential (turned off under stress)"

    description = models.TextField(blank=True)
    owner = models.CharField(max_length=150, blank=True)
    basis_points = models.PositiveIntegerField(default=0, help_text="Default rollout, in 0.01 %.")
    stickiness = models.CharField(
        max_length=100, default="targetingKey", help_text="Context attribute that is bucketed."
    )
    salt = models.CharField(max_length=100, help_text="Hash salt; defaults to the key.")
    tier = models.CharField(max_length=20, choices=Tier.choices, default=Tier.CORE)
    excluded_units = models.JSONField(default=list, blank=True)
    archived = models.BooleanField(default=False)
    version = models.PositiveIntegerField(default=1, help_text="Bumped on every change (If-Match).")
    kill_switch_source = models.CharField(
        max_length=20,
        blank=True,
        help_text="Who last turned the kill switch on: manual, plan (a rollback) or degradation.",
    )

    class Meta(AbstractUserFlag.Meta):
        constraints = [
            models.CheckConstraint(condition=_BASIS_POINTS_RANGE, name="flag_basis_points_range"),
            models.CheckConstraint(
                condition=models.Q(name__regex=KEY_PATTERN), name="flag_key_is_slug"
            ),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def key(self) -> str:
        return self.name

    def is_active(self, request: object, read_only: bool = False) -> bool:
        """waffle's `flag_is_active` and `{% flag %}` answer from our evaluation, with the
        logged-in user's id as the targeting key, so they agree with the API."""
        from flags.selectors import evaluate_for_request

        return evaluate_for_request(key=self.name, request=request).value


class Cohort(models.Model):
    """A named set of units: explicit members, opted-in members, or contexts matching all rules."""

    key = models.CharField(max_length=100, unique=True, validators=[key_validator])
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    match_attribute = models.CharField(max_length=100, default="targetingKey")
    rules = models.JSONField(
        default=list, blank=True, help_text='[{"attribute", "operator", "values"}], all must match'
    )
    opt_in = models.BooleanField(default=False, help_text="Units may opt themselves in.")
    contacts = models.JSONField(default=list, blank=True, help_text="E-mail addresses.")
    version = models.PositiveIntegerField(default=1)
    # Bumped with each change of the members (opt-ins): a snapshot rebuild reloads only the sets
    # that changed (flags/snapshot.py), so a stream of opt-ins does not reload a large cohort.
    members_version = models.PositiveBigIntegerField(default=0, editable=False)
    opt_ins_version = models.PositiveBigIntegerField(default=0, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["key"]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(key__regex=KEY_PATTERN), name="cohort_key_is_slug"
            )
        ]

    def __str__(self) -> str:
        return self.key


class CohortMember(models.Model):
    class Kind(models.TextChoices):
        MEMBER = "member"
        OPT_IN = "opt_in"

    cohort = models.ForeignKey(Cohort, on_delete=models.CASCADE, related_name="memberships")
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.MEMBER)
    unit = models.CharField(max_length=200)
    added_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cohort", "kind", "unit"], name="cohort_member_unique")
        ]

    def __str__(self) -> str:
        return f"{self.cohort_id}:{self.kind}:{self.unit}"


class FlagCohortRule(models.Model):
    """An ordered rule of a flag: contexts in the cohort get this percentage (first match wins)."""

    flag = models.ForeignKey(Flag, on_delete=models.CASCADE, related_name="cohort_rules")
    cohort = models.ForeignKey(Cohort, on_delete=models.PROTECT, related_name="flag_rules")
    position = models.PositiveSmallIntegerField()
    basis_points = models.PositiveIntegerField()

    class Meta:
        ordering = ["flag", "position"]
        constraints = [
            models.UniqueConstraint(fields=["flag", "position"], name="flag_rule_position_unique"),
            models.UniqueConstraint(fields=["flag", "cohort"], name="flag_rule_cohort_unique"),
            models.CheckConstraint(
                condition=_BASIS_POINTS_RANGE, name="flag_rule_basis_points_range"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.flag_id} #{self.position}: {self.cohort_id} at {self.basis_points / 100}%"
