"""Properties and unit tests of the pure flag-evaluation module (no Django, no database).

Run against the compiled build, and again against the source by test_evaluation_build.py.
"""

from __future__ import annotations

import copy
import json
import os
import pickle
from dataclasses import fields
from types import MappingProxyType

import mmh3
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from flags.evaluation import (
    IMPLEMENTATION,
    MAX_BASIS_POINTS,
    OPERATORS,
    CohortSnap,
    ErrorCode,
    Evaluation,
    FlagRuleSnap,
    FlagSnap,
    FrozenDict,
    InvalidContextError,
    Reason,
    RuleCondition,
    Snapshot,
    bucket,
    cohort_matches,
    condition_matches,
    evaluate,
    evaluate_all,
    in_rollout,
    stickiness_value,
    to_percentage,
    validate_condition,
)

# Deadlines make property tests flaky on a busy CI machine; correctness is what they check.
PROPERTY = settings(deadline=None, max_examples=200)

units = st.text(min_size=1, max_size=24)
salts = st.text(max_size=24)
basis_points = st.integers(min_value=0, max_value=MAX_BASIS_POINTS)


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------


def make_flag(
    key: str = "checkout",
    *,
    everyone: bool | None = None,
    bp: int = 5_000,
    stickiness: str = "targetingKey",
    salt: str | None = None,
    excluded: tuple[str, ...] = (),
    archived: bool = False,
    rules: tuple[FlagRuleSnap, ...] = (),
    version: int = 3,
    metadata: dict[str, object] | None = None,
) -> FlagSnap:
    return FlagSnap(
        key=key,
        everyone=everyone,
        basis_points=bp,
        stickiness=stickiness,
        salt=key if salt is None else salt,
        excluded_units=frozenset(excluded),
        archived=archived,
        rules=rules,
        version=version,
        metadata=MappingProxyType({} if metadata is None else metadata),
    )


def make_cohort(
    key: str,
    *,
    attribute: str = "targetingKey",
    members: tuple[str, ...] = (),
    opt_in: tuple[str, ...] = (),
    conditions: tuple[RuleCondition, ...] = (),
) -> CohortSnap:
    return CohortSnap(key, attribute, frozenset(members), frozenset(opt_in), conditions)


def make_snapshot(*flags: FlagSnap, cohorts: tuple[CohortSnap, ...] = ()) -> Snapshot:
    return Snapshot(
        flags={flag.key: flag for flag in flags},
        cohorts={cohort.key: cohort for cohort in cohorts},
        version=7,
        built_at=1_700_000_000.0,
    )


def cond(attribute: str, operator: str, *values: str | int | float) -> RuleCondition:
    return RuleCondition(attribute, operator, values)


# Matches any string targetingKey (even ""); NOBODY matches no context used here.
EVERYONE = make_cohort("everyone", conditions=(cond("targetingKey", "starts_with", ""),))
NOBODY = make_cohort("nobody", members=("someone-else",))


def unit_where(salt: str, bp: int, enabled: bool) -> str:
    """The first user-N whose rollout decision at bp is `enabled`."""
    return next(
        unit
        for unit in (f"user-{i}" for i in range(10_000))
        if in_rollout(salt, unit, bp) is enabled
    )


def only(condition: RuleCondition, value: object) -> bool:
    return condition_matches(condition, {condition.attribute: value})


