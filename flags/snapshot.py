"""Compiles flags and cohorts into the immutable snapshot evaluation reads (see core/snapshots).

Other apps add per-flag metadata (e.g. phases: the plan and phase that own a flag) by
registering a provider here at start-up; flags never imports them.
"""

import time
from collections import defaultdict
from collections.abc import Callable, Mapping

from django.db.models import Prefetch

from flags.evaluation import CohortSnap, FlagRuleSnap, FlagSnap, RuleCondition, Snapshot
from flags.models import Cohort, CohortMember, Flag, FlagCohortRule
from rollout_control.core.snapshots import store

MetadataProvider = Callable[[], Mapping[str, Mapping[str, str | int | float | bool]]]
_metadata_providers: list[MetadataProvider] = []


def register_metadata_provider(provider: MetadataProvider) -> None:
    """`provider()` returns {flag key: {metadata name: scalar}}, called at each rebuild."""
    _metadata_providers.append(provider)


# Per process, across rebuilds: each cohort's member and opt-in sets with the version they were
# read at, and the CohortSnap built from them. A rebuild reloads only the sets whose version
# moved and reuses the unchanged CohortSnap objects, whose compiled lookups the evaluator
# remembers by identity; so an opt-in costs a reload of one small set, not of every cohort.
_sets: dict[tuple[int, str], tuple[int, frozenset[str]]] = {}
_cohorts: dict[int, tuple[tuple[object, ...], CohortSnap]] = {}
BULK_RELOAD = 20  # more stale sets than this: one query for every membership


def _forget() -> None:
    _sets.clear()
    _cohorts.clear()


def _load_sets(stale: list[tuple[int, str, int]]) -> None:
    if len(stale) > BULK_RELOAD:
        loaded: dict[tuple[int, str], set[str]] = defaultdict(set)
        for cohort_id, kind, unit in CohortMember.objects.values_list(
            "cohort_id", "kind", "unit"
        ).iterator(chunk_size=20_000):
            loaded[(cohort_id, kind)].add(unit)
        for cohort_id, kind, version in stale:
            _sets[(cohort_id, kind)] = (version, frozenset(loaded.get((cohort_id, kind), ())))
        return
    for cohort_id, kind, version in stale:
        units = CohortMember.objects.filter(cohort_id=cohort_id, kind=kind).values_list(
            "unit", flat=True
        )
        _sets[(cohort_id, kind)] = (version, frozenset(units.iterator(chunk_size=20_000)))


def _cohort_snaps() -> dict[str, CohortSnap]:
    # Versions are read before members: a change committed in between is loaded under the
    # older version, and so loaded again at the next rebuild (never the other way round).
    rows = list(
        Cohort.objects.values_list(
            "pk", "key", "match_attribute", "rules", "members_version", "opt_ins_version"
        )
    )
    kinds = ((CohortMember.Kind.MEMBER, 4), (CohortMember.Kind.OPT_IN, 5))
    stale = [
        (row[0], kind, row[index])
        for row in rows
        for kind, index in kinds
        if _sets.get((row[0], kind), (None,))[0] != row[index]
    ]
    _load_sets(stale)
    snaps = {}
    for row in rows:
        pk, key, attribute, rules = row[:4]
        members, opt_ins = (
            _sets[(pk, CohortMember.Kind.MEMBER)],
            _sets[(pk, CohortMember.Kind.OPT_IN)],
        )
        signature = (key, attribute, repr(rules), members[0], opt_ins[0])
        cached = _cohorts.get(pk)
        if cached is None or cached[0] != signature:
            cached = (
                signature,
                CohortSnap(
                    key=key,
                    match_attribute=attribute,
                    members=members[1],
                    opt_in_members=opt_ins[1],
                    conditions=tuple(
                        RuleCondition(rule["attribute"], rule["operator"], tuple(rule["values"]))
                        for rule in rules
                    ),
                ),
            )
            _cohorts[pk] = cached
        snaps[key] = cached[1]
    for pk in set(_cohorts) - {row[0] for row in rows}:
        del _cohorts[pk]  # deleted cohorts
    return snaps


def build_flag_snapshot(version: int) -> Snapshot:
    extra: dict[str, dict[str, str | int | float | bool]] = defaultdict(dict)
    for provider in _metadata_providers:
        for key, values in provider().items():
            extra[key].update(values)
    rules = Prefetch(
        "cohort_rules",
        queryset=FlagCohortRule.objects.select_related("cohort").order_by("position"),
    )
    flags = {}
    for flag in Flag.objects.filter(archived=False).prefetch_related(rules):
        flags[flag.name] = FlagSnap(
            key=flag.name,
            everyone=flag.everyone,
            basis_points=flag.basis_points,
            stickiness=flag.stickiness,
            salt=flag.salt or flag.name,
            excluded_units=frozenset(str(unit) for unit in flag.excluded_units),
            archived=False,
            rules=tuple(
                FlagRuleSnap(r.cohort.key, r.basis_points) for r in flag.cohort_rules.all()
            ),
            version=flag.version,
            metadata=extra.get(flag.name, {}),
        )
    return Snapshot(flags=flags, cohorts=_cohort_snaps(), version=version, built_at=time.time())


store.register("flags", build_flag_snapshot)
store.on_reset(_forget)
