"""Every write to flags and cohorts: one transaction, one audit entry, one config-version bump.

Other apps change flags only through these functions. Listeners registered with
`on_flag_changed` hear about each change inside its transaction (phases uses it to pause a plan
when a person changes a flag the plan governs).
"""

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, F, ProtectedError
from django.utils import timezone

from flags.evaluation import OPERATORS, validate_condition
from flags.exceptions import (
    CohortInUse,
    CohortNotFound,
    FlagKeyTaken,
    FlagNotFound,
    InvalidFlagChange,
    OptInClosed,
)
from flags.exposure import Exposure, exposure_of
from flags.models import MAX_BASIS_POINTS, Cohort, CohortMember, Flag, FlagCohortRule
from flags.percentages import as_percentage, to_basis_points
from rollout_control.core.actors import Actor
from rollout_control.core.services import audit_record, check_version, config_version_bump

MEMBER_BATCH = 5_000
FLAG_FIELDS = frozenset(
    {
        "description", "owner", "rollout_percentage", "stickiness", "salt", "kill_switch",
        "forced_on", "tier", "cohort_rules", "excluded_units",
    }
)  # fmt: skip
COHORT_FIELDS = frozenset({"name", "description", "match_attribute", "rules", "opt_in", "contacts"})

FlagListener = Callable[[Flag, Actor, str], None]
_flag_listeners: list[FlagListener] = []


def on_flag_changed(listener: FlagListener) -> None:
    """`listener(flag, actor, source)` runs inside the change's transaction."""
    _flag_listeners.append(listener)


@dataclass(frozen=True, slots=True)
class CohortRuleInput:
    cohort: str
    percentage: Decimal


def _rules(flag: Flag) -> Any:
    # Lists prefetch the rules (flags.selectors); a fresh query here would be one per row.
    if "cohort_rules" in getattr(flag, "_prefetched_objects_cache", {}):
        return flag.cohort_rules.all()
    return flag.cohort_rules.select_related("cohort").order_by("position")


def flag_state(flag: Flag) -> dict[str, Any]:
    """What the API shows and the audit log records, before and after each change."""
    return {
        "key": flag.name,
        "description": flag.description,
        "owner": flag.owner,
        "rollout_percentage": as_percentage(flag.basis_points),
        "stickiness": flag.stickiness,
        "salt": flag.salt,
        "kill_switch": flag.everyone is False,
        "forced_on": flag.everyone is True,
        "tier": flag.tier,
        "cohort_rules": [
            {"cohort": rule.cohort.key, "percentage": as_percentage(rule.basis_points)}
            for rule in _rules(flag)
        ],
        "excluded_units": list(flag.excluded_units),
        "archived": flag.archived,
        "version": flag.version,
    }


def flag_lock(key: str) -> Flag:
    """The flag's row, locked until the caller's transaction ends. Callers that decide from the
    flag's current state (a ramp step, a rollback) lock it first, so a person's change is either
    wholly before their read or wholly after their write."""
    flag = Flag.objects.select_for_update().filter(name=key).first()
    if flag is None:
        raise FlagNotFound(f"No flag with key {key!r}.", field="key")
    return flag


def _apply_flag_fields(flag: Flag, fields: dict[str, Any]) -> list[CohortRuleInput] | None:
    unknown = set(fields) - FLAG_FIELDS
    if unknown:
        raise InvalidFlagChange(
            f"Unknown field(s): {', '.join(sorted(unknown))}.", field=min(unknown)
        )
    for name in ("description", "owner", "stickiness", "salt"):
        if name in fields:
            setattr(flag, name, fields[name] or "")
    if "tier" in fields:
        if fields["tier"] not in Flag.Tier.values:
            raise InvalidFlagChange(f"Must be one of {', '.join(Flag.Tier.values)}.", field="tier")
        flag.tier = fields["tier"]
    if "rollout_percentage" in fields:
        flag.basis_points = to_basis_points(
            fields["rollout_percentage"], field="rollout_percentage", error=InvalidFlagChange
        )
    if "excluded_units" in fields:
        flag.excluded_units = sorted({str(unit) for unit in fields["excluded_units"]})
    kill, forced = fields.get("kill_switch"), fields.get("forced_on")
    if kill and forced:
        raise InvalidFlagChange("A flag cannot be killed and forced on at once.", field="forced_on")
    if kill:
        flag.everyone = False
    elif forced:
        flag.everyone = True
    elif (kill is False and flag.everyone is False) or (forced is False and flag.everyone is True):
        flag.everyone = None
    if not flag.stickiness:
        raise InvalidFlagChange("Must not be empty.", field="stickiness")
    flag.salt = flag.salt or flag.name
    return fields.get("cohort_rules")