# --------------------------------------------------------------------------------------------
# Bucketing
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("salt", "unit"), [("salt-a", "user-1"), ("checkout-v2", "42"), ("new-nav", "user-123")]
)
def test_bucket__fixed_inputs__follow_the_documented_formula(salt: str, unit: str) -> None:
    h = mmh3.hash(f"{salt}:{unit}", 0, signed=False)
    assert bucket(salt, unit) == (h % 100) * 100 + (h // 100) % 100


def test_bucket__fixed_inputs__match_pinned_values() -> None:
    # Computed once by hand from the formula; a change here re-buckets every user in production.
    assert mmh3.hash("salt-a:user-1", 0, signed=False) == 844_168_022
    assert bucket("salt-a", "user-1") == 2280
    assert bucket("checkout-v2", "42") == 4174
    assert bucket("new-nav", "user-123") == 3276


@PROPERTY
@given(salt=salts, unit=units)
def test_bucket__any_input__is_within_0_to_9999(salt: str, unit: str) -> None:
    assert 0 <= bucket(salt, unit) < MAX_BASIS_POINTS


@PROPERTY
@given(salt=salts, unit=units, bp=basis_points)
def test_in_rollout__same_unit__is_sticky(salt: str, unit: str, bp: int) -> None:
    first = in_rollout(salt, unit, bp)
    assert all(in_rollout(salt, unit, bp) is first for _ in range(3))
    # ...and evaluation agrees, also through a separately built (freshly compiled) snapshot.
    flag = make_flag(salt=salt, bp=bp)
    for snapshot in (make_snapshot(flag), make_snapshot(flag)):
        assert evaluate(snapshot, flag.key, {"targetingKey": unit}).value is first


@PROPERTY
@given(
    salt=salts,
    percentages=st.tuples(basis_points, basis_points).map(sorted),
    sample=st.lists(units, min_size=1, max_size=50, unique=True),
)
def test_in_rollout__raising_the_percentage__keeps_enabled_units_enabled(
    salt: str, percentages: list[int], sample: list[str]
) -> None:
    low, high = percentages
    enabled_low = {unit for unit in sample if in_rollout(salt, unit, low)}
    enabled_high = {unit for unit in sample if in_rollout(salt, unit, high)}
    assert enabled_low <= enabled_high


@pytest.mark.parametrize("percentage", [1, 5, 10, 25, 33.33, 50, 75, 99])
def test_in_rollout__100k_units__enabled_share_is_within_one_point(percentage: float) -> None:
    bp = round(percentage * 100)
    enabled = sum(in_rollout("fairness", f"user-{i}", bp) for i in range(100_000))
    assert abs(enabled / 1_000 - percentage) <= 1.0


def test_in_rollout__two_flags_at_50_percent__are_independent() -> None:
    both = sum(
        in_rollout("flag-a", unit, 5_000) and in_rollout("flag-b", unit, 5_000)
        for unit in (f"user-{i}" for i in range(100_000))
    )
    assert abs(both / 1_000 - 25.0) <= 1.0


@PROPERTY
@given(salt=salts, unit=units, percentage=st.integers(min_value=0, max_value=100))
def test_in_rollout__whole_percentages__match_unleash_normalized_value(
    salt: str, unit: str, percentage: int
) -> None:
    normalized = mmh3.hash(f"{salt}:{unit}", 0, signed=False) % 100 + 1
    assert in_rollout(salt, unit, percentage * 100) is (normalized <= percentage)


@pytest.mark.parametrize(
    ("bp", "expected"), [(0, False), (-5, False), (10_000, True), (12_000, True)]
)
def test_in_rollout__bounds__do_not_depend_on_the_unit(bp: int, expected: bool) -> None:
    assert {in_rollout("s", f"user-{i}", bp) for i in range(200)} == {expected}


@PROPERTY
@given(salt=salts, unit=units, bp=st.integers(min_value=1, max_value=MAX_BASIS_POINTS - 1))
def test_evaluate__partial_percentage__decides_exactly_like_in_rollout(
    salt: str, unit: str, bp: int
) -> None:
    flag = make_flag(salt=salt, bp=bp)
    result = evaluate(make_snapshot(flag), flag.key, {"targetingKey": unit})
    assert result.value is in_rollout(salt, unit, bp)
    assert result.reason == Reason.SPLIT
    assert result.variant == ("on" if result.value else "off")


@PROPERTY
@given(salt=salts, unit=units)
def test_evaluate__percentage_equal_to_the_units_bucket__excludes_it(salt: str, unit: str) -> None:
    # Random percentages almost never land on this boundary, so aim at it: on iff bucket < bp.
    own = bucket(salt, unit)
    for bp in (own, own + 1):
        if not 0 < bp < MAX_BASIS_POINTS:
            continue
        by_default = make_flag("default", salt=salt, bp=bp)
        by_rule = make_flag("by-rule", salt=salt, bp=0, rules=(FlagRuleSnap("everyone", bp),))
        snapshot = make_snapshot(by_default, by_rule, cohorts=(EVERYONE,))
        for key in ("default", "by-rule"):
            assert evaluate(snapshot, key, {"targetingKey": unit}).value is (bp > own), key


@pytest.mark.parametrize(
    ("bp", "expected"), [(2_500, 25), (1_250, 12.5), (3_333, 33.33), (0, 0), (10_000, 100)]
)
def test_to_percentage__basis_points__int_when_whole_else_float(bp: int, expected: float) -> None:
    assert to_percentage(bp) == expected
    assert type(to_percentage(bp)) is type(expected)


# --------------------------------------------------------------------------------------------
# Stickiness
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("context", "expected"),
    [
        ({"orgId": "acme"}, "acme"),
        ({"orgId": 42}, "42"),
        ({"orgId": None}, None),
        ({}, None),
        ({"orgId": ""}, None),
    ],
)
def test_stickiness_value__str_int_or_absent__is_returned_as_str(
    context: dict[str, object], expected: str | None
) -> None:
    assert stickiness_value(context, "orgId") == expected


@pytest.mark.parametrize("value", [True, False, 1.5, {"id": 1}, ["a"]])
def test_stickiness_value__other_types__raise_invalid_context(value: object) -> None:
    with pytest.raises(InvalidContextError) as raised:
        stickiness_value({"orgId": value}, "orgId")
    assert raised.value.attribute == "orgId"
    assert raised.value.code == ErrorCode.INVALID_CONTEXT
    assert "'orgId'" in str(raised.value)


# --------------------------------------------------------------------------------------------
# Evaluation order and precedence
# --------------------------------------------------------------------------------------------


def test_evaluate__kill_switch__beats_forced_on_and_exclusion() -> None:
    flag = make_flag(everyone=False, excluded=("u1",), bp=10_000)
    result = evaluate(make_snapshot(flag), flag.key, {"targetingKey": "u1"})
    assert (result.value, result.variant, result.reason) == (False, "off", Reason.DISABLED)
    assert result.error_code is None


def test_evaluate__kill_switch__applies_before_the_context_is_checked() -> None:
    flag = make_flag(everyone=False)
    assert evaluate(make_snapshot(flag), flag.key, {"targetingKey": 1.5}).reason == Reason.DISABLED


def test_evaluate__excluded_unit__beats_forced_on() -> None:
    flag = make_flag(everyone=True, excluded=("u1",))
    snapshot = make_snapshot(flag)
    excluded = evaluate(snapshot, flag.key, {"targetingKey": "u1"})
    assert (excluded.value, excluded.reason) == (False, Reason.TARGETING_MATCH)
    assert excluded.metadata["exclusion"] is True
    assert excluded.metadata["percentage"] == 0
    assert evaluate(snapshot, flag.key, {"targetingKey": "u2"}).value is True


