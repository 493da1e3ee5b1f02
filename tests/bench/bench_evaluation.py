"""Micro-benchmark for flags.evaluation; not collected by pytest (the name is not test_*.py).

Run from the repository root:  python tests/bench/bench_evaluation.py

Compares ``evaluate`` with the floor of any murmur3-based percentage rollout: a plain Python
function that only formats the bucketing key and hashes it. Target: evaluate reaches at least a
third of that rate. Both loops are timed alternately, best of a few repeats, so a noisy machine
penalises them alike.

Measures what flags.evaluation serves (the Cython build of flags/_evaluation.py after
`pip install -e .`), then the source itself for comparison.
"""

from __future__ import annotations

import importlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import ModuleType

import mmh3

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import flags.evaluation

# The types of the implementation being measured; set by measure().
CohortSnap = FlagRuleSnap = FlagSnap = RuleCondition = Snapshot = None
evaluate = evaluate_all = None

CALLS = 200_000
REPEATS = 7
CONTEXTS = 1_000
TARGET_RATIO = 1 / 3

Context = dict[str, object]
Pairs = Sequence[tuple[str, Context]]


def build_cohorts() -> list[CohortSnap]:
    """Two member-list cohorts, three condition cohorts (one also with opt-in members)."""
    staff = frozenset(f"user-{i}" for i in range(0, 5_000, 7))
    beta_orgs = frozenset(str(i) for i in range(0, 97, 5))
    mobile = (
        RuleCondition("platform", "equals", ("ios",)),
        RuleCondition("appVersion", "semver_gt", ("2.3.0",)),
    )
    return [
        CohortSnap("staff", "targetingKey", staff, frozenset({"user-3"}), ()),
        CohortSnap("beta-orgs", "orgId", beta_orgs, frozenset(), ()),
        CohortSnap(
            "enterprise",
            "orgId",
            frozenset(),
            frozenset(),
            (RuleCondition("plan", "in", ("enterprise", "business")),),
        ),
        CohortSnap("new-mobile", "targetingKey", frozenset(), frozenset({"user-11"}), mobile),
        CohortSnap(
            "eu",
            "targetingKey",
            frozenset(),
            frozenset(),
            (RuleCondition("country", "in", ("DE", "FR", "NL", "IE", "ES")),),
        ),
    ]


def shape_of(index: int) -> str:
    """30 percentage-only flags, 12 with cohort rules, 8 static (forced on/off, 0%, 100%)."""
    if index < 30:
        return "percentage"
    if index < 42:
        return "cohort rules"
    return "static"


def rules_for(index: int) -> tuple[FlagRuleSnap, ...]:
    if index < 30 or index >= 42:
        return ()
    if index < 38:  # one member-list rule in front of the default percentage
        return (FlagRuleSnap("staff" if index % 2 else "beta-orgs", 10_000),)
    return (  # a chain mixing member lists and conditions
        FlagRuleSnap("new-mobile", 2_500),
        FlagRuleSnap("eu", 0),
        FlagRuleSnap("enterprise", 5_000),
        FlagRuleSnap("staff", 10_000),
    )


def build_flag(index: int) -> FlagSnap:
    static = {42: (True, 0), 43: (True, 0), 44: (True, 0), 45: (False, 5_000)}
    everyone, basis_points = static.get(index, (None, 1 + (index * 733) % 9_998))
    if index in (46, 47):
        basis_points = 10_000
    if index in (48, 49):
        basis_points = 0
    return FlagSnap(
        key=f"flag-{index:02d}",
        everyone=everyone,
        basis_points=basis_points,
        stickiness="orgId" if index % 5 == 0 else "targetingKey",
        salt=f"flag-{index:02d}",
        excluded_units=frozenset({"user-1", "user-2"}) if index % 10 == 3 else frozenset(),
        archived=False,
        rules=rules_for(index),
        version=index,
        metadata={"plan": f"plan-{index % 4}", "phase": "canary"},
    )


def build_snapshot() -> Snapshot:
    flags = {flag.key: flag for flag in map(build_flag, range(50))}
    cohorts = {cohort.key: cohort for cohort in build_cohorts()}
    return Snapshot(flags=flags, cohorts=cohorts, version=1, built_at=time.time())


