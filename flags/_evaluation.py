"""Pure feature-flag evaluation: snapshot data model, bucketing, targeting and rollout decisions.

Deliberately free of Django so it can run on the hot path (thousands of evaluations per second
per core) and be exercised by property tests without any app setup. Import it as
``flags.evaluation``, which serves this module compiled by Cython when the build is current (see
setup.py): the same source, with Python's semantics, at about 1.5 times the speed.

Performance model: a ``Snapshot`` is immutable, so each flag is compiled once, on first use, into
a plan (a plain tuple) holding every ``Evaluation`` it can return, bar the errors that quote the
offending context. Evaluating is then a few dict lookups, at most one murmur3 hash and returning
a prebuilt object; building a frozen dataclass per call would cost more than all of that. This
is why ``Evaluation.metadata`` is a read-only ``FrozenDict``: one instance is shared by every
caller getting the same outcome (copy it with ``dict(...)`` to modify it).
"""

from __future__ import annotations

import math
import operator as _op
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Final, NoReturn, TypeVar

import mmh3

__all__ = [
    "MAX_BASIS_POINTS",
    "OPERATORS",
    "CohortSnap",
    "ErrorCode",
    "Evaluation",
    "FlagRuleSnap",
    "FlagSnap",
    "FrozenDict",
    "InvalidContextError",
    "Reason",
    "RuleCondition",
    "Snapshot",
    "bucket",
    "cohort_matches",
    "condition_matches",
    "evaluate",
    "evaluate_all",
    "in_rollout",
    "stickiness_value",
    "to_percentage",
    "validate_condition",
]

MAX_BASIS_POINTS: Final = 10_000

_K = TypeVar("_K")
_V = TypeVar("_V")
Context = Mapping[str, object]

# Bound the parse memo: thresholds repeat constantly, but context values are client input.
_PARSE_CACHE_SIZE: Final = 4096


class Reason:
    STATIC: Final = "STATIC"
    TARGETING_MATCH: Final = "TARGETING_MATCH"
    SPLIT: Final = "SPLIT"
    DISABLED: Final = "DISABLED"
    DEFAULT: Final = "DEFAULT"
    ERROR: Final = "ERROR"


class ErrorCode:
    FLAG_NOT_FOUND: Final = "FLAG_NOT_FOUND"
    TARGETING_KEY_MISSING: Final = "TARGETING_KEY_MISSING"
    INVALID_CONTEXT: Final = "INVALID_CONTEXT"
    PARSE_ERROR: Final = "PARSE_ERROR"
    GENERAL: Final = "GENERAL"


class FrozenDict(dict[_K, _V]):
    """A dict that refuses mutation.

    Still a real ``dict`` so JSON encoders, ``isinstance(x, dict)`` checks and ``**`` unpacking
    keep working; read-only because evaluations and snapshots are shared between callers.
    """

    __slots__ = ()

    def _readonly(self, *_args: object, **_kwargs: object) -> NoReturn:
        raise TypeError("FrozenDict is read-only; copy it with dict(...) to modify")

    __setitem__ = __delitem__ = __ior__ = _readonly
    clear = pop = popitem = setdefault = update = _readonly

    def __reduce__(self) -> tuple[type[FrozenDict[_K, _V]], tuple[dict[_K, _V]]]:
        # dict's default pickling replays __setitem__, which we forbid.
        return (type(self), (dict(self),))

    def __copy__(self) -> FrozenDict[_K, _V]:
        return self


_EMPTY_CONTEXT: Final[FrozenDict[str, object]] = FrozenDict()


class _Memo(dict[_K, _V]):
    """``function``'s answers, at most ``size`` of them, starting over when full.

    A dict subclass with ``__missing__`` so a hit is one C-level lookup, ``memo[value]``.
    """

    __slots__ = ("_function", "_size")

    def __init__(self, function: Callable[[_K], _V], size: int) -> None:
        super().__init__()
        self._function = function
        self._size = size

    def __missing__(self, value: _K) -> _V:
        answer = self._function(value)
        if len(self) >= self._size:
            self.clear()
        self[value] = answer
        return answer