def test_evaluate__excluded_unit__beats_matching_rules_and_percentage() -> None:
    flag = make_flag(bp=10_000, excluded=("u1",), rules=(FlagRuleSnap("everyone", 10_000),))
    result = evaluate(make_snapshot(flag, cohorts=(EVERYONE,)), flag.key, {"targetingKey": "u1"})
    assert result.value is False
    assert result.metadata["exclusion"] is True


def test_evaluate__forced_on__beats_cohort_rules() -> None:
    flag = make_flag(everyone=True, bp=0, rules=(FlagRuleSnap("everyone", 0),))
    snapshot = make_snapshot(flag, cohorts=(EVERYONE,))
    result = evaluate(snapshot, flag.key, {"targetingKey": "u1"})
    assert (result.value, result.variant, result.reason) == (True, "on", Reason.STATIC)
    assert result.metadata["percentage"] == 100
    assert "cohort" not in result.metadata


def test_evaluate__forced_on__needs_no_unit() -> None:
    flag = make_flag(everyone=True, bp=5_000)
    result = evaluate(make_snapshot(flag), flag.key, {})
    assert (result.value, result.reason, result.error_code) == (True, Reason.STATIC, None)


def test_evaluate__first_matching_rule__wins_over_later_rules_and_default() -> None:
    staff = make_cohort("staff", members=("ann",))
    flag = make_flag(bp=10_000, rules=(FlagRuleSnap("staff", 0), FlagRuleSnap("everyone", 10_000)))
    snapshot = make_snapshot(flag, cohorts=(staff, EVERYONE))

    first = evaluate(snapshot, flag.key, {"targetingKey": "ann"})
    assert (first.value, first.reason, first.metadata["cohort"]) == (
        False,
        Reason.TARGETING_MATCH,
        "staff",
    )
    second = evaluate(snapshot, flag.key, {"targetingKey": "bob"})
    assert (second.value, second.metadata["cohort"]) == (True, "everyone")


def test_evaluate__matching_rule__beats_the_default_percentage() -> None:
    flag = make_flag(bp=10_000, rules=(FlagRuleSnap("nobody", 10_000), FlagRuleSnap("everyone", 0)))
    snapshot = make_snapshot(flag, cohorts=(NOBODY, EVERYONE))
    result = evaluate(snapshot, flag.key, {"targetingKey": "u1"})
    assert (result.value, result.reason) == (False, Reason.TARGETING_MATCH)
    assert result.metadata["cohort"] == "everyone"
    assert result.metadata["percentage"] == 0


def test_evaluate__no_rule_matches__falls_back_to_default_percentage() -> None:
    flag = make_flag(bp=10_000, rules=(FlagRuleSnap("nobody", 0),))
    result = evaluate(make_snapshot(flag, cohorts=(NOBODY,)), flag.key, {"targetingKey": "u1"})
    assert (result.value, result.reason) == (True, Reason.STATIC)
    assert "cohort" not in result.metadata


def test_evaluate__rule_with_unknown_cohort__is_skipped() -> None:
    flag = make_flag(
        bp=0, rules=(FlagRuleSnap("deleted", 10_000), FlagRuleSnap("everyone", 10_000))
    )
    snapshot = make_snapshot(flag, cohorts=(EVERYONE,))
    result = evaluate(snapshot, flag.key, {"targetingKey": "u1"})
    assert (result.value, result.metadata["cohort"]) == (True, "everyone")
    alone = make_flag("alone", bp=0, rules=(FlagRuleSnap("deleted", 10_000),))
    assert evaluate(make_snapshot(alone), "alone", {"targetingKey": "u"}).reason == Reason.DEFAULT


def test_evaluate__rule_with_partial_percentage__splits_by_the_flag_salt() -> None:
    flag = make_flag(salt="salty", bp=0, rules=(FlagRuleSnap("everyone", 3_000),))
    snapshot = make_snapshot(flag, cohorts=(EVERYONE,))
    on_unit, off_unit = unit_where("salty", 3_000, True), unit_where("salty", 3_000, False)
    on = evaluate(snapshot, flag.key, {"targetingKey": on_unit})
    off = evaluate(snapshot, flag.key, {"targetingKey": off_unit})
    assert (on.value, on.reason, on.metadata["percentage"]) == (True, Reason.TARGETING_MATCH, 30)
    assert (off.value, off.reason, off.metadata["percentage"]) == (
        False,
        Reason.TARGETING_MATCH,
        30,
    )


# --------------------------------------------------------------------------------------------
# Reasons and errors
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bp", "value", "reason"), [(10_000, True, Reason.STATIC), (0, False, Reason.DEFAULT)]
)
def test_evaluate__all_or_nothing_default__is_static_or_default(
    bp: int, value: bool, reason: str
) -> None:
    flag = make_flag(bp=bp)
    for context in ({"targetingKey": "u1"}, {}):
        result = evaluate(make_snapshot(flag), flag.key, context)
        assert (result.value, result.reason, result.error_code) == (value, reason, None)


def test_evaluate__partial_default__both_outcomes_are_split() -> None:
    flag = make_flag(salt="s", bp=5_000)
    snapshot = make_snapshot(flag)
    on = evaluate(snapshot, flag.key, {"targetingKey": unit_where("s", 5_000, True)})
    off = evaluate(snapshot, flag.key, {"targetingKey": unit_where("s", 5_000, False)})
    assert (on.value, on.variant, on.reason) == (True, "on", Reason.SPLIT)
    assert (off.value, off.variant, off.reason) == (False, "off", Reason.SPLIT)


