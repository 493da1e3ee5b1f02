"""Why a unit gets the answer it gets: the deciding rule of each flag, the unit's bucket against
the threshold, its cohorts, and when its answer last changed.

Evaluation is the service's own (flags.evaluation over the live snapshot); this module only
retraces it for people. The history replays the flag's audited states (and the unit's audited
joins and leaves of cohorts) through the same evaluation, so "last changed" is when the answer
for this unit flipped, not merely when the flag changed."""

import datetime as dt
import json
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.db.models import TextField
from django.db.models.functions import Cast

from flags.evaluation import (
    CohortSnap,
    Evaluation,
    FlagRuleSnap,
    FlagSnap,
    InvalidContextError,
    Reason,
    Snapshot,
    bucket,
    cohort_matches,
    evaluate,
    stickiness_value,
)
from flags.models import Cohort, Flag
from flags.selectors import flag_snapshot
from phases.models import RolloutPlan
from phases.services.plans import LIVE_STATUSES
from rollout_control.core.models import AuditEntry
from rollout_control.dashboard.selectors import percent

HISTORY_LIMIT = 1000  # audited states replayed per flag, newest first
MEMBERSHIP_ACTIONS = {
    "cohort.members_add": ("member", True),
    "cohort.members_remove": ("member", False),
    "cohort.opt_in": ("opt_in", True),
    "cohort.opt_out": ("opt_in", False),
}


@dataclass
class AnswerChange:
    at: dt.datetime
    by: str
    what: str
    reason: str
    value: bool


@dataclass
class FlagAnswer:
    key: str
    evaluation: Evaluation
    rule: str
    explanation: str
    stickiness: str
    unit: str | None = None
    cohort: str | None = None
    bucket: int | None = None
    threshold: int | None = None
    cohorts: list[str] = field(default_factory=list)
    plan: str | None = None
    plan_id: int | None = None
    phase: str | None = None
    last_change: AnswerChange | None = None
    history_note: str = ""

    @property
    def value(self) -> bool:
        return self.evaluation.value

    @property
    def threshold_label(self) -> str:
        return percent(self.threshold)


def _unit(context: dict[str, Any], attribute: str) -> str | None:
    try:
        return stickiness_value(context, attribute)
    except InvalidContextError:
        return None


def _split(answer: FlagAnswer, flag: FlagSnap, basis_points: int, context: dict[str, Any]) -> None:
    """Fills the bucket and threshold, and says how they compare."""
    answer.threshold = basis_points
    if basis_points <= 0:
        answer.explanation += " at 0 %, so off."
        return
    if basis_points >= 10_000:
        answer.explanation += " at 100 %, so on."
        return
    unit = _unit(context, flag.stickiness)
    if unit is None:
        answer.explanation += (
            f" at {percent(basis_points)} %, bucketed by {flag.stickiness}, which the context"
            " lacks."
        )
        return
    answer.unit, answer.bucket = unit, bucket(flag.salt, unit)
    verdict = "below" if answer.bucket < basis_points else "not below"
    answer.explanation += (
        f" at {percent(basis_points)} %: bucket {answer.bucket} is {verdict} the threshold"
        f" {basis_points} (of 10,000), so {'on' if answer.bucket < basis_points else 'off'}."
    )


def explain(snapshot: Snapshot, key: str, context: dict[str, Any]) -> FlagAnswer:
    """The deciding rule for one flag, in the order evaluation checks them."""
    evaluation = evaluate(snapshot, key, context)
    flag = snapshot.flags.get(key)
    metadata = evaluation.metadata or {}
    answer = FlagAnswer(
        key=key,
        evaluation=evaluation,
        rule="",
        explanation="",
        stickiness=flag.stickiness if flag else "",
        plan=metadata.get("plan"),
        phase=metadata.get("phase"),
    )
    if flag is None or flag.archived:
        answer.rule, answer.explanation = "not found", "No such flag (or archived)."
        return answer
    for rule in flag.rules:
        cohort = snapshot.cohorts.get(rule.cohort_key)
        if cohort is not None and cohort_matches(cohort, context):
            answer.cohorts.append(rule.cohort_key)
    if evaluation.reason == Reason.DISABLED:
        answer.rule, answer.explanation = "kill switch", "The kill switch is on: off for everyone."
    elif evaluation.error_code is not None and evaluation.reason == Reason.ERROR:
        answer.rule = "error"
        answer.explanation = f"{evaluation.error_code}: {evaluation.error_details}"
        if metadata.get("cohort"):
            answer.cohort = str(metadata["cohort"])
    elif metadata.get("exclusion"):
        answer.rule = "exclusion"
        answer.unit = _unit(context, flag.stickiness)
        answer.explanation = f"{flag.stickiness} {answer.unit!r} is on the flag's exclusion list."
    elif flag.everyone is True:
        answer.rule, answer.explanation = "forced on", "The flag is forced on for everyone."
    elif metadata.get("cohort"):
        answer.rule, answer.cohort = "cohort", str(metadata["cohort"])
        basis_points = next(r.basis_points for r in flag.rules if r.cohort_key == answer.cohort)
        answer.explanation = f"In cohort {answer.cohort}, whose rule is first to match; its rule is"
        _split(answer, flag, basis_points, context)
    else:
        answer.rule = "percentage"
        answer.explanation = "In no cohort of the flag's rules, so the default rollout applies,"
        _split(answer, flag, flag.basis_points, context)
    return answer


