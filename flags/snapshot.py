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


def _cohort_snaps() -> dict[str, CohortSnap]:
    members: dict[int, dict[str, set[str]]] = defaultdict(
        lambda: {"member": set(), "opt_in": set()}
    )
    for cohort_id, kind, unit in CohortMember.objects.values_list(
        "cohort_id", "kind", "unit"
    ).iterator(chunk_size=20_000):
        members[cohort_id][kind].add(unit)
    snaps = {}
    for cohort in Cohort.objects.all():
        sets = members[cohort.pk]
        snaps[cohort.key] = CohortSnap(
            key=cohort.key,
            match_attribute=cohort.match_attribute,
            members=frozenset(sets[CohortMember.Kind.MEMBER]),
            opt_in_members=frozenset(sets[CohortMember.Kind.OPT_IN]),
            conditions=tuple(
                RuleCondition(rule["attribute"], rule["operator"], tuple(rule["values"]))
                for rule in cohort.rules
            ),
        )
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
    return Snapshot(
        flags=flags, cohorts=_cohort_snaps(), version=version, built_at=time.time()
    )


store.register("flags", build_flag_snapshot)