@pytest.mark.parametrize(
    ("bp", "errors"), [(0, False), (1, True), (5_000, True), (9_999, True), (10_000, False)]
)
def test_evaluate__missing_unit__errors_only_for_partial_percentages(bp: int, errors: bool) -> None:
    default = make_flag("default", bp=bp)
    by_rule = make_flag("by-rule", bp=0, rules=(FlagRuleSnap("anyone", bp),))
    anyone = make_cohort("anyone", conditions=(cond("plan", "equals", "pro"),))
    snapshot = make_snapshot(default, by_rule, cohorts=(anyone,))
    for key in ("default", "by-rule"):
        result = evaluate(snapshot, key, {"plan": "pro"})
        code = ErrorCode.TARGETING_KEY_MISSING if errors else None
        assert result.error_code == code, key
        if errors:
            assert (result.value, result.variant, result.reason) == (False, "off", Reason.ERROR)
            assert "targetingKey" in (result.error_details or "")


def test_evaluate__missing_unit_in_rule__keeps_cohort_metadata() -> None:
    flag = make_flag(rules=(FlagRuleSnap("everyone", 2_500),))
    context = {"targetingKey": ""}  # empty counts as missing but still matches starts_with ""
    result = evaluate(make_snapshot(flag, cohorts=(EVERYONE,)), flag.key, context)
    assert result.error_code == ErrorCode.TARGETING_KEY_MISSING
    assert (result.metadata["cohort"], result.metadata["percentage"]) == ("everyone", 25)


@pytest.mark.parametrize("value", [{"id": "u1"}, ["u1"], 1.5, True, False])
def test_evaluate__stickiness_value_of_wrong_type__is_invalid_context(value: object) -> None:
    flag = make_flag(stickiness="orgId", bp=10_000)
    result = evaluate(make_snapshot(flag), flag.key, {"orgId": value})
    assert (result.value, result.variant, result.reason) == (False, "off", Reason.ERROR)
    assert result.error_code == ErrorCode.INVALID_CONTEXT
    assert "'orgId'" in (result.error_details or "")


@pytest.mark.parametrize("context", [["targetingKey"], "u1", 42])
def test_evaluate__context_not_a_mapping__is_invalid_context(context: object) -> None:
    flag = make_flag(bp=10_000)
    snapshot = make_snapshot(flag)
    for key in (flag.key, "missing"):  # checked before the flag is looked up
        result = evaluate(snapshot, key, context)  # type: ignore[arg-type]
        assert (result.reason, result.error_code) == (Reason.ERROR, ErrorCode.INVALID_CONTEXT)
        assert result.value is False


def test_evaluate__context_none__is_an_empty_context() -> None:
    static = make_flag("static", bp=10_000)
    split = make_flag("split", bp=5_000)
    snapshot = make_snapshot(static, split)
    assert evaluate(snapshot, "static", None).reason == Reason.STATIC
    assert evaluate(snapshot, "split", None).error_code == ErrorCode.TARGETING_KEY_MISSING
    assert evaluate(snapshot, "split").error_code == ErrorCode.TARGETING_KEY_MISSING


def test_evaluate__read_only_mapping_context__is_accepted() -> None:
    flag = make_flag(salt="s", bp=5_000)
    unit = unit_where("s", 5_000, True)
    result = evaluate(make_snapshot(flag), flag.key, MappingProxyType({"targetingKey": unit}))
    assert (result.value, result.reason) == (True, Reason.SPLIT)


def test_evaluate__stickiness_on_org_id__buckets_by_org_not_user() -> None:
    flag = make_flag(stickiness="orgId", salt="org-salt", bp=5_000)
    snapshot = make_snapshot(flag)
    expected = in_rollout("org-salt", "42", 5_000)
    results = {
        evaluate(snapshot, flag.key, {"orgId": org, "targetingKey": f"user-{i}"}).value
        for i in range(20)
        for org in (42, "42")
    }
    assert results == {expected}
    missing = evaluate(snapshot, flag.key, {"targetingKey": "user-1"})
    assert missing.error_code == ErrorCode.TARGETING_KEY_MISSING


def test_evaluate__empty_targeting_key__counts_as_missing() -> None:
    flag = make_flag(bp=5_000)
    result = evaluate(make_snapshot(flag), flag.key, {"targetingKey": ""})
    assert result.error_code == ErrorCode.TARGETING_KEY_MISSING


@pytest.mark.parametrize("archived", [False, True])
def test_evaluate__missing_or_archived_flag__is_flag_not_found(archived: bool) -> None:
    snapshot = make_snapshot(make_flag("old", archived=True, bp=10_000))
    key = "old" if archived else "never-existed"
    result = evaluate(snapshot, key, {"targetingKey": "u1"})
    assert result == Evaluation(
        key, False, "off", Reason.ERROR, ErrorCode.FLAG_NOT_FOUND, result.error_details, {}
    )
    assert key in (result.error_details or "")


@PROPERTY
@given(unit=units, bp=basis_points, everyone=st.sampled_from([None, True, False]))
def test_evaluate__any_outcome__variant_is_on_exactly_when_value_is_true(
    unit: str, bp: int, everyone: bool | None
) -> None:
    flag = make_flag(bp=bp, everyone=everyone, excluded=("x",))
    result = evaluate(make_snapshot(flag), flag.key, {"targetingKey": unit})
    assert result.variant == ("on" if result.value else "off")
    assert result.key == flag.key