def _freeze_map(value: Mapping[_K, _V]) -> FrozenDict[_K, _V]:
    return value if isinstance(value, FrozenDict) else FrozenDict(value)


def _freeze_set(value: Iterable[str]) -> frozenset[str]:
    return value if isinstance(value, frozenset) else frozenset(value)


# --------------------------------------------------------------------------------------------
# Snapshot data model. __post_init__ only normalises containers to immutable types: compiled
# closures are cached per snapshot, so the data must not be able to change underneath them.
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RuleCondition:
    attribute: str
    operator: str
    values: tuple[str | int | float, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.values, tuple):
            object.__setattr__(self, "values", tuple(self.values))


@dataclass(frozen=True, slots=True)
class CohortSnap:
    key: str
    match_attribute: str
    members: frozenset[str]
    opt_in_members: frozenset[str]
    conditions: tuple[RuleCondition, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "members", _freeze_set(self.members))
        object.__setattr__(self, "opt_in_members", _freeze_set(self.opt_in_members))
        if not isinstance(self.conditions, tuple):
            object.__setattr__(self, "conditions", tuple(self.conditions))


@dataclass(frozen=True, slots=True)
class FlagRuleSnap:
    cohort_key: str
    basis_points: int


@dataclass(frozen=True, slots=True)
class FlagSnap:
    key: str
    everyone: bool | None
    basis_points: int
    stickiness: str
    salt: str
    excluded_units: frozenset[str]
    archived: bool
    rules: tuple[FlagRuleSnap, ...]
    version: int
    metadata: Mapping[str, object]

    def __post_init__(self) -> None:
        object.__setattr__(self, "excluded_units", _freeze_set(self.excluded_units))
        object.__setattr__(self, "metadata", _freeze_map(self.metadata))
        if not isinstance(self.rules, tuple):
            object.__setattr__(self, "rules", tuple(self.rules))


@dataclass(frozen=True, slots=True)
class Evaluation:
    key: str
    value: bool
    variant: str
    reason: str
    error_code: str | None
    error_details: str | None
    metadata: dict[str, object]


class _SnapshotCache:
    # Slots outside the dataclass fields: invisible to ==, repr(), fields() and asdict().
    __slots__ = ("_cohort_plans", "_live_keys", "_plans")


@dataclass(frozen=True, slots=True)
class Snapshot(_SnapshotCache):
    flags: Mapping[str, FlagSnap]
    cohorts: Mapping[str, CohortSnap]
    version: int
    built_at: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "flags", _freeze_map(self.flags))
        object.__setattr__(self, "cohorts", _freeze_map(self.cohorts))
        object.__setattr__(self, "_plans", {})
        object.__setattr__(self, "_cohort_plans", {})
        object.__setattr__(self, "_live_keys", None)

    def __reduce__(self) -> tuple[type[Snapshot], tuple[object, ...]]:
        # Rebuild through __init__ so an unpickled snapshot gets fresh (empty) caches;
        # pickling matters because snapshots are likely to travel through Django's cache.
        return (type(self), (self.flags, self.cohorts, self.version, self.built_at))


# --------------------------------------------------------------------------------------------
# Bucketing
# --------------------------------------------------------------------------------------------

_hash: Final = mmh3.hash