def _replace_rules(flag: Flag, rules: Sequence[CohortRuleInput]) -> None:
    keys = [rule.cohort for rule in rules]
    if len(set(keys)) != len(keys):
        raise InvalidFlagChange("A cohort may appear in only one rule.", field="cohort_rules")
    cohorts = {c.key: c for c in Cohort.objects.filter(key__in=keys)}
    built = []
    for position, rule in enumerate(rules):
        if rule.cohort not in cohorts:
            raise InvalidFlagChange(
                f"Unknown cohort {rule.cohort!r}.", field=f"cohort_rules[{position}].cohort"
            )
        points = to_basis_points(
            rule.percentage, field=f"cohort_rules[{position}].percentage", error=InvalidFlagChange
        )
        built.append(
            FlagCohortRule(
                flag=flag, cohort=cohorts[rule.cohort], position=position, basis_points=points
            )
        )
    flag.cohort_rules.all().delete()
    FlagCohortRule.objects.bulk_create(built)


def _finish(
    flag: Flag, *, actor: Actor, action: str, before: dict | None, reason: str, source: str
) -> Flag:
    after = flag_state(flag)
    audit_record(actor=actor, action=action, obj=flag, before=before, after=after, reason=reason)
    config_version_bump()
    for listener in _flag_listeners:
        listener(flag, actor, source)
    return flag


def flag_create(*, key: str, actor: Actor, reason: str = "", **fields: Any) -> Flag:
    with transaction.atomic():
        if Flag.objects.filter(name=key).exists():
            raise FlagKeyTaken(f"A flag with key {key!r} already exists.", field="key")
        flag = Flag(name=key, superusers=False, stickiness="targetingKey")
        rules = _apply_flag_fields(flag, fields)
        try:
            with transaction.atomic():
                flag.save()
        except IntegrityError:
            raise FlagKeyTaken(f"A flag with key {key!r} already exists.", field="key") from None
        if rules:
            _replace_rules(flag, rules)
        return _finish(
            flag, actor=actor, action="flag.create", before=None, reason=reason, source="manual"
        )


def flag_update(
    *,
    key: str,
    actor: Actor,
    changes: dict[str, Any],
    expected_version: int | None = None,
    base_version: int | None = None,
    reason: str = "",
    source: str = "manual",
) -> Flag:
    """Applies `changes` (fields of FLAG_FIELDS) all or nothing. A flag changed meanwhile raises,
    and nothing is written: VersionMismatch (HTTP 412) for `expected_version` (If-Match),
    VersionConflict (HTTP 409) for `base_version` (the version the edit started from). Both are
    compared under the row lock, so of two edits from one version exactly one wins."""
    with transaction.atomic():
        flag = flag_lock(key)
        if flag.archived:
            raise FlagNotFound(f"Flag {key!r} is archived.", field="key")
        check_version(
            label=f"Flag {key!r}",
            current=flag.version,
            expected=expected_version,
            base=base_version,
        )
        before = flag_state(flag)
        was_killed = flag.everyone is False
        rules = _apply_flag_fields(flag, changes)
        if rules is not None:
            _replace_rules(flag, rules)
        if flag.everyone is False and (not was_killed or changes.get("kill_switch") is True):
            flag.kill_switch_source = source  # whoever says "off" last owns the kill switch
        elif flag.everyone is not False:
            flag.kill_switch_source = ""
        flag.version += 1
        flag.modified = timezone.now()
        flag.save()
        return _finish(
            flag, actor=actor, action="flag.update", before=before, reason=reason, source=source
        )


def flag_set_rule_percentage(
    *,
    key: str,
    cohort: str | None,
    basis_points: int,
    actor: Actor,
    reason: str = "",
    source: str = "manual",
    base_version: int | None = None,
    add_missing: bool = False,
) -> Flag:
    """Sets one percentage, the default (`cohort=None`) or one cohort rule's, and nothing else,
    under the row lock. A cohort without a rule raises unless `add_missing` (a plan's ramp adds
    its cohort's rule last, so the rules before it keep deciding first)."""
    if not 0 <= basis_points <= MAX_BASIS_POINTS:
        raise InvalidFlagChange("Must be a number from 0 to 100.", field="percentage")
    with transaction.atomic():
        flag = flag_lock(key)
        if flag.archived:
            raise FlagNotFound(f"Flag {key!r} is archived.", field="key")
        check_version(label=f"Flag {key!r}", current=flag.version, expected=None, base=base_version)
        before = flag_state(flag)
        if cohort is None:
            flag.basis_points = basis_points
        else:
            rule = flag.cohort_rules.filter(cohort__key=cohort).first()
            if rule is not None:
                rule.basis_points = basis_points
                rule.save(update_fields=["basis_points"])
            elif add_missing:
                _add_rule(flag, cohort, basis_points)
            else:
                raise InvalidFlagChange(f"{key} has no rule for cohort {cohort!r}.", field="rule")
        flag.version += 1
        flag.modified = timezone.now()
        flag.save(update_fields=["basis_points", "version", "modified"])
        return _finish(
            flag, actor=actor, action="flag.update", before=before, reason=reason, source=source
        )