# --------------------------------------------------------------------------------------------
# Metadata
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bp", "percentage"), [(1_250, 12.5), (3_333, 33.33), (2_500, 25)])
def test_evaluate__metadata__carries_percentage_version_and_flag_metadata(
    bp: int, percentage: float
) -> None:
    flag = make_flag(bp=bp, version=9, metadata={"plan": "q3-rollout", "phase": "canary"})
    result = evaluate(make_snapshot(flag), flag.key, {"targetingKey": "u1"})
    assert result.metadata == {
        "plan": "q3-rollout",
        "phase": "canary",
        "percentage": percentage,
        "flagVersion": 9,
    }
    assert type(result.metadata["percentage"]) is type(percentage)


def test_evaluate__metadata__computed_entries_win_over_flag_metadata() -> None:
    flag = make_flag(bp=10_000, version=2, metadata={"percentage": "lie", "flagVersion": -1})
    result = evaluate(make_snapshot(flag), flag.key, {})
    assert (result.metadata["percentage"], result.metadata["flagVersion"]) == (100, 2)


def test_evaluate__metadata__on_every_kind_of_flag_outcome() -> None:
    flags = [
        make_flag("killed", everyone=False),
        make_flag("forced", everyone=True),
        make_flag("split", bp=5_000),
        make_flag("invalid", stickiness="orgId"),
        make_flag("missing-unit", stickiness="orgId"),
    ]
    snapshot = make_snapshot(*flags)
    contexts = {"invalid": {"orgId": 1.5}, "missing-unit": {}}
    for flag in flags:
        result = evaluate(snapshot, flag.key, contexts.get(flag.key, {"targetingKey": "u"}))
        assert result.metadata["flagVersion"] == 3, flag.key
        assert "percentage" in result.metadata, flag.key


def test_evaluate__metadata__is_read_only_but_a_plain_json_object() -> None:
    flag = make_flag(bp=10_000, metadata={"plan": "p"})
    snapshot = make_snapshot(flag)
    result = evaluate(snapshot, flag.key, {})
    assert isinstance(result.metadata, dict)
    with pytest.raises(TypeError):
        result.metadata["plan"] = "changed"
    with pytest.raises(TypeError):
        result.metadata.update(plan="changed")
    editable = dict(result.metadata)
    editable["plan"] = "changed"
    assert evaluate(snapshot, flag.key, {}).metadata["plan"] == "p"
    assert json.loads(json.dumps(result.metadata)) == {
        "plan": "p",
        "percentage": 100,
        "flagVersion": 3,
    }
    assert pickle.loads(pickle.dumps(result)) == result


def test_frozen_dict__every_mutator__raises_and_copies_stay_equal() -> None:
    frozen = FrozenDict({"a": 1})
    mutations = [
        lambda: frozen.__setitem__("b", 2),
        lambda: frozen.__delitem__("a"),
        lambda: frozen.pop("a"),
        lambda: frozen.popitem(),
        lambda: frozen.setdefault("b", 2),
        lambda: frozen.clear(),
        lambda: frozen.__ior__({"b": 2}),
    ]
    for mutate in mutations:
        with pytest.raises(TypeError):
            mutate()
    assert frozen == {"a": 1}
    assert pickle.loads(pickle.dumps(frozen)) == frozen
    assert type(copy.deepcopy(frozen)) is FrozenDict
    assert frozen | {"b": 2} == {"a": 1, "b": 2}


# --------------------------------------------------------------------------------------------
# Snapshot
# --------------------------------------------------------------------------------------------


def test_snapshot__fields__are_exactly_the_spec() -> None:
    assert [field.name for field in fields(Snapshot)] == ["flags", "cohorts", "version", "built_at"]


def test_snapshot__source_dicts_mutated_later__do_not_leak_in() -> None:
    flags = {"f": make_flag("f", bp=10_000)}
    snapshot = Snapshot(flags=flags, cohorts={}, version=1, built_at=0.0)
    assert evaluate(snapshot, "f", {}).value is True
    flags["f"] = make_flag("f", bp=0)
    flags["g"] = make_flag("g", bp=10_000)
    assert evaluate(snapshot, "f", {}).value is True
    assert evaluate(snapshot, "g", {}).error_code == ErrorCode.FLAG_NOT_FOUND
    with pytest.raises(TypeError):
        snapshot.flags["g"] = flags["g"]  # type: ignore[index]


def test_snapshot__pickled_after_use__evaluates_the_same_and_compares_equal() -> None:
    flag = make_flag(bp=5_000, rules=(FlagRuleSnap("everyone", 2_000),), metadata={"plan": "p"})
    snapshot = make_snapshot(flag, cohorts=(EVERYONE,))
    contexts = [{"targetingKey": f"user-{i}"} for i in range(50)]
    before = [evaluate(snapshot, flag.key, context) for context in contexts]
    restored = pickle.loads(pickle.dumps(snapshot))
    assert restored == snapshot
    assert [evaluate(restored, flag.key, context) for context in contexts] == before


def test_evaluate_all__every_live_flag__sorted_by_key() -> None:
    snapshot = make_snapshot(
        make_flag("zeta", bp=10_000),
        make_flag("alpha", bp=0),
        make_flag("archived", archived=True),
        make_flag("mid", everyone=False),
    )
    results = evaluate_all(snapshot, {"targetingKey": "u1"})
    assert [result.key for result in results] == ["alpha", "mid", "zeta"]
    assert [result.reason for result in results] == [Reason.DEFAULT, Reason.DISABLED, Reason.STATIC]
    assert [result.key for result in evaluate_all(snapshot, None)] == ["alpha", "mid", "zeta"]
    assert {result.error_code for result in evaluate_all(snapshot, ["bad"])} == {  # type: ignore[arg-type]
        ErrorCode.INVALID_CONTEXT
    }