def build_contexts() -> list[Context]:
    plans = ("free", "pro", "business", "enterprise")
    countries = ("US", "DE", "FR", "BR", "IN", "NL")
    return [
        {
            "targetingKey": f"user-{i}",
            "orgId": i % 97,
            "plan": plans[i % 4],
            "country": countries[i % 6],
            "platform": "ios" if i % 3 else "android",
            "appVersion": f"2.{i % 6}.{i % 3}",
        }
        for i in range(CONTEXTS)
    ]


def plain_hash(salt: str, unit: str) -> int:
    return mmh3.hash(f"{salt}:{unit}", 0, signed=False)


def rotate(keys: Sequence[str], contexts: Sequence[Context]) -> list[tuple[str, Context]]:
    # A stride co-prime with the context count so each key meets many different contexts.
    return [(keys[i % len(keys)], contexts[(i * 7) % len(contexts)]) for i in range(CALLS)]


def evaluate_loop(snapshot: Snapshot, pairs: Pairs) -> Callable[[], None]:
    def run() -> None:
        for key, context in pairs:
            evaluate(snapshot, key, context)

    return run


def plain_loop(inputs: Sequence[tuple[str, str]]) -> Callable[[], None]:
    def run() -> None:
        for salt, unit in inputs:
            plain_hash(salt, unit)

    return run


def best_times(runs: Sequence[Callable[[], None]]) -> list[float]:
    """Best wall time of each run, timed round-robin."""
    best = [float("inf")] * len(runs)
    for _ in range(REPEATS):
        for index, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[index] = min(best[index], time.perf_counter() - start)
    return best


def report(label: str, calls: int, seconds: float, baseline: float | None = None) -> float:
    rate = calls / seconds
    ratio = f"  ratio {rate / baseline:.2f}" if baseline else ""
    print(f"  {label:<36}{rate:>12,.0f} /s {1e9 / rate:6.0f} ns{ratio}")
    return rate


def measure(module: ModuleType, label: str) -> None:
    global CohortSnap, FlagRuleSnap, FlagSnap, RuleCondition, Snapshot, evaluate, evaluate_all
    CohortSnap, FlagRuleSnap, FlagSnap = module.CohortSnap, module.FlagRuleSnap, module.FlagSnap
    RuleCondition, Snapshot = module.RuleCondition, module.Snapshot
    evaluate, evaluate_all = module.evaluate, module.evaluate_all

    snapshot = build_snapshot()
    contexts = build_contexts()
    keys = sorted(snapshot.flags)
    shapes = sorted({shape_of(i) for i in range(50)})
    shape_keys = {s: [k for i, k in enumerate(keys) if shape_of(i) == s] for s in shapes}
    hash_inputs = [(key, str(context["targetingKey"])) for key, context in rotate(keys, contexts)]

    runs = [evaluate_loop(snapshot, rotate(keys, contexts)), plain_loop(hash_inputs)]
    runs += [evaluate_loop(snapshot, rotate(shape_keys[s], contexts)) for s in shapes]
    runs[0]()  # warm-up: compiles every flag once, as a long-lived worker would
    seconds = best_times(runs)

    print(f"{label}: python {sys.version.split()[0]}, one core, {CALLS:,} calls, best of {REPEATS}")
    plain_rate = report("plain f-string + mmh3.hash", CALLS, seconds[1])
    eval_rate = report("evaluate, all 50 flags rotating", CALLS, seconds[0], plain_rate)
    ratio = eval_rate / plain_rate
    verdict = "OK" if ratio >= TARGET_RATIO else "MISSED"
    print(f"  target: evaluate >= {TARGET_RATIO:.2f} x plain -> {verdict} ({ratio:.2f})")
    print("  evaluate by flag shape (ratio to plain):")
    for shape, elapsed in zip(shapes, seconds[2:], strict=True):
        report(f"{shape} ({len(shape_keys[shape])} flags)", CALLS, elapsed, plain_rate)

    all_contexts = contexts[:500]
    (all_seconds,) = best_times([lambda: [evaluate_all(snapshot, c) for c in all_contexts]])
    print(f"  evaluate_all, 50 flags: {all_seconds / len(all_contexts) * 1e6:.1f} us per call")


def main() -> None:
    served = flags.evaluation.IMPLEMENTATION
    measure(flags.evaluation._module, f"flags.evaluation ({served})")
    if served == "compiled":
        print()
        measure(importlib.import_module("flags._evaluation"), "for comparison, the source")


if __name__ == "__main__":
    main()
