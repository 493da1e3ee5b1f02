"""The compiled evaluator: served only when current, and the same answers as the source.

`pip install -e .` compiles flags/_evaluation.py with Cython (setup.py); flags.evaluation serves
that build while its stamp matches the source. These tests show the source passes the very same
unit and property tests, that the two give equal answers on generated snapshots and contexts,
and that a build older than the source is never served.
"""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import flags.evaluation
from tests.processes import ROOT

SOURCE: ModuleType = importlib.import_module("flags._evaluation")
ATTRIBUTES = ("targetingKey", "orgId", "country", "plan", "appVersion", "signedUpAt")


def _compiled() -> ModuleType:
    compiled = flags.evaluation.compiled_build()
    assert compiled is not None, "no current compiled build: run `pip install -e .`"
    return compiled


def test_source__runs_the_evaluation_tests__all_pass() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--no-header",
            "tests/flags/test_evaluation.py",
        ],
        cwd=ROOT,
        env={**_environment(), "ROLLOUT_EVALUATION": "source"},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-5_000:] + result.stderr[-2_000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


def _environment() -> dict[str, str]:
    import os

    return {key: value for key, value in os.environ.items() if key != "ROLLOUT_EVALUATION"}


@pytest.mark.parametrize(("wanted", "served"), [("source", "source"), ("auto", "compiled")])
def test_rollout_evaluation__setting__picks_the_implementation(wanted: str, served: str) -> None:
    _compiled()
    code = "import flags.evaluation as e; print(e.IMPLEMENTATION, e.evaluate.__module__)"
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**_environment(), "ROLLOUT_EVALUATION": wanted},
        capture_output=True,
        text=True,
        check=True,
    )
    module = "flags._evaluation" if served == "source" else "flags._evaluation_compiled"
    assert result.stdout.split() == [served, module]


def test_rollout_evaluation__unknown_value__refuses_to_import() -> None:
    result = subprocess.run(
        [sys.executable, "-c", "import flags.evaluation"],
        cwd=ROOT,
        env={**_environment(), "ROLLOUT_EVALUATION": "fast"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode != 0
    assert "ROLLOUT_EVALUATION must be 'auto' or 'source', not 'fast'" in result.stderr


def test_compiled_build__source_edited_since__is_not_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _compiled()
    edited = tmp_path / "_evaluation.py"
    edited.write_text(flags.evaluation.SOURCE.read_text() + "\n# edited\n")
    monkeypatch.setattr(flags.evaluation, "SOURCE", edited)
    assert flags.evaluation.compiled_build() is None


# --------------------------------------------------------------------------------------------
# Same answers: snapshots and contexts generated as plain data, built with each module's types
# --------------------------------------------------------------------------------------------

values = st.one_of(
    st.sampled_from(["DE", "US", "pro", "free", "1", "01", "", "2.3.0", "2.10.1-beta.1"]),
    st.sampled_from(["2024-05-01T12:00:00Z", "2025-01-01", "v1.0.0", "acme-7"]),
    st.integers(min_value=-3, max_value=12),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=15),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=2),
)
thresholds = st.one_of(
    st.sampled_from(["DE", "pro", "1", "2.3.0", "2024-06-01T00:00:00Z", "acme", "-"]),
    st.integers(min_value=-3, max_value=12),
    st.floats(allow_nan=False, allow_infinity=False, min_value=-5, max_value=15),
)
conditions = st.tuples(
    st.sampled_from(ATTRIBUTES),
    st.sampled_from([*sorted(SOURCE.OPERATORS), "regex"]),
    st.lists(thresholds, max_size=3),
)
cohorts = st.tuples(
    st.sampled_from(["targetingKey", "orgId"]),
    st.frozensets(st.sampled_from(["u1", "u2", "3", "4", "acme"]), max_size=3),
    st.frozensets(st.sampled_from(["u2", "5"]), max_size=2),
    st.lists(conditions, max_size=3),
)
flag_data = st.tuples(
    st.sampled_from([None, None, None, True, False]),
    st.sampled_from([0, 1, 2_500, 5_000, 9_999, 10_000]),
    st.sampled_from(["targetingKey", "orgId"]),
    st.frozensets(st.sampled_from(["u1", "3"]), max_size=1),
    st.booleans(),
    st.lists(
        st.tuples(st.sampled_from(["c0", "c1", "c2", "missing"]), st.sampled_from([0, 5_000])),
        max_size=3,
    ),
)
contexts = st.one_of(
    st.dictionaries(st.sampled_from(ATTRIBUTES), values, max_size=len(ATTRIBUTES)),
    st.none(),
    st.just(["not", "a", "mapping"]),
)


def _build(module: ModuleType, flag: tuple, cohort_data: list[tuple]) -> object:
    everyone, bp, stickiness, excluded, archived, rules = flag
    flag_snap = module.FlagSnap(
        key="f",
        everyone=everyone,
        basis_points=bp,
        stickiness=stickiness,
        salt="f",
        excluded_units=excluded,
        archived=archived,
        rules=tuple(module.FlagRuleSnap(key, rule_bp) for key, rule_bp in rules),
        version=1,
        metadata={"plan": "p"},
    )
    cohort_snaps = {
        f"c{index}": module.CohortSnap(
            f"c{index}",
            attribute,
            members,
            opt_in,
            tuple(module.RuleCondition(a, op, tuple(v)) for a, op, v in condition_data),
        )
        for index, (attribute, members, opt_in, condition_data) in enumerate(cohort_data)
    }
    return module.Snapshot(flags={"f": flag_snap}, cohorts=cohort_snaps, version=1, built_at=0.0)


def _answer(module: ModuleType, snapshot: object, key: str, context: object) -> tuple:
    result = module.evaluate(snapshot, key, context)
    return (
        result.key,
        result.value,
        result.variant,
        result.reason,
        result.error_code,
        result.error_details,
        dict(result.metadata),
    )


@settings(deadline=None, max_examples=300)
@given(flag_data, st.lists(cohorts, min_size=3, max_size=3), st.lists(contexts, max_size=4))
def test_compiled_and_source__generated_snapshots_and_contexts__answer_alike(
    flag: tuple, cohort_data: list[tuple], context_list: list[object]
) -> None:
    compiled = _compiled()
    source_snapshot = _build(SOURCE, flag, cohort_data)
    compiled_snapshot = _build(compiled, flag, cohort_data)
    for context in context_list * 2:  # twice: the second answers come from remembered outcomes
        for key in ("f", "unknown"):
            expected = _answer(SOURCE, source_snapshot, key, context)
            assert _answer(compiled, compiled_snapshot, key, context) == expected