# --------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------


def test_cohort_matches__member_or_opt_in_member__matches() -> None:
    cohort = make_cohort("beta", attribute="orgId", members=("42",), opt_in=("7",))
    assert cohort_matches(cohort, {"orgId": "42"})
    assert cohort_matches(cohort, {"orgId": 42})
    assert cohort_matches(cohort, {"orgId": 7})
    assert not cohort_matches(cohort, {"orgId": 8})
    assert not cohort_matches(cohort, {"targetingKey": "42"})


def test_cohort_matches__non_str_int_values__are_never_members() -> None:
    cohort = make_cohort("odd", attribute="orgId", members=("True", "1", "1.5", "007"))
    for value in (True, 1.5, None, ["1"], 7):
        assert not cohort_matches(cohort, {"orgId": value}), value
    assert cohort_matches(cohort, {"orgId": 1})


def test_cohort_matches__no_members_and_no_conditions__never_matches() -> None:
    assert not cohort_matches(make_cohort("empty"), {"targetingKey": "anyone"})


def test_cohort_matches__conditions__must_all_hold_unless_a_member() -> None:
    conditions = (cond("plan", "equals", "pro"), cond("country", "in", "DE", "FR"))
    cohort = make_cohort("eu-pro", members=("vip",), conditions=conditions)
    assert cohort_matches(cohort, {"plan": "pro", "country": "FR"})
    assert not cohort_matches(cohort, {"plan": "pro", "country": "US"})
    assert not cohort_matches(cohort, {"plan": "pro"})
    assert cohort_matches(cohort, {"targetingKey": "vip", "plan": "free"})


context_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=12),
    st.sampled_from(["1", "7", "007", "-3", "pro", "free", "DE", "", "2.0.0", "1.5"]),
    st.floats(min_value=-2, max_value=9, allow_nan=False),
    st.just(["pro"]),
)
condition_values = st.one_of(
    st.integers(min_value=-3, max_value=12),
    st.sampled_from(["1", "7", "007", "-3", "pro", "DE", "1.5.0", "2.0.0-rc.1", "3"]),
    st.floats(min_value=-2, max_value=9, allow_nan=False),
)
conditions = st.builds(
    RuleCondition,
    st.sampled_from(["plan", "orgId", "version"]),
    st.sampled_from(sorted(OPERATORS)),
    st.lists(condition_values, max_size=3).map(tuple),
)
cohorts = st.builds(
    make_cohort,
    st.just("c"),
    attribute=st.sampled_from(["plan", "orgId"]),
    members=st.lists(st.sampled_from(["1", "7", "007", "pro", "True"]), max_size=3).map(tuple),
    opt_in=st.lists(st.sampled_from(["-3", "free"]), max_size=1).map(tuple),
    conditions=st.lists(conditions, max_size=2).map(tuple),
)
contexts = st.dictionaries(st.sampled_from(["plan", "orgId", "version"]), context_values)


@PROPERTY
@given(cohort=cohorts, context=contexts)
def test_evaluate__rule_matching__agrees_with_cohort_matches(
    cohort: CohortSnap, context: dict[str, object]
) -> None:
    flag = make_flag(stickiness="unit", bp=0, rules=(FlagRuleSnap("c", 10_000),))
    result = evaluate(make_snapshot(flag, cohorts=(cohort,)), flag.key, {**context, "unit": "u"})
    assert (result.reason == Reason.TARGETING_MATCH) is cohort_matches(cohort, context)


# --------------------------------------------------------------------------------------------
# Condition operators
# --------------------------------------------------------------------------------------------