# History ------------------------------------------------------------------------------------


def _flag_snap(key: str, state: dict[str, Any]) -> FlagSnap:
    def points(value: Any) -> int:
        return int(Decimal(str(value)) * 100)

    return FlagSnap(
        key=key,
        everyone=False if state.get("kill_switch") else (True if state.get("forced_on") else None),
        basis_points=points(state.get("rollout_percentage", 0)),
        stickiness=state.get("stickiness") or "targetingKey",
        salt=state.get("salt") or key,
        excluded_units=frozenset(str(u) for u in state.get("excluded_units", [])),
        archived=bool(state.get("archived")),
        rules=tuple(
            FlagRuleSnap(r["cohort"], points(r["percentage"]))
            for r in state.get("cohort_rules", [])
        ),
        version=int(state.get("version", 0)),
        metadata={},
    )


def _membership_entries(unit: str, cohort_ids: dict[str, str]) -> list[AuditEntry]:
    """Audited joins and leaves of these cohorts that name the unit. Matched on the JSON text
    (portable to SQLite); large uploads are summarised to their first 100 units in the log."""
    if not cohort_ids:
        return []
    needle = json.dumps(unit, ensure_ascii=False)
    return list(
        AuditEntry.objects.filter(
            object_type="flags.cohort",
            object_id__in=list(cohort_ids),
            action__in=list(MEMBERSHIP_ACTIONS),
        )
        .annotate(after_text=Cast("after", output_field=TextField()))
        .filter(after_text__contains=needle)
        .only("id", "created_at", "action", "object_id", "actor_label", "after", "reason")
        .order_by("id")
    )


class _Membership:
    """The unit's membership of each cohort over time, from the current snapshot and the audited
    changes (each audited add means the unit was not a member just before, and so on)."""

    def __init__(
        self, snapshot: Snapshot, unit: str, entries: list[AuditEntry], keys: dict
    ) -> None:
        self.now: dict[tuple[str, str], bool] = {}
        for key, cohort in snapshot.cohorts.items():
            self.now[(key, "member")] = unit in cohort.members
            self.now[(key, "opt_in")] = unit in cohort.opt_in_members
        self.first: dict[tuple[str, str], bool] = {}
        for entry in entries:
            kind, added = MEMBERSHIP_ACTIONS[entry.action]
            self.first.setdefault((keys[entry.object_id], kind), not added)
        self.state: dict[tuple[str, str], bool] = {}

    def at_start(self, slot: tuple[str, str]) -> bool:
        return self.first.get(slot, self.now.get(slot, False))

    def apply(self, cohort: str, kind: str, added: bool) -> None:
        self.state[(cohort, kind)] = added

    def member(self, cohort: str, kind: str) -> bool:
        return self.state.get((cohort, kind), self.at_start((cohort, kind)))


def _cohort_snaps(
    snapshot: Snapshot, keys: set[str], membership: _Membership, context: dict[str, Any]
) -> dict[str, CohortSnap]:
    snaps = {}
    for key in keys:
        current = snapshot.cohorts.get(key)
        if current is None:
            continue
        raw = context.get(current.match_attribute)
        value = {str(raw)} if raw is not None else set()
        snaps[key] = CohortSnap(
            key=key,
            match_attribute=current.match_attribute,
            members=frozenset(value if membership.member(key, "member") else ()),
            opt_in_members=frozenset(value if membership.member(key, "opt_in") else ()),
            conditions=current.conditions,
        )
    return snaps


