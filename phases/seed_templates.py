"""The two plan templates our users wrote by hand before this product existed (shared/seeds/):
a feature release through five phases, and a tenant onboarding week by week. Installed by a
data migration; editable in the admin afterwards."""

from typing import Any

from phases.services.notify import DEFAULT_KICKOFF_BODY, DEFAULT_KICKOFF_SUBJECT

KICKOFF = {"subject": DEFAULT_KICKOFF_SUBJECT, "body": DEFAULT_KICKOFF_BODY}
WEEKDAYS = [0, 1, 2, 3, 4]


def _zero_critical(window: str) -> dict[str, Any]:
    return {
        "kind": "feedback",
        "description": "Zero open critical bugs",
        "metric": "feedback_open_critical",
        "comparator": "eq",
        "threshold": 0,
        "window": window,
    }


def _error_rate(below: float, window: str = "24h") -> dict[str, Any]:
    return {
        "description": f"Error rate under {below * 100:g} %",
        "metric": "error_rate",
        "comparator": "lt",
        "threshold": below,
        "window": window,
    }


def _satisfaction(comparator: str, threshold: float, window: str = "7d") -> dict[str, Any]:
    sign = {"gt": "above", "gte": "at least"}[comparator]
    return {
        "kind": "feedback",
        "description": f"Satisfaction {sign} {threshold:g} / 5",
        "metric": "feedback_satisfaction",
        "comparator": comparator,
        "threshold": threshold,
        "window": window,
    }


def _adoption(share: float, flag: str, window: str) -> dict[str, Any]:
    return {
        "description": f"Adoption over {share * 100:g} % of exposed users",
        "metric": "adoption",
        "comparator": "gt",
        "threshold": share,
        "window": window,
        "flag": flag,
    }