OPERATOR_CASES = [
    # in / not_in: str/int compared as strings; bool and float are never stringified
    ("in", ("pro", "team"), "team", True),
    ("in", ("pro", "team"), "free", False),
    ("in", (1, 2), 2, True),
    ("in", (1, 2), "2", True),
    ("in", ("7",), 7, True),
    ("in", ("007",), 7, False),
    ("in", ("True",), True, False),
    ("in", ("1.5",), 1.5, False),
    ("not_in", ("pro",), "free", True),
    ("not_in", ("pro",), "pro", False),
    ("not_in", ("1",), 1, False),
    ("not_in", ("x",), True, False),
    # equals / not_equals: only values[0] counts
    ("equals", ("pro",), "pro", True),
    ("equals", ("pro",), "Pro", False),
    ("equals", (42,), "42", True),
    ("equals", ("42",), 42, True),
    ("equals", ("a", "b"), "b", False),
    ("not_equals", ("pro",), "free", True),
    ("not_equals", ("pro",), "pro", False),
    ("not_equals", ("1",), 1, False),
    # contains / starts_with: strings only, any of the values
    ("contains", ("@acme.com",), "ann@acme.com", True),
    ("contains", ("x", "acme"), "acme-corp", True),
    ("contains", ("zzz",), "acme", False),
    ("contains", ("1",), 123, False),
    ("starts_with", ("beta-",), "beta-7", True),
    ("starts_with", ("beta-",), "7-beta-", False),
    ("starts_with", ("a", "b"), "bob", True),
    ("starts_with", ("1",), 123, False),
    # numeric comparisons: int/float/numeric strings, never bool
    ("gt", (5,), 6, True),
    ("gt", (5,), 5, False),
    ("gt", (5,), "5.5", True),
    ("gt", ("4.5",), 5, True),
    ("gt", (5,), "abc", False),
    ("gt", (0,), True, False),
    ("gte", (5,), 5, True),
    ("gte", (5,), 4.99, False),
    ("lt", (5,), 4, True),
    ("lt", (5,), 5, False),
    ("lte", (5,), 5.0, True),
    ("lte", (5,), "5.01", False),
    # semver, with "v" prefixes, prereleases and build metadata
    ("semver_gt", ("2.3.0",), "2.4.0", True),
    ("semver_gt", ("2.3.0",), "2.3.0", False),
    ("semver_gt", ("2.3.0",), "v2.3.1", True),
    ("semver_gt", ("2.3.0",), "2.3.1-beta.1", True),
    ("semver_gt", ("2.3.0",), "2.3.0-rc.1", False),
    ("semver_gt", ("v2.3.0-rc.1",), "2.3.0", True),
    ("semver_gt", ("2.3.0",), "2.10.0", True),
    ("semver_gt", ("2.3.0",), "2.3", False),
    ("semver_gt", ("2.3.0",), 3, False),
    ("semver_lt", ("1.0.0",), "1.0.0-alpha", True),
    ("semver_lt", ("1.0.0",), "0.9.9", True),
    ("semver_lt", ("1.0.0",), "1.0.0", False),
    ("semver_lt", ("1.0.0",), "1.0.0+build.5", False),
    ("semver_lt", ("1.0.0",), "01.0.0", False),
    # datetimes: "Z" and offsets; naive means UTC
    ("before", ("2024-06-01T00:00:00Z",), "2024-05-31T23:59:59Z", True),
    ("before", ("2024-06-01T00:00:00Z",), "2024-06-01T00:00:00Z", False),
    ("before", ("2024-06-01T00:00:00Z",), "2024-06-01T01:59:00+02:00", True),
    ("before", ("2024-06-01T00:00:00Z",), "2024-05-31T23:00:00", True),
    ("before", ("2024-06-01T00:00:00",), "2024-06-01T00:30:00+01:00", True),
    ("before", ("2024-06-01T00:00:00Z",), "not a date", False),
    ("after", ("2024-06-01T00:00:00Z",), "2024-06-01T00:00:01Z", True),
    ("after", ("2024-06-01T00:00:00Z",), "2024-06-01T00:00:01z", True),
    ("after", ("2024-06-01T00:00:00Z",), "2024-05-01", False),
    ("after", ("2024-06-01T00:00:00Z",), 1_717_200_000, False),
]


@pytest.mark.parametrize(("operator", "values", "value", "expected"), OPERATOR_CASES)
def test_condition_matches__operator_cases(
    operator: str, values: tuple[str | int | float, ...], value: object, expected: bool
) -> None:
    assert only(cond("attr", operator, *values), value) is expected


def test_condition_matches__cases__cover_every_operator_both_ways() -> None:
    covered = {(operator, expected) for operator, _, _, expected in OPERATOR_CASES}
    assert covered == {(operator, outcome) for operator in OPERATORS for outcome in (True, False)}


VALID_THRESHOLDS: dict[str, tuple[str | int | float, ...]] = {
    "in": ("a",),
    "not_in": ("a",),
    "equals": ("a",),
    "not_equals": ("a",),
    "contains": ("a",),
    "starts_with": ("a",),
    "gt": (1,),
    "gte": (1,),
    "lt": (1,),
    "lte": (1,),
    "semver_gt": ("1.0.0",),
    "semver_lt": ("1.0.0",),
    "before": ("2024-01-01T00:00:00Z",),
    "after": ("2024-01-01T00:00:00Z",),
}


def test_operators__are_exactly_the_documented_set() -> None:
    assert set(VALID_THRESHOLDS) == OPERATORS


@pytest.mark.parametrize("operator", sorted(VALID_THRESHOLDS))
def test_condition_matches__missing_or_none_attribute__never_matches(operator: str) -> None:
    condition = RuleCondition("attr", operator, VALID_THRESHOLDS[operator])
    assert not condition_matches(condition, {})
    assert not condition_matches(condition, {"attr": None})
    assert not condition_matches(condition, {"other": "a"})


# SemVer 2.0 section 11, in increasing precedence.
SEMVER_CHAIN = [
    "1.0.0-alpha",
    "1.0.0-alpha.1",
    "1.0.0-alpha.beta",
    "1.0.0-beta",
    "1.0.0-beta.2",
    "1.0.0-beta.11",
    "1.0.0-rc.1",
    "1.0.0",
    "1.0.1",
    "1.1.0",
    "2.0.0",
]


@pytest.mark.parametrize("lower", range(len(SEMVER_CHAIN)))
def test_condition_matches__semver__follows_semver_2_precedence(lower: int) -> None:
    low = SEMVER_CHAIN[lower]
    for high in SEMVER_CHAIN[lower + 1 :]:
        assert only(cond("v", "semver_gt", low), high), (high, ">", low)
        assert only(cond("v", "semver_lt", high), low), (low, "<", high)
        assert not only(cond("v", "semver_gt", high), low), (low, "not >", high)
        assert not only(cond("v", "semver_lt", low), high), (high, "not <", low)
    assert not only(cond("v", "semver_gt", low), low)
    assert not only(cond("v", "semver_lt", low), low)