def _add_rule(flag: Flag, cohort_key: str, basis_points: int) -> None:
    cohort = Cohort.objects.filter(key=cohort_key).first()
    if cohort is None:
        raise InvalidFlagChange(f"Unknown cohort {cohort_key!r}.", field="cohort")
    last = flag.cohort_rules.order_by("-position").values_list("position", flat=True).first()
    FlagCohortRule.objects.create(
        flag=flag,
        cohort=cohort,
        position=0 if last is None else last + 1,
        basis_points=basis_points,
    )


def flag_lower(
    *,
    key: str,
    to: Callable[[Exposure], Exposure],
    actor: Actor,
    reason: str,
    source: str,
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Applies `to(current exposure)` under the row lock, where it takes exposure away only
    (flags.exposure): percentages down, kill switch and exclusions on, forced-on off. Returns
    (before, after), or None when there was nothing to take away (nothing is written)."""
    with transaction.atomic():
        flag = flag_lock(key)
        before = flag_state(flag)
        current = exposure_of(before)
        wanted = to(current)
        _check_lowers(current, wanted)
        if wanted == current:
            return None
        flag.basis_points = wanted.basis_points
        if wanted.killed and not current.killed:
            flag.everyone, flag.kill_switch_source = False, source
        elif current.forced_on and not wanted.forced_on:
            flag.everyone = None
        flag.excluded_units = sorted(wanted.excluded)
        for (cohort, points), (_, now_points) in zip(wanted.rules, current.rules, strict=True):
            if points != now_points:
                flag.cohort_rules.filter(cohort__key=cohort).update(basis_points=points)
        flag.version += 1
        flag.modified = timezone.now()
        flag.save(
            update_fields=[
                "basis_points", "everyone", "kill_switch_source", "excluded_units", "version",
                "modified",
            ]
        )  # fmt: skip
        _finish(flag, actor=actor, action="flag.lower", before=before, reason=reason, source=source)
        return before, flag_state(flag)


def _check_lowers(current: Exposure, wanted: Exposure) -> None:
    """The invariant flag_lower promises, checked rather than trusted."""
    same_rules = [cohort for cohort, _ in current.rules] == [cohort for cohort, _ in wanted.rules]
    lower = (
        same_rules
        and wanted.basis_points <= current.basis_points
        and all(w <= c for (_, w), (_, c) in zip(wanted.rules, current.rules, strict=True))
        and (wanted.killed or not current.killed)
        and (current.forced_on or not wanted.forced_on)
        and wanted.excluded >= current.excluded
    )
    if not lower:
        raise InvalidFlagChange("A lowering change may only take exposure away.", field="key")


def flag_set_percentage(
    *,
    key: str,
    percentage: Decimal,
    actor: Actor,
    reason: str = "",
    source: str = "manual",
    base_version: int | None = None,
) -> Flag:
    return flag_set_rule_percentage(
        key=key,
        cohort=None,
        basis_points=to_basis_points(percentage, field="percentage", error=InvalidFlagChange),
        actor=actor,
        reason=reason,
        source=source,
        base_version=base_version,
    )


def flag_set_kill_switch(
    *,
    key: str,
    killed: bool,
    actor: Actor,
    reason: str,
    source: str = "manual",
    base_version: int | None = None,
) -> Flag:
    if not reason.strip():
        raise InvalidFlagChange("Say why the kill switch changes.", field="reason")
    return flag_update(
        key=key,
        actor=actor,
        changes={"kill_switch": killed},
        reason=reason,
        source=source,
        base_version=base_version,
    )


def flag_archive(*, key: str, actor: Actor, reason: str = "") -> Flag:
    with transaction.atomic():
        flag = flag_lock(key)
        if flag.archived:
            return flag
        before = flag_state(flag)
        flag.archived = True
        flag.version += 1
        flag.modified = timezone.now()
        flag.save()
        return _finish(
            flag, actor=actor, action="flag.archive", before=before, reason=reason, source="manual"
        )


# --- cohorts ---------------------------------------------------------------------------------


def validate_cohort_rules(rules: Any) -> list[dict[str, Any]]:
    """Rules as stored, or InvalidFlagChange naming the bad entry."""
    if not isinstance(rules, list):
        raise InvalidFlagChange("Must be a list of {attribute, operator, values}.", field="rules")
    cleaned = []
    for index, rule in enumerate(rules):
        field = f"rules[{index}]"
        if not isinstance(rule, dict) or set(rule) != {"attribute", "operator", "values"}:
            raise InvalidFlagChange(
                "Each rule has exactly attribute, operator and values.", field=field
            )
        attribute, operator, values = rule["attribute"], rule["operator"], rule["values"]
        if not isinstance(values, list):
            values = [values]
        if not isinstance(attribute, str) or not attribute:
            raise InvalidFlagChange(
                "attribute must be a non-empty string.", field=f"{field}.attribute"
            )
        if operator not in OPERATORS:
            raise InvalidFlagChange(
                f"Unknown operator; use one of {', '.join(sorted(OPERATORS))}.",
                field=f"{field}.operator",
            )
        if any(isinstance(v, bool) or not isinstance(v, str | int | float) for v in values):
            raise InvalidFlagChange("values must be strings or numbers.", field=f"{field}.values")
        problems = validate_condition(attribute, operator, tuple(values))
        if problems:
            raise InvalidFlagChange("; ".join(problems), field=f"{field}.values")
        cleaned.append({"attribute": attribute, "operator": operator, "values": list(values)})
    return cleaned


def cohort_state(cohort: Cohort) -> dict[str, Any]:
    if hasattr(cohort, "member_count"):  # annotated by flags.selectors.cohort_list
        counts = {
            CohortMember.Kind.MEMBER: cohort.member_count,
            CohortMember.Kind.OPT_IN: cohort.opt_in_count,
        }
    else:
        counts = dict(
            CohortMember.objects.filter(cohort=cohort).values_list("kind").annotate(n=Count("id"))
        )
    return {
        "key": cohort.key,
        "name": cohort.name,
        "description": cohort.description,
        "match_attribute": cohort.match_attribute,
        "rules": cohort.rules,
        "opt_in": cohort.opt_in,
        "contacts": cohort.contacts,
        "member_count": counts.get(CohortMember.Kind.MEMBER, 0),
        "opt_in_count": counts.get(CohortMember.Kind.OPT_IN, 0),
        "version": cohort.version,
    }


def _apply_cohort_fields(cohort: Cohort, fields: dict[str, Any]) -> None:
    unknown = set(fields) - COHORT_FIELDS
    if unknown:
        raise InvalidFlagChange(
            f"Unknown field(s): {', '.join(sorted(unknown))}.", field=min(unknown)
        )
    for name in ("name", "description", "match_attribute", "opt_in", "contacts"):
        if name in fields:
            setattr(cohort, name, fields[name])
    if "rules" in fields:
        cohort.rules = validate_cohort_rules(fields["rules"])
    if not cohort.name:
        cohort.name = cohort.key
    if not cohort.match_attribute:
        raise InvalidFlagChange("Must not be empty.", field="match_attribute")


def _locked_cohort(key: str) -> Cohort:
    cohort = Cohort.objects.select_for_update().filter(key=key).first()
    if cohort is None:
        raise CohortNotFound(f"No cohort with key {key!r}.", field="key")
    return cohort


def cohort_create(*, key: str, actor: Actor, **fields: Any) -> Cohort:
    with transaction.atomic():
        if Cohort.objects.filter(key=key).exists():
            raise FlagKeyTaken(f"A cohort with key {key!r} already exists.", field="key")
        cohort = Cohort(key=key)
        _apply_cohort_fields(cohort, fields)
        cohort.save()
        audit_record(actor=actor, action="cohort.create", obj=cohort, after=cohort_state(cohort))
        config_version_bump()
    return cohort


def cohort_update(
    *,
    key: str,
    actor: Actor,
    changes: dict[str, Any],
    expected_version: int | None = None,
    base_version: int | None = None,
    reason: str = "",
) -> Cohort:
    """Applies `changes` all or nothing; a stale `expected_version` (If-Match) or `base_version`
    (the edit's starting version) raises under the row lock and writes nothing."""
    with transaction.atomic():
        cohort = _locked_cohort(key)
        check_version(
            label=f"Cohort {key!r}",
            current=cohort.version,
            expected=expected_version,
            base=base_version,
        )
        before = cohort_state(cohort)
        _apply_cohort_fields(cohort, changes)
        cohort.version += 1
        cohort.updated_at = timezone.now()
        cohort.save()
        audit_record(
            actor=actor,
            action="cohort.update",
            obj=cohort,
            before=before,
            after=cohort_state(cohort),
            reason=reason,
        )
        config_version_bump()
    return cohort


def cohort_delete(*, key: str, actor: Actor) -> None:
    with transaction.atomic():
        cohort = _locked_cohort(key)
        if cohort.flag_rules.exists():
            raise CohortInUse(f"Cohort {key!r} is used by flag rules; remove them first.")
        before = cohort_state(cohort)
        audit_record(actor=actor, action="cohort.delete", obj=cohort, before=before)
        try:
            with transaction.atomic():
                cohort.delete()
        except ProtectedError:
            # Other apps protect their references (a plan's phase targets this cohort).
            raise CohortInUse(f"Cohort {key!r} is used by a rollout plan.") from None
        config_version_bump()


def _clean_units(units: Iterable[Any], *, field: str = "units") -> list[str]:
    cleaned = []
    for index, unit in enumerate(units):
        if (
            isinstance(unit, bool)
            or not isinstance(unit, str | int)
            or str(unit) == ""
            or len(str(unit)) > 200
        ):
            raise InvalidFlagChange(
                "Each unit is a non-empty string or integer (at most 200 characters).",
                field=f"{field}[{index}]",
            )
        cleaned.append(str(unit))
    return cleaned


def _present(cohort: Cohort, kind: str, units: list[str]) -> list[str]:
    found: list[str] = []
    for start in range(0, len(units), MEMBER_BATCH):
        chunk = units[start : start + MEMBER_BATCH]
        found.extend(
            CohortMember.objects.filter(cohort=cohort, kind=kind, unit__in=chunk).values_list(
                "unit", flat=True
            )
        )
    return found


def _change_members(
    *, key: str, units: Iterable[Any], kind: str, add: bool, actor: Actor, action: str
) -> int:
    cleaned = sorted(set(_clean_units(units)))
    with transaction.atomic():
        cohort = _locked_cohort(key)
        present = set(_present(cohort, kind, cleaned))
        if add:
            changed = [unit for unit in cleaned if unit not in present]
            CohortMember.objects.bulk_create(
                [CohortMember(cohort=cohort, kind=kind, unit=unit) for unit in changed],
                batch_size=MEMBER_BATCH,
            )
        else:
            changed = sorted(present)
            for start in range(0, len(changed), MEMBER_BATCH):
                chunk = changed[start : start + MEMBER_BATCH]
                CohortMember.objects.filter(cohort=cohort, kind=kind, unit__in=chunk).delete()
        if changed:
            counter = "members_version" if kind == CohortMember.Kind.MEMBER else "opt_ins_version"
            Cohort.objects.filter(pk=cohort.pk).update(**{counter: F(counter) + 1})
            # Large uploads are summarised: the audit row holds a count and the first units.
            summary = {"kind": kind, "count": len(changed), "units": changed[:100]}
            audit_record(actor=actor, action=action, obj=cohort, after=summary)
            config_version_bump()
    return len(changed)


def cohort_members_add(*, key: str, units: Iterable[Any], actor: Actor) -> int:
    return _change_members(
        key=key,
        units=units,
        kind=CohortMember.Kind.MEMBER,
        add=True,
        actor=actor,
        action="cohort.members_add",
    )


def cohort_members_remove(*, key: str, units: Iterable[Any], actor: Actor) -> int:
    return _change_members(
        key=key,
        units=units,
        kind=CohortMember.Kind.MEMBER,
        add=False,
        actor=actor,
        action="cohort.members_remove",
    )


def _opt_in_cohort(key: str) -> None:
    cohort = Cohort.objects.filter(key=key).only("opt_in").first()
    if cohort is None:
        raise CohortNotFound(f"No cohort with key {key!r}.", field="key")
    if not cohort.opt_in:
        raise OptInClosed(f"Cohort {key!r} does not take opt-ins.", field="key")


def cohort_opt_in(*, key: str, unit: Any, actor: Actor) -> bool:
    _opt_in_cohort(key)
    return (
        _change_members(
            key=key,
            units=[unit],
            kind=CohortMember.Kind.OPT_IN,
            add=True,
            actor=actor,
            action="cohort.opt_in",
        )
        == 1
    )


def cohort_opt_out(*, key: str, unit: Any, actor: Actor) -> bool:
    _opt_in_cohort(key)
    return (
        _change_members(
            key=key,
            units=[unit],
            kind=CohortMember.Kind.OPT_IN,
            add=False,
            actor=actor,
            action="cohort.opt_out",
        )
        == 1
    )
