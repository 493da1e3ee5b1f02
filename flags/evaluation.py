"""Flag evaluation: ``flags._evaluation``, compiled when a current build of it exists.

``pip install`` compiles flags/_evaluation.py with Cython (setup.py) into
``flags._evaluation_compiled``, stamped with the SHA-256 of the source it was built from. This
module serves that build only while the stamp matches the source on disk, so an edited source
is never shadowed by an old build; otherwise, or without a C compiler, or with
``ROLLOUT_EVALUATION=source``, it serves the source itself. Both pass the same tests
(tests/flags/test_evaluation.py runs against each).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path
from types import ModuleType

__all__ = [
    "IMPLEMENTATION",
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

SOURCE = Path(__file__).with_name("_evaluation.py")


def source_digest() -> str:
    return hashlib.sha256(SOURCE.read_bytes()).hexdigest()


def compiled_build() -> ModuleType | None:
    """The compiled build if it exists and was built from the source as it is now."""
    try:
        compiled = importlib.import_module("flags._evaluation_compiled")
    except ImportError:
        return None
    return compiled if getattr(compiled, "SOURCE_SHA256", None) == source_digest() else None


def _implementation() -> tuple[ModuleType, str]:
    wanted = os.environ.get("ROLLOUT_EVALUATION", "auto")
    if wanted not in ("auto", "source"):
        raise ValueError(f"ROLLOUT_EVALUATION must be 'auto' or 'source', not {wanted!r}")
    compiled = compiled_build() if wanted == "auto" else None
    if compiled is not None:
        return compiled, "compiled"
    return importlib.import_module("flags._evaluation"), "source"


_module, IMPLEMENTATION = _implementation()

MAX_BASIS_POINTS = _module.MAX_BASIS_POINTS
OPERATORS = _module.OPERATORS
CohortSnap = _module.CohortSnap
ErrorCode = _module.ErrorCode
Evaluation = _module.Evaluation
FlagRuleSnap = _module.FlagRuleSnap
FlagSnap = _module.FlagSnap
FrozenDict = _module.FrozenDict
InvalidContextError = _module.InvalidContextError
Reason = _module.Reason
RuleCondition = _module.RuleCondition
Snapshot = _module.Snapshot
bucket = _module.bucket
cohort_matches = _module.cohort_matches
condition_matches = _module.condition_matches
evaluate = _module.evaluate
evaluate_all = _module.evaluate_all
in_rollout = _module.in_rollout
stickiness_value = _module.stickiness_value
to_percentage = _module.to_percentage
validate_condition = _module.validate_condition