@pytest.mark.parametrize(
    "condition",
    [
        cond("attr", "gt", "abc"),
        cond("attr", "semver_gt", "1.2"),
        cond("attr", "before", "soon"),
        cond("attr", "regex", ".*"),
        cond("attr", "not_in"),
        cond("attr", "in"),
    ],
)
def test_condition_matches__malformed_condition__fails_closed(condition: RuleCondition) -> None:
    for value in ("a", "1.2.3", "2024-01-01T00:00:00Z", 5, "zzz"):
        assert not only(condition, value)
    cohort = make_cohort("broken", conditions=(condition,))
    assert not cohort_matches(cohort, {"attr": "a"})


@PROPERTY
@given(
    values=st.lists(condition_values, min_size=1, max_size=4).map(tuple),
    value=context_values,
)
def test_condition_matches__in_and_equals__compare_str_or_int_as_strings(
    values: tuple[str | int | float, ...], value: object
) -> None:
    stringifiable = type(value) in (str, int)
    text = str(value)
    strings = {str(v) for v in values}
    assert only(RuleCondition("a", "in", values), value) is (stringifiable and text in strings)
    assert only(RuleCondition("a", "not_in", values), value) is (
        stringifiable and text not in strings
    )
    assert only(RuleCondition("a", "equals", values), value) is (
        stringifiable and text == str(values[0])
    )


# --------------------------------------------------------------------------------------------
# validate_condition
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("operator", sorted(VALID_THRESHOLDS))
def test_validate_condition__valid_condition__has_no_problems(operator: str) -> None:
    assert validate_condition("plan", operator, list(VALID_THRESHOLDS[operator])) == []


@pytest.mark.parametrize(
    ("attribute", "operator", "values", "expected"),
    [
        ("plan", "regex", ["a"], "operator: unknown operator 'regex' (expected one of: after,"),
        ("plan", "in", [], "values: must contain at least one value"),
        ("plan", "in", "pro", "values: must be a list of strings or numbers"),
        ("plan", "in", ["a", True], "values[1]: must be a string or number, got bool"),
        ("plan", "gt", ["abc"], "values[0]: 'abc' is not a finite number (operator 'gt')"),
        ("plan", "lte", ["nan"], "values[0]: 'nan' is not a finite number (operator 'lte')"),
        ("v", "semver_lt", ["1.2"], "values[0]: '1.2' is not a semantic version"),
        ("at", "after", ["tomorrow"], "values[0]: 'tomorrow' is not an ISO-8601 datetime"),
        ("", "in", ["a"], "attribute: must be a non-empty string"),
    ],
)
def test_validate_condition__problem__is_reported_with_its_field(
    attribute: str, operator: str, values: object, expected: str
) -> None:
    problems = validate_condition(attribute, operator, values)  # type: ignore[arg-type]
    assert len(problems) == 1, problems
    assert problems[0].startswith(expected), problems[0]


def test_validate_condition__several_problems__are_all_reported() -> None:
    problems = validate_condition(" ", "between", [])
    assert [problem.split(":")[0] for problem in problems] == ["attribute", "operator", "values"]


# --------------------------------------------------------------------------------------------
# Implementation and remembered condition outcomes
# --------------------------------------------------------------------------------------------


def test_implementation__is_the_one_the_environment_asks_for() -> None:
    # This file runs twice: here against the compiled build (which `pip install -e .` makes;
    # "source" here means the build is missing or older than flags/_evaluation.py), and in
    # tests/flags/test_evaluation_build.py against the source, with ROLLOUT_EVALUATION=source.
    wanted = "source" if os.environ.get("ROLLOUT_EVALUATION") == "source" else "compiled"
    assert wanted == IMPLEMENTATION, "run `pip install -e .` to rebuild flags/_evaluation.py"


def test_evaluate__more_distinct_values_than_a_condition_remembers__each_answer_is_right() -> None:
    # Each compiled condition remembers 1,024 outcomes, then starts over: three rounds of 2,500
    # values go through remembering, forgetting and remembering again.
    cohort = make_cohort("acme", conditions=(cond("email", "contains", "7@acme"),))
    flag = make_flag(bp=0, rules=(FlagRuleSnap("acme", MAX_BASIS_POINTS),))
    snapshot = make_snapshot(flag, cohorts=(cohort,))
    for _ in range(3):
        for i in range(2_500):
            email = f"user{i}@acme.example"
            context = {"targetingKey": f"user-{i}", "email": email}
            assert evaluate(snapshot, "checkout", context).value is ("7@acme" in email)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1", True), (1, True), (True, False), (1.0, False), ("01", False), (None, False)],
)
def test_evaluate__remembered_outcomes__keep_str_int_bool_and_float_apart(
    value: object, expected: bool
) -> None:
    # Outcomes are remembered by value; True == 1 == 1.0 in a dict, but only "1" and 1 match.
    cohort = make_cohort("one", conditions=(cond("tier", "equals", "1"),))
    flag = make_flag(bp=0, rules=(FlagRuleSnap("one", MAX_BASIS_POINTS),))
    snapshot = make_snapshot(flag, cohorts=(cohort,))
    for first in ("1", 1, True, 1.0, "01"):  # warm the memory with look-alikes first
        evaluate(snapshot, "checkout", {"targetingKey": "u", "tier": first})
    assert evaluate(snapshot, "checkout", {"targetingKey": "u", "tier": value}).value is expected


@pytest.mark.parametrize("unit", [7, 2**70, -3])
def test_evaluate__integer_unit__hashes_its_decimal_text(unit: int) -> None:
    flag = make_flag(bp=5_000, stickiness="orgId")
    snapshot = make_snapshot(flag)
    for _ in range(2):  # the second time from remembered text
        result = evaluate(snapshot, "checkout", {"orgId": unit})
        assert result.value is in_rollout("checkout", str(unit), 5_000)