def bucket(salt: str, unit: str) -> int:
    """Stable bucket in 0..9999; the first two digits are Unleash's ``normalizedValue - 1``."""
    h = _hash(f"{salt}:{unit}", 0, False)
    return (h % 100) * 100 + (h // 100) % 100


def in_rollout(salt: str, unit: str, basis_points: int) -> bool:
    if basis_points <= 0:
        return False
    if basis_points >= MAX_BASIS_POINTS:
        return True
    return bucket(salt, unit) < basis_points


def to_percentage(basis_points: int) -> int | float:
    """Basis points as a percentage: an int when whole (25), else a float (12.5, 33.33)."""
    whole, rest = divmod(basis_points, 100)
    return whole if rest == 0 else basis_points / 100


# --------------------------------------------------------------------------------------------
# Context values
# --------------------------------------------------------------------------------------------


class InvalidContextError(ValueError):
    code: Final = ErrorCode.INVALID_CONTEXT

    def __init__(self, attribute: str, value: object) -> None:
        self.attribute = attribute
        ValueError.__init__(
            self,
            f"context attribute {attribute!r} must be a string or integer, "
            f"got {type(value).__name__}",
        )


# Integer units as text (str() is a third of an evaluation's time); bounded like _Memo says.
_INT_TEXT: Final[_Memo[int, str]] = _Memo(str, 4096)


def _as_string(value: object) -> str | None:
    """str/int context values as strings; None for every other type.

    bool is rejected explicitly because it is an int subclass and ``str(True)`` would silently
    turn a boolean into the unit "True".
    """
    if type(value) is str:
        return value
    if type(value) is int:
        return str(value)
    if isinstance(value, str):
        return str(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return str(int(value))
    return None


def stickiness_value(context: Context, attribute: str) -> str | None:
    """The rollout unit, or None when absent. Raises InvalidContextError for non str/int values.

    An empty string counts as absent: hashing "" would put every anonymous caller in the same
    bucket.
    """
    raw = context.get(attribute)
    if raw is None:
        return None
    unit = _as_string(raw)
    if unit is None:
        raise InvalidContextError(attribute, raw)
    return unit or None


# --------------------------------------------------------------------------------------------
# Condition operators. Each compiler parses the thresholds once, when the snapshot is first
# used, and returns a compiled condition, or None when the condition can never match.
# --------------------------------------------------------------------------------------------


def _stringify(value: object) -> str:
    return value if type(value) is str else str(value)


def _to_number(value: object) -> int | float | None:
    kind = type(value)
    if kind is int or kind is float:
        return value  # type: ignore[return-value]
    if kind is bool:
        return None
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    if isinstance(value, int | float):
        return value
    return None


_SEMVER_RE: Final = re.compile(
    r"v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-([0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?"
    r"(?:\+[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*)?"
)
_RELEASE: Final = (1,)
_SemverKey = tuple[int, int, int, tuple[object, ...]]


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _semver_key(text: str) -> _SemverKey | None:
    """A sort key implementing SemVer 2.0 precedence, or None when unparsable.

    Releases get ``(1,)`` and prereleases ``(0, *identifiers)`` so a prerelease sorts before its
    release; numeric identifiers ``(0, n, "")`` sort before alphanumeric ones ``(1, 0, s)``, and
    tuple comparison gives "more identifiers wins when the prefix is equal". Build metadata
    (``+...``) is accepted and ignored, as SemVer requires for precedence.
    """
    match = _SEMVER_RE.fullmatch(text)
    if match is None:
        return None
    major, minor, patch, prerelease = match.groups()
    if prerelease is None:
        return (int(major), int(minor), int(patch), _RELEASE)
    identifiers: list[tuple[int, int, str]] = []
    for part in prerelease.split("."):
        if not part.isdigit():
            identifiers.append((1, 0, part))
        elif len(part) > 1 and part[0] == "0":
            return None  # SemVer forbids leading zeros in numeric identifiers
        else:
            identifiers.append((0, int(part), ""))
    return (int(major), int(minor), int(patch), (0, *identifiers))


@lru_cache(maxsize=_PARSE_CACHE_SIZE)
def _parse_iso(text: str) -> datetime | None:
    if text[-1:] in ("Z", "z"):
        text = text[:-1] + "+00:00"  # fromisoformat rejects "z", and "Z" before Python 3.11
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    # Naive datetimes are taken as UTC so they compare with aware ones instead of raising.
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _to_datetime(value: object) -> datetime | None:
    if isinstance(value, str):
        return _parse_iso(value)
    if isinstance(value, datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    return None


def _to_semver(value: object) -> _SemverKey | None:
    return _semver_key(value) if isinstance(value, str) else None


# A compiled condition: (attribute, outcomes, test). ``test`` decides any context value (None,
# a missing attribute, matches no operator, not even not_in); ``outcomes`` remembers its answers
# for str and int values, so a condition on a low-cardinality attribute (country, plan, app
# version, platform: what cohorts are written on) costs one dict lookup instead of a call.
_ValueTest = Callable[[object], bool]
_Compiler = Callable[[Sequence[object]], _ValueTest | None]

# Client input is unbounded, so each condition remembers at most this many values, starting
# over when full: a high-cardinality attribute then costs one extra store per value, no more.
_OUTCOMES_SIZE: Final = 1024


def _remembering(test: _ValueTest) -> _Memo[object, bool]:
    return _Memo(test, _OUTCOMES_SIZE)


_Condition = tuple[str, _Memo[object, bool], _ValueTest]


def _reject(_value: object) -> bool:
    return False


def _canonical_int(text: str) -> int | None:
    try:
        number = int(text)
    except ValueError:
        return None
    return number if str(number) == text else None


def _lookup_keys(values: Iterable[object]) -> frozenset[object]:
    """The stringified values, plus an int twin of each canonical decimal string.

    The twins let an exact-int context value be looked up without a str() per call; "007" gets
    no twin, so 7 still only matches "7", exactly as comparing str(7) would.
    """
    strings = {_stringify(value) for value in values}
    twins = {number for number in map(_canonical_int, strings) if number is not None}
    return frozenset(strings | twins)


def _key_set(wanted: bool, first_only: bool) -> _Compiler:
    def compile_(values: Sequence[object]) -> _ValueTest:
        keys = frozenset(map(_stringify, values[:1] if first_only else values))

        def test(value: object) -> bool:
            text = _as_string(value)  # None for None, bool, float, ...: never a match
            return text is not None and (text in keys) is wanted

        return test

    return compile_


def _compile_contains(values: Sequence[object]) -> _ValueTest:
    needles = tuple(map(_stringify, values))

    def test(value: object) -> bool:
        return isinstance(value, str) and any(needle in value for needle in needles)

    return test


def _compile_starts_with(values: Sequence[object]) -> _ValueTest:
    prefixes = tuple(map(_stringify, values))

    def test(value: object) -> bool:
        return isinstance(value, str) and value.startswith(prefixes)

    return test


def _ordered(
    parse: Callable[[object], object | None], compare: Callable[[object, object], bool]
) -> _Compiler:
    """Threshold operators: values[0] is parsed once, the context value on every call."""

    def compile_(values: Sequence[object]) -> _ValueTest | None:
        threshold = parse(values[0])
        if threshold is None:
            return None

        def test(value: object) -> bool:
            parsed = parse(value)
            return parsed is not None and compare(parsed, threshold)

        return test

    return compile_


_COMPILERS: Final[Mapping[str, _Compiler]] = FrozenDict(
    {
        "in": _key_set(wanted=True, first_only=False),
        "not_in": _key_set(wanted=False, first_only=False),
        "equals": _key_set(wanted=True, first_only=True),
        "not_equals": _key_set(wanted=False, first_only=True),
        "contains": _compile_contains,
        "starts_with": _compile_starts_with,
        "gt": _ordered(_to_number, _op.gt),
        "gte": _ordered(_to_number, _op.ge),
        "lt": _ordered(_to_number, _op.lt),
        "lte": _ordered(_to_number, _op.le),
        "semver_gt": _ordered(_to_semver, _op.gt),
        "semver_lt": _ordered(_to_semver, _op.lt),
        "before": _ordered(_to_datetime, _op.lt),
        "after": _ordered(_to_datetime, _op.gt),
    }
)

OPERATORS: Final[frozenset[str]] = frozenset(_COMPILERS)
_NUMERIC_OPERATORS: Final = frozenset({"gt", "gte", "lt", "lte"})
_SEMVER_OPERATORS: Final = frozenset({"semver_gt", "semver_lt"})
_DATETIME_OPERATORS: Final = frozenset({"before", "after"})


def _compile_condition(condition: RuleCondition) -> _Condition:
    compiler = _COMPILERS.get(condition.operator)
    test = None
    if compiler is not None and condition.values:
        test = compiler(condition.values)
    # Unknown operators and empty/unparsable thresholds fail closed: a malformed condition must
    # never widen a cohort.
    test = _reject if test is None else test
    return (condition.attribute, _remembering(test), test)


def _conditions_hold(conditions: tuple[_Condition, ...], context: Context) -> bool:
    for attribute, outcomes, test in conditions:
        value = context.get(attribute)
        kind = type(value)
        if kind is str or kind is int:
            if not outcomes[value]:
                return False
        elif not test(value):
            return False
    return True


def condition_matches(condition: RuleCondition, context: Context) -> bool:
    """Whether one condition holds; a missing (or None) attribute never matches."""
    return _conditions_hold((_compile_condition(condition),), context)


def validate_condition(attribute: str, operator: str, values: Sequence[object]) -> list[str]:
    """Human-readable problems, each prefixed with the offending field, for API 400s."""
    problems: list[str] = []
    if not isinstance(attribute, str) or not attribute.strip():
        problems.append("attribute: must be a non-empty string")
    if operator not in OPERATORS:
        expected = ", ".join(sorted(OPERATORS))
        problems.append(f"operator: unknown operator {operator!r} (expected one of: {expected})")
    if isinstance(values, str | bytes) or not isinstance(values, Sequence):
        problems.append("values: must be a list of strings or numbers")
        return problems
    if not values:
        problems.append("values: must contain at least one value")
        return problems
    problems.extend(
        f"values[{index}]: must be a string or number, got {type(value).__name__}"
        for index, value in enumerate(values)
        if isinstance(value, bool) or not isinstance(value, str | int | float)
    )
    threshold_problem = _threshold_problem(operator, values[0])
    if threshold_problem is not None:
        problems.append(threshold_problem)
    return problems


def _threshold_problem(operator: str, threshold: object) -> str | None:
    if operator in _NUMERIC_OPERATORS:
        number = _to_number(threshold)
        if number is None or not math.isfinite(number):
            return f"values[0]: {threshold!r} is not a finite number (operator {operator!r})"
    if operator in _SEMVER_OPERATORS and _to_semver(threshold) is None:
        return (
            f"values[0]: {threshold!r} is not a semantic version "
            "(expected MAJOR.MINOR.PATCH, e.g. 1.4.0 or v2.0.0-beta.1)"
        )
    if operator in _DATETIME_OPERATORS and _to_datetime(threshold) is None:
        return f"values[0]: {threshold!r} is not an ISO-8601 datetime (e.g. 2024-05-01T12:00:00Z)"
    return None


# --------------------------------------------------------------------------------------------
# Cohorts
# --------------------------------------------------------------------------------------------


# (match attribute, lookup keys of members and opt-in members, compiled conditions). Plans are
# plain tuples, not NamedTuples: CPython only unpacks exact tuples fast, and it shows here.
_CohortPlan = tuple[str, frozenset[object], tuple[_Condition, ...]]


class _ByIdentity:
    """Results computed from immutable objects, remembered across snapshots by identity.

    A snapshot rebuilt after one opt-in reuses every unchanged member set (flags/snapshot.py), so
    its lookup keys, an O(members) computation, are not computed again. The object is held with
    its result, so its id cannot be reused while the entry lives."""

    def __init__(self, size: int) -> None:
        self._items: dict[int, tuple[object, object]] = {}
        self._size = size

    def get(self, key: object, compute: Callable[[object], object]) -> object:
        hit = self._items.get(id(key))
        if hit is not None and hit[0] is key:
            return hit[1]
        value = compute(key)
        if len(self._items) >= self._size:
            self._items = {}
        self._items[id(key)] = (key, value)
        return value


_MEMBER_KEYS: Final = _ByIdentity(512)
_COHORT_PLANS: Final = _ByIdentity(512)


def _member_keys(members: frozenset[str]) -> frozenset[object]:
    return _MEMBER_KEYS.get(members, _lookup_keys)  # type: ignore[return-value,arg-type]


def _compile_cohort(cohort: CohortSnap) -> _CohortPlan:
    return _COHORT_PLANS.get(cohort, _compile_cohort_uncached)  # type: ignore[return-value,arg-type]


def _compile_cohort_uncached(cohort: CohortSnap) -> _CohortPlan:
    # Opt-in members match exactly like members, so one lookup covers both.
    members, opt_ins = _member_keys(cohort.members), _member_keys(cohort.opt_in_members)
    keys = members | opt_ins if members and opt_ins else members or opt_ins
    conditions = tuple(map(_compile_condition, cohort.conditions))
    return (cohort.match_attribute, keys, conditions)


def _is_member(members: frozenset[object], value: object) -> bool:
    kind = type(value)
    if kind is not str and kind is not int and value is not None:
        value = _as_string(value)
    return value in members  # None, and whatever _as_string rejects, is never a member


def _in_cohort(plan: _CohortPlan, context: Context) -> bool:
    attribute, members, conditions = plan
    if members and _is_member(members, context.get(attribute)):
        return True
    return bool(conditions) and _conditions_hold(conditions, context)


def cohort_matches(cohort: CohortSnap, context: Context) -> bool:
    """Member/opt-in member by ``match_attribute``, else all conditions (if it has any) hold."""
    return _in_cohort(_compile_cohort(cohort), context)


# --------------------------------------------------------------------------------------------
# Prebuilt outcomes
# --------------------------------------------------------------------------------------------


def _metadata(
    flag: FlagSnap, basis_points: int, extra: Mapping[str, object] | None = None
) -> FrozenDict[str, object]:
    # Computed entries win over same-named flag metadata: clients rely on their meaning.
    percentage = to_percentage(min(max(basis_points, 0), MAX_BASIS_POINTS))
    merged = {**flag.metadata, "percentage": percentage, "flagVersion": flag.version}
    return FrozenDict({**merged, **extra} if extra else merged)


def _outcome(
    flag: FlagSnap,
    value: bool,
    reason: str,
    basis_points: int,
    extra: Mapping[str, object] | None = None,
) -> Evaluation:
    variant = "on" if value else "off"
    metadata = _metadata(flag, basis_points, extra)
    return Evaluation(flag.key, value, variant, reason, None, None, metadata)


def _error(
    key: str, code: str, details: str, metadata: FrozenDict[str, object] | None = None
) -> Evaluation:
    return Evaluation(key, False, "off", Reason.ERROR, code, details, metadata or FrozenDict())


def _not_found(key: str) -> Evaluation:
    return _error(key, ErrorCode.FLAG_NOT_FOUND, f"flag {key!r} not found")


def _missing_unit(
    flag: FlagSnap, basis_points: int, extra: Mapping[str, object] | None = None
) -> Evaluation:
    details = (
        f"flag {flag.key!r} rolls out to {to_percentage(basis_points)}% by context attribute "
        f"{flag.stickiness!r}, which is missing"
    )
    metadata = _metadata(flag, basis_points, extra)
    return _error(flag.key, ErrorCode.TARGETING_KEY_MISSING, details, metadata)


def _invalid_unit(flag: FlagSnap, raw: object) -> Evaluation:
    details = str(InvalidContextError(flag.stickiness, raw))
    metadata = _metadata(flag, flag.basis_points)
    return _error(flag.key, ErrorCode.INVALID_CONTEXT, details, metadata)


def _invalid_context(snapshot: Snapshot, key: str, context: object) -> Evaluation:
    details = f"evaluation context must be a mapping, got {type(context).__name__}"
    flag = snapshot.flags.get(key)
    if flag is None or flag.archived:
        return _error(key, ErrorCode.INVALID_CONTEXT, details)
    return _error(key, ErrorCode.INVALID_CONTEXT, details, _metadata(flag, flag.basis_points))


# --------------------------------------------------------------------------------------------
# Compiled flags
# --------------------------------------------------------------------------------------------


# (cohort match attribute, cohort member keys, cohort conditions, basis points, on, off,
# missing), "missing" being the outcome when a partial percentage needs the unit and the context
# has none. The cohort plan is spread into the rule, not nested: one flat unpack per rule.
_RulePlan = tuple[
    str, frozenset[object], tuple[_Condition, ...], int, Evaluation, Evaluation, Evaluation
]
# (constant, stickiness attribute, excluded units, excluded outcome, rules, default basis points,
#  hash prefix, on, off, missing). "constant" is set for archived (not found) and killed flags,
# where nothing else matters; the prefix is f"{salt}:" so the hot path builds the hash key with
# a single concatenation.
_Plan = tuple[
    Evaluation | None,
    str,
    frozenset[str],
    Evaluation,
    tuple[_RulePlan, ...],
    int,
    str,
    Evaluation,
    Evaluation,
    Evaluation,
]


# bucket() without the arithmetic: bucket only depends on h % 10000 (its two 2-digit halves
# swapped), and one tuple index is measurably cheaper than two mods, a division and a multiply.
_BUCKET_OF_MOD: Final[tuple[int, ...]] = tuple((m % 100) * 100 + m // 100 for m in range(10_000))


def _constant_plan(evaluation: Evaluation) -> _Plan:
    return (evaluation, "", frozenset(), evaluation, (), 0, "", *(evaluation,) * 3)


def _outcomes(
    flag: FlagSnap,
    bp: int,
    reasons: tuple[str, str, str],
    extra: Mapping[str, object] | None = None,
) -> tuple[Evaluation, Evaluation, Evaluation]:
    """(on, off, missing) for a percentage; reasons are for (all on, all off, split).

    At 0% and 100% all three are the same object: the hot path tests ``on is off`` to skip
    hashing, and no unit is needed, so TARGETING_KEY_MISSING only arises strictly in between.
    """
    if bp >= MAX_BASIS_POINTS:
        return (_outcome(flag, True, reasons[0], bp, extra),) * 3
    if bp <= 0:
        return (_outcome(flag, False, reasons[1], bp, extra),) * 3
    on = _outcome(flag, True, reasons[2], bp, extra)
    off = _outcome(flag, False, reasons[2], bp, extra)
    return on, off, _missing_unit(flag, bp, extra)


_RULE_REASONS: Final = (Reason.TARGETING_MATCH,) * 3
_DEFAULT_REASONS: Final = (Reason.STATIC, Reason.DEFAULT, Reason.SPLIT)


def _rule_plan(flag: FlagSnap, rule: FlagRuleSnap, cohort: _CohortPlan) -> _RulePlan:
    bp = rule.basis_points
    return (*cohort, bp, *_outcomes(flag, bp, _RULE_REASONS, {"cohort": rule.cohort_key}))


def _cohort_plan(snapshot: Snapshot, cohort_key: str) -> _CohortPlan | None:
    plans: dict[str, _CohortPlan | None] = snapshot._cohort_plans  # type: ignore[attr-defined]
    if cohort_key not in plans:
        cohort = snapshot.cohorts.get(cohort_key)
        plans[cohort_key] = None if cohort is None else _compile_cohort(cohort)
    return plans[cohort_key]


def _rule_plans(snapshot: Snapshot, flag: FlagSnap) -> tuple[_RulePlan, ...]:
    plans: list[_RulePlan] = []
    for rule in flag.rules:
        cohort = _cohort_plan(snapshot, rule.cohort_key)
        if cohort is not None:  # rules naming an unknown cohort are skipped
            plans.append(_rule_plan(flag, rule, cohort))
    return tuple(plans)


def _compile_flag(snapshot: Snapshot, flag: FlagSnap) -> _Plan:
    if flag.archived:
        return _constant_plan(_not_found(flag.key))
    if flag.everyone is False:
        return _constant_plan(_outcome(flag, False, Reason.DISABLED, 0))
    excluded = _outcome(flag, False, Reason.TARGETING_MATCH, 0, {"exclusion": True})
    if flag.everyone:
        # Forced on still validates the unit and honours exclusions (steps 4-5), but rules and
        # percentages no longer matter: no rules, and a 100% default that reads STATIC.
        forced = _outcome(flag, True, Reason.STATIC, MAX_BASIS_POINTS)
        rules: tuple[_RulePlan, ...] = ()
        bp, on, off, missing = MAX_BASIS_POINTS, forced, forced, forced
    else:
        rules = _rule_plans(snapshot, flag)
        bp = flag.basis_points
        on, off, missing = _outcomes(flag, bp, _DEFAULT_REASONS)
    prefix = f"{flag.salt}:"
    return (
        None,
        flag.stickiness,
        flag.excluded_units,
        excluded,
        rules,
        bp,
        prefix,
        on,
        off,
        missing,
    )


def _plan(snapshot: Snapshot, key: str) -> _Plan | None:
    plans: dict[str, _Plan] = snapshot._plans  # type: ignore[attr-defined]
    plan = plans.get(key)
    if plan is None:
        flag = snapshot.flags.get(key)
        if flag is None:
            return None  # not cached: unknown keys come from clients and are unbounded
        # Racing threads may both compile; the plans are equivalent and the last one wins.
        plan = plans[key] = _compile_flag(snapshot, flag)
    return plan


# --------------------------------------------------------------------------------------------
# Evaluation
# --------------------------------------------------------------------------------------------


def evaluate(snapshot: Snapshot, key: str, context: Context | None = None) -> Evaluation:
    """Evaluate one flag; never raises for bad input, reporting it as an ERROR evaluation."""
    # Deliberately one long function with the common path inlined: each Python call costs a
    # visible share of the per-evaluation budget (see the module docstring).
    try:
        plan = snapshot._plans[key]  # type: ignore[attr-defined]
    except KeyError:  # first use of the flag, or an unknown key
        plan = _plan(snapshot, key)
    if type(context) is not dict:
        if context is None:
            context = _EMPTY_CONTEXT
        elif not isinstance(context, Mapping):
            return _invalid_context(snapshot, key, context)
    if plan is None:
        return _not_found(key)
    constant, attribute, excluded, excluded_outcome, rules, bp, prefix, on, off, missing = plan
    if constant is not None:
        return constant
    unit = context.get(attribute)
    if type(unit) is not str and unit is not None:
        unit = _INT_TEXT[unit] if type(unit) is int else _as_string(unit)
        if unit is None:
            return _invalid_unit(snapshot.flags[key], context.get(attribute))
    if not unit:
        unit = None  # "" is absent: hashing it would put every anonymous caller in one bucket
    elif excluded and unit in excluded:
        return excluded_outcome
    # First matching rule wins: _in_cohort() and _conditions_hold(), inlined (equivalence
    # tested), since a call per rule and per condition would cost more than the tests themselves.
    if rules:
        for members_attribute, members, conditions, rbp, ron, roff, rmissing in rules:
            if members:
                member = context.get(members_attribute)
                kind = type(member)
                if kind is not str and kind is not int and member is not None:
                    member = _as_string(member)
                if member in members:
                    bp, on, off, missing = rbp, ron, roff, rmissing
                    break
            if conditions:
                for attribute, outcomes, test in conditions:
                    value = context.get(attribute)
                    kind = type(value)
                    if kind is str or kind is int:
                        if not outcomes[value]:
                            break
                    elif not test(value):
                        break
                else:
                    bp, on, off, missing = rbp, ron, roff, rmissing
                    break
    if on is off:
        return on
    if unit is None:
        return missing
    return on if _BUCKET_OF_MOD[_hash(prefix + unit, 0, False) % 10_000] < bp else off


def _live_keys(snapshot: Snapshot) -> tuple[str, ...]:
    keys: tuple[str, ...] | None = snapshot._live_keys  # type: ignore[attr-defined]
    if keys is None:
        keys = tuple(sorted(key for key, flag in snapshot.flags.items() if not flag.archived))
        object.__setattr__(snapshot, "_live_keys", keys)
    return keys


def evaluate_all(snapshot: Snapshot, context: Context | None = None) -> list[Evaluation]:
    """Every non-archived flag, sorted by key."""
    return [evaluate(snapshot, key, context) for key in _live_keys(snapshot)]