FEATURE_RELEASE: dict[str, Any] = {
    "description": "A feature through internal testing, closed beta, open beta, limited production "
    "and full launch, ramping 10 points a day (from the stripboard rollout strategy).",
    "timezone": "UTC",
    "step_hour": 9,
    "allowed_weekdays": WEEKDAYS,
    "flags": ["basic", "drag_drop", "reporting"],
    "cohorts": ["internal", "external_beta", "open_beta", "power_users", "paying"],
    "phases": [
        {
            "name": "Internal testing",
            "min_duration_days": 14,
            "targets": [
                {"flag": "basic", "cohort": "internal", "start": 100, "step": 0, "target": 100},
                {"flag": "drag_drop", "cohort": "internal", "start": 50, "step": 0, "target": 50},
            ],
            "criteria": [_zero_critical("14d"), _error_rate(0.005)],
            "checklist": [
                "Performance benchmarks met",
                "Security review cleared",
                "Support team trained on the new features",
                "Documentation complete",
            ],
            "required_signoffs": ["release_manager"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Closed beta",
            "min_duration_days": 28,
            "targets": [
                {"flag": "basic", "cohort": "internal", "start": 100, "step": 0, "target": 100},
                {
                    "flag": "basic",
                    "cohort": "external_beta",
                    "start": 100,
                    "step": 0,
                    "target": 100,
                },
                {"flag": "drag_drop", "cohort": "internal", "start": 50, "step": 0, "target": 50},
            ],
            "criteria": [
                _zero_critical("7d"),
                _error_rate(0.005),
                _satisfaction("gt", 4.0),
                _adoption(0.7, "basic", "28d"),
            ],
            "checklist": ["Actionable feedback collected for improvements"],
            "required_signoffs": ["release_manager", "support"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Open beta",
            "min_duration_days": 28,
            "targets": [
                {"flag": "basic", "cohort": "open_beta", "start": 10, "step": 10, "target": 100},
                {
                    "flag": "drag_drop",
                    "cohort": "open_beta",
                    "start": 10,
                    "step": 10,
                    "target": 100,
                },
                {
                    "flag": "reporting",
                    "cohort": "open_beta",
                    "start": 10,
                    "step": 10,
                    "target": 100,
                },
            ],
            "criteria": [
                _zero_critical("7d"),
                _error_rate(0.005),
                _satisfaction("gt", 4.0),
                _adoption(0.3, "basic", "28d"),
            ],
            "required_signoffs": ["support"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Limited production",
            "min_duration_days": 28,
            "targets": [
                {"flag": "basic", "cohort": "power_users", "start": 100, "step": 0, "target": 100},
                {"flag": "basic", "cohort": "paying", "start": 10, "step": 10, "target": 100},
                {"flag": "drag_drop", "cohort": "paying", "start": 10, "step": 10, "target": 100},
                {"flag": "reporting", "cohort": "paying", "start": 10, "step": 10, "target": 100},
            ],
            "criteria": [
                _error_rate(0.005),
                {
                    "description": "p95 response time under 2 s",
                    "metric": "latency_p95",
                    "comparator": "lt",
                    "threshold": 2000,
                    "window": "24h",
                },
                _adoption(0.4, "basic", "14d"),
            ],
            "required_signoffs": ["support"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Full launch",
            "min_duration_days": 14,
            "targets": [
                {"flag": "basic", "start": 10, "step": 10, "target": 100},
                {"flag": "drag_drop", "start": 10, "step": 10, "target": 100},
                {"flag": "reporting", "start": 10, "step": 10, "target": 100},
            ],
            "criteria": [_satisfaction("gt", 4.2, "30d"), _adoption(0.6, "basic", "30d")],
            "kickoff": KICKOFF,
        },
    ],
}

TENANT_ONBOARDING: dict[str, Any] = {
    "description": "A platform onboarding organisations week by week: internal testing, a pilot "
    "of 3, then 3, 3, 4 a week, then 6 a week until all are in (from the IFM rollout plan).",
    "timezone": "UTC",
    "step_hour": 9,
    "allowed_weekdays": WEEKDAYS,
    "flags": ["platform"],
    "cohorts": ["dev_team", "organisations"],
    "stickiness": {"platform": "orgId"},
    "phases": [
        {
            "name": "Internal testing",
            "min_duration_days": 14,
            "targets": [
                {"flag": "platform", "cohort": "dev_team", "start": 100, "step": 0, "target": 100}
            ],
            "criteria": [_zero_critical("14d"), _error_rate(0.01)],
            "checklist": [
                "All test scenarios pass",
                "Security audit passed",
                "Documentation complete",
                "Support processes ready",
            ],
            "required_signoffs": ["release_manager"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Pilot",
            "min_duration_days": 14,
            "targets": [
                {
                    "flag": "platform",
                    "cohort": "organisations",
                    "start": 100,
                    "step": 0,
                    "target": 100,
                }
            ],
            "admissions": [
                {"cohort": "organisations", "batch_sizes": [3], "period_days": 7, "cap": 3}
            ],
            "criteria": [
                _error_rate(0.01),
                _satisfaction("gte", 4.0),
                {
                    "kind": "feedback",
                    "description": "Fewer than 5 critical issues",
                    "metric": "feedback_open_critical",
                    "comparator": "lt",
                    "threshold": 5,
                    "window": "14d",
                },
            ],
            "checklist": ["Users complete core workflows independently", "No data loss incidents"],
            "required_signoffs": ["support"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Limited release",
            "min_duration_days": 28,
            "targets": [
                {
                    "flag": "platform",
                    "cohort": "organisations",
                    "start": 100,
                    "step": 0,
                    "target": 100,
                }
            ],
            "admissions": [
                {"cohort": "organisations", "batch_sizes": [3, 3, 4], "period_days": 7, "cap": 10}
            ],
            "criteria": [_error_rate(0.001), _satisfaction("gte", 4.0)],
            "checklist": ["System handles load without issues", "Support ticket volume manageable"],
            "required_signoffs": ["support"],
            "kickoff": KICKOFF,
        },
        {
            "name": "Full production",
            "min_duration_days": 28,
            "targets": [
                {
                    "flag": "platform",
                    "cohort": "organisations",
                    "start": 100,
                    "step": 0,
                    "target": 100,
                }
            ],
            "admissions": [{"cohort": "organisations", "batch_sizes": [6], "period_days": 7}],
            "criteria": [_satisfaction("gte", 4.5, "30d")],
            "kickoff": KICKOFF,
        },
    ],
}

TEMPLATES = {
    "feature-release": ("Feature release (five phases)", FEATURE_RELEASE),
    "tenant-onboarding": ("Tenant onboarding (week by week)", TENANT_ONBOARDING),
}


# From the seeds' "Monitoring & Alerts" and "Rollback Triggers": alert rules, and one rollback
# guardrail per trigger. Thresholds are the defaults; a plan may change them.
DEFAULT_GUARDRAILS: list[dict[str, Any]] = [
    {
        "name": "Error rate above 2 %",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "5m",
        "failures_to_act": 1,
        "action": "alert",
    },
    {
        "name": "Response time above 1 s",
        "metric": "latency_p95",
        "comparator": "gt",
        "threshold": 1000,
        "window": "5m",
        "failures_to_act": 1,
        "action": "alert",
    },
    {
        "name": "Failed logins above 10 a minute",
        "metric": "failed_logins_rate",
        "comparator": "gt",
        "threshold": 10,
        "window": "5m",
        "failures_to_act": 1,
        "action": "alert",
    },
    {
        "name": "Background job failures",
        "metric": "job_failures",
        "comparator": "gt",
        "threshold": 0,
        "window": "15m",
        "failures_to_act": 1,
        "action": "alert",
    },
    {
        "name": "Error rate spike",
        "metric": "error_rate",
        "comparator": "gt",
        "threshold": 0.02,
        "window": "5m",
        "failures_to_act": 3,
        "action": "rollback",
        "trigger": "error_rate_spike",
    },
    {
        "name": "Performance degradation",
        "metric": "latency_p95",
        "comparator": "gt",
        "threshold": 2000,
        "window": "5m",
        "failures_to_act": 3,
        "action": "rollback",
        "trigger": "performance_degradation",
    },
    {
        "name": "Data corruption detected",
        "metric": "data_corruption",
        "comparator": "gt",
        "threshold": 0,
        "window": "15m",
        "failures_to_act": 1,
        "action": "rollback",
        "trigger": "data_corruption_detected",
    },
    {
        "name": "User satisfaction drop",
        "metric": "feedback_satisfaction",
        "comparator": "lt",
        "threshold": 4.0,
        "window": "1d",
        "failures_to_act": 3,
        "action": "rollback",
        "trigger": "user_satisfaction_drop",
    },
]
FEATURE_RELEASE["guardrails"] = DEFAULT_GUARDRAILS
TENANT_ONBOARDING["guardrails"] = DEFAULT_GUARDRAILS