MEMBERSHIP_VERBS = {
    "cohort.members_add": "added to",
    "cohort.members_remove": "removed from",
    "cohort.opt_in": "opted in to",
    "cohort.opt_out": "opted out of",
}


def _describe(entry: AuditEntry, cohort_keys: dict[str, str]) -> str:
    if entry.object_type == "flags.cohort":
        verb = MEMBERSHIP_VERBS[entry.action]
        return f"unit {verb} cohort {cohort_keys.get(entry.object_id, '?')}"
    return {"flag.create": "flag created", "flag.archive": "flag archived"}.get(
        entry.action, "flag changed"
    )


def last_changes(
    snapshot: Snapshot, answers: list[FlagAnswer], unit: str, context: dict[str, Any]
) -> None:
    """Sets each answer's last_change: the latest audited event after which this unit's answer
    differed from the answer before it."""
    flags = {f.name: str(f.pk) for f in Flag.objects.filter(name__in=[a.key for a in answers])}
    entries = defaultdict(list)
    rows = AuditEntry.objects.filter(
        object_type="flags.flag",
        object_id__in=list(flags.values()),
        action__in=["flag.create", "flag.update", "flag.archive"],
    ).only("id", "created_at", "action", "object_id", "actor_label", "after", "reason")
    for entry in rows.order_by("-id")[: HISTORY_LIMIT * max(1, len(flags))]:
        if len(entries[entry.object_id]) < HISTORY_LIMIT:
            entries[entry.object_id].append(entry)
    cohort_keys = {str(pk): key for pk, key in Cohort.objects.values_list("pk", "key")}
    member_entries = _membership_entries(unit, cohort_keys)
    for answer in answers:
        flag_entries = list(reversed(entries.get(flags.get(answer.key, ""), [])))
        if not flag_entries:
            answer.history_note = "No audited changes."
            continue
        _replay(snapshot, answer, flag_entries, member_entries, cohort_keys, unit, context)
        if answer.last_change is None:
            since = flag_entries[0].created_at
            answer.history_note = f"Unchanged since {since:%Y-%m-%d %H:%M} UTC (as far as audited)."


def _replay(
    snapshot: Snapshot,
    answer: FlagAnswer,
    flag_entries: list[AuditEntry],
    member_entries: list[AuditEntry],
    cohort_keys: dict[str, str],
    unit: str,
    context: dict[str, Any],
) -> None:
    membership = _Membership(snapshot, unit, member_entries, cohort_keys)
    events = sorted(flag_entries + member_entries, key=lambda e: e.id)
    state: dict[str, Any] | None = None
    previous: bool | None = None
    for entry in events:
        if entry.object_type == "flags.cohort":
            kind, added = MEMBERSHIP_ACTIONS[entry.action]
            membership.apply(cohort_keys[entry.object_id], kind, added)
        else:
            state = entry.after or {}
        if state is None:
            continue
        flag = _flag_snap(answer.key, state)
        cohorts = _cohort_snaps(snapshot, {r.cohort_key for r in flag.rules}, membership, context)
        past = Snapshot(flags={answer.key: flag}, cohorts=cohorts, version=-1, built_at=0.0)
        value = evaluate(past, answer.key, context).value
        if previous is not None and value != previous:
            answer.last_change = AnswerChange(
                at=entry.created_at,
                by=entry.actor_label,
                what=_describe(entry, cohort_keys),
                reason=entry.reason,
                value=value,
            )
        previous = value


@dataclass
class UnitReport:
    unit: str
    context: dict[str, Any]
    answers: list[FlagAnswer]
    cohorts: list[str]


def unit_report(*, unit: str, context: dict[str, Any], history: bool = True) -> UnitReport:
    snapshot = flag_snapshot()
    keys = sorted(k for k, f in snapshot.flags.items() if not f.archived)
    answers = [explain(snapshot, key, context) for key in keys]
    if history:
        last_changes(snapshot, answers, unit, context)
    cohorts = sorted(k for k, c in snapshot.cohorts.items() if cohort_matches(c, context))
    plan_ids = dict(RolloutPlan.objects.filter(status__in=LIVE_STATUSES).values_list("name", "pk"))
    for answer in answers:
        answer.plan_id = plan_ids.get(answer.plan) if answer.plan else None
    return UnitReport(unit=unit, context=context, answers=answers, cohorts=cohorts)


def flag_answer(*, key: str, context: dict[str, Any]) -> FlagAnswer:
    return explain(flag_snapshot(), key, context)
