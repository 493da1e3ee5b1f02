"""The authorisation matrix: every URL and method, tried as six principals, answers as the table
below says. The table is written by hand; the URL resolver is walked so that a URL added without
a row fails, naming it.

Each request runs in a savepoint that is rolled back, so every principal meets the same data and
an allowed action succeeds instead of tripping over the previous principal's change.

Statuses: a number, or LOGIN (a redirect to a login page: dashboard, feedback pages and admin
send people there instead of answering 401), or NOTED (a redirect back carrying an error or
warning message: the page refused or could not do what was asked), or IGNORED (an HTML page
answered a POST with 200 and wrote nothing: the admin does not offer that action to the user)."""

import json
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.auth import get_user_model
from django.db import transaction
from django.http import HttpResponse
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.utils import timezone

from feedback import services as feedback_services
from flags import services as flag_services
from flags.models import Flag
from phases import services as phase_services
from phases.models import Phase, RolloutPlan
from rollout_control.core.models import ApiToken, AuditEntry
from rollout_control.core.snapshots import store
from tests.phases.conftest import SYSTEM, release_flags, two_flag_release

__all__ = ["release_flags"]  # the fixture, used by name

pytestmark = pytest.mark.django_db

LOGIN = "login"
NOTED = "noted"
IGNORED = "ignored"
# A refusal changes nothing: no audit row is written for any of these.
REFUSALS = {401, 403, LOGIN, NOTED, IGNORED}
Status = int | str

PRINCIPALS = (
    "anonymous",
    "client_token",
    "ingest_token",
    "admin_token",
    "support",
    "release_manager",
)
# Outside loopback and METRICS_ALLOWED_CIDRS, so /metrics judges the request, not the address.
REMOTE_ADDR = "203.0.113.9"


@dataclass(frozen=True)
class Row:
    name: str
    method: str
    expected: tuple[Status, Status, Status, Status, Status, Status]
    variant: str = ""  # tells apart rows that share URL and method (admin actions)
    at: dict[str, str] = field(default_factory=dict)  # path kwarg -> World key
    body: dict[str, Any] | None = None
    query: str = ""


def R(name: str, method: str, *expected: Status, **options: Any) -> Row:
    return Row(name, method, expected, **options)  # type: ignore[arg-type]


GO_LATER = {"starts_at": "2031-01-01T00:00:00Z", "ends_at": "2031-01-02T00:00:00Z"}
GUARDRAIL = {
    "name": "authz",
    "metric": "error_rate",
    "comparator": "gt",
    "threshold": 0.5,
    "action": "pause",
}
NEW_PLAN = {
    "template": "feature-release",
    "name": "Authz plan",
    "flags": {"basic": "scenes", "reporting": "reports", "drag_drop": "loose"},
    "cohorts": {c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]},
}
PLAN = {"pk": "plan"}
ITEM = {"pk": "item"}
FLAG = {"key": "flag"}


def _action(action: str, selected: str, **extra: str) -> dict[str, Any]:
    return {"action": action, ACTION_CHECKBOX_NAME: [selected], "index": "0", **extra}


# fmt: off
TABLE: list[Row] = [
    # name                          method    anon  client ingest admin supp  manager
    # Operations: public probes; /metrics only with its own token or from allowed networks.
    R("healthz",                    "GET",    200,  200,  200,  200,  200,  200),
    R("readyz",                     "GET",    200,  200,  200,  200,  200,  200),
    R("metrics",                    "GET",    403,  403,  403,  403,  403,  403),
    # Schema and docs are public: they describe, they do not expose data.
    R("api-schema",                 "GET",    200,  200,  200,  200,  200,  200),
    R("api-docs",                   "GET",    200,  200,  200,  200,  200,  200),
    # Login pages. Tokens do not log anyone in: token holders are anonymous here.
    R("login",                      "GET",    200,  200,  200,  200,  200,  200),
    R("login",                      "POST",   302,  302,  302,  302,  302,  302,
      body={"username": "sam", "password": "pw-sam"}),
    R("logout",                     "POST",   302,  302,  302,  302,  302,  302),

    # API: core
    R("whoami",                     "GET",    401,  200,  200,  200,  200,  200),
    R("token-list",                 "GET",    401,  403,  403,  200,  403,  200),
    R("token-list",                 "POST",   401,  403,  403,  201,  403,  201,
      body={"name": "made", "scope": "client"}),
    R("token-revoke",               "POST",   401,  403,  403,  200,  403,  200,
      at={"pk": "token"}),
    # API: flags and cohorts
    R("flag-list",                  "GET",    401,  403,  403,  200,  200,  200),
    R("flag-list",                  "POST",   401,  403,  403,  201,  403,  201,
      body={"key": "fresh"}),
    R("flag-detail",                "GET",    401,  403,  403,  200,  200,  200, at=FLAG),
    R("flag-detail",                "PATCH",  401,  403,  403,  200,  403,  200,
      at={"key": "loose"},
      body={"description": "changed"}),
    R("flag-detail",                "DELETE", 401,  403,  403,  200,  403,  200,
      at={"key": "loose"}),
    R("cohort-list",                "GET",    401,  403,  403,  200,  200,  200),
    R("cohort-list",                "POST",   401,  403,  403,  201,  403,  201,
      body={"key": "fresh", "name": "Fresh"}),
    R("cohort-detail",              "GET",    401,  403,  403,  200,  200,  200,
      at={"key": "spare"}),
    R("cohort-detail",              "PATCH",  401,  403,  403,  200,  403,  200,
      at={"key": "spare"},
      body={"name": "Renamed"}),
    R("cohort-detail",              "DELETE", 401,  403,  403,  204,  403,  204,
      at={"key": "spare"}),
    R("cohort-members",             "POST",   401,  403,  403,  200,  403,  200,
      at={"key": "spare"},
      body={"units": ["u-9"]}),
    R("cohort-members",             "DELETE", 401,  403,  403,  200,  403,  200,
      at={"key": "spare"},
      body={"units": ["u-9"]}),
    # Opting in is what client apps do for their users.
    R("cohort-opt-in",              "POST",   401,  200,  403,  200,  200,  200, at={"key": "open"},
      body={"unit": "u-7"}),
    R("cohort-opt-in",              "DELETE", 401,  200,  403,  200,  200,  200, at={"key": "open"},
      body={"unit": "u-7"}),
    R("evaluate",                   "POST",   401,  200,  403,  200,  200,  200,
      body={"context": {"targetingKey": "u-1"}}),
    # API: monitoring. Server-side reporters (ingest), automation and release managers push
    # samples (they drive rollbacks; client tokens are public); clients send usage events.
    R("metrics-ingest",             "GET",    401,  403,  403,  200,  200,  200),
    R("metrics-ingest",             "POST",   401,  403,  201,  201,  403,  201,
      body={"samples": [{"metric": "requests", "value": 1}]}),
    R("events-ingest",              "POST",   401,  201,  403,  201,  201,  201,
      body={"events": [{"unit": "u-1", "flag": "scenes", "action": "exposure"}]}),
    R("metric-definitions",         "GET",    401,  403,  403,  200,  200,  200),
    R("metric-definitions",         "POST",   401,  403,  403,  201,  403,  201,
      body={"name": "authz_total", "aggregation": "sum", "metric": "requests"}),
    R("metric-value",               "GET",    401,  403,  403,  200,  200,  200,
      at={"name": "metric"}),
    R("metric-series",              "GET",    401,  403,  403,  200,  200,  200,
      at={"name": "metric"}),
    # API: plans. Support staff read, run gates and sign off; release actions are managers'.
    R("plan-list",                  "GET",    401,  403,  403,  200,  200,  200),
    R("plan-list",                  "POST",   401,  403,  403,  201,  403,  201, body=NEW_PLAN),
    R("plan-detail",                "GET",    401,  403,  403,  200,  200,  200, at=PLAN),
    R("plan-detail",                "PATCH",  401,  403,  403,  200,  403,  200, at=PLAN,
      body={"name": "Renamed plan", "step_hour": 10}),
    R("plan-activate",              "POST",   401,  403,  403,  200,  403,  200,
      at={"pk": "draft"}),
    R("plan-pause",                 "POST",   401,  403,  403,  200,  403,  200, at=PLAN,
      body={"reason": "authz"}),
    R("plan-resume",                "POST",   401,  403,  403,  200,  403,  200,
      at={"pk": "paused"},
      body={"reason": "authz"}),
    R("plan-run-gate",              "POST",   401,  403,  403,  200,  200,  200, at=PLAN),
    R("plan-sign-off",              "POST",   401,  403,  403,  201,  201,  201, at=PLAN, body={}),
    R("plan-decide",                "POST",   401,  403,  403,  200,  403,  200, at=PLAN,
      body={"decision": "no_go", "comment": "not yet"}),
    R("plan-rollback",              "POST",   401,  403,  403,  200,  403,  200, at=PLAN,
      body={"reason": "authz"}),
    R("plan-restart-phase",         "POST",   401,  403,  403,  200,  403,  200,
      at={"pk": "rolled_back"}),
    R("plan-complete",              "POST",   401,  403,  403,  200,  403,  200, at=PLAN, body={}),
    R("plan-preview",               "GET",    401,  403,  403,  200,  200,  200, at=PLAN),
    R("plan-guardrails",            "GET",    401,  403,  403,  200,  200,  200, at=PLAN),
    R("plan-guardrails",            "POST",   401,  403,  403,  201,  403,  201, at=PLAN,
      body=GUARDRAIL),
    R("plan-freeze-windows",        "GET",    401,  403,  403,  200,  200,  200, at=PLAN),
    R("plan-freeze-windows",        "POST",   401,  403,  403,  201,  403,  201, at=PLAN,
      body=GO_LATER),
    R("plan-freeze-window-detail",  "DELETE", 401,  403,  403,  204,  403,  204,
      at={"pk": "plan", "window_id": "window"}),
    # API: feedback. Client apps send it; staff work the queue; managers exclude units.
    R("feedback-list",              "GET",    401,  403,  403,  200,  200,  200),
    R("feedback-list",              "POST",   401,  201,  403,  201,  201,  201,
      body={"type": "feature_request", "text": "More colours"}),
    R("feedback-bulk",              "POST",   401,  403,  403,  200,  200,  200,
      body={"ids": ["item"], "action": "status", "status": "triaged"}),
    R("feedback-detail",            "GET",    401,  403,  403,  200,  200,  200, at=ITEM),
    R("feedback-detail",            "PATCH",  401,  403,  403,  200,  200,  200, at=ITEM,
      body={"status": "triaged"}),
    R("feedback-comments",          "POST",   401,  403,  403,  201,  201,  201, at=ITEM,
      body={"text": "Looking"}),
    R("feedback-exclusion-request", "POST",   401,  403,  403,  200,  200,  200, at=ITEM, body={}),
    R("feedback-exclude-unit",      "POST",   401,  403,  403,  200,  403,  200, at=ITEM, body={}),
    # OFREP: client and admin tokens only (a dashboard session is not an OpenFeature client).
    R("ofrep-bulk",                 "POST",   401,  200,  403,  200,  401,  401,
      body={"context": {"targetingKey": "u-1"}}),
    R("ofrep-flag",                 "POST",   401,  200,  403,  200,  401,  401, at=FLAG,
      body={"context": {"targetingKey": "u-1"}}),

    # Dashboard: readers see; only release managers act (support: sign-off and checklist).
    R("dashboard:home",             "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("dashboard:home_live",        "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("dashboard:plans",            "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("dashboard:plan",             "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200,
      at={"plan_id": "plan"}),
    R("dashboard:plan_pause",       "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"plan_id": "plan"}, body={"reason": "authz"}),
    R("dashboard:plan_resume",      "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"plan_id": "paused"}, body={"reason": "authz"}),
    R("dashboard:plan_rollback",    "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"plan_id": "plan"}, body={"reason": "authz"}),
    R("dashboard:plan_restart",     "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"plan_id": "rolled_back"}),
    R("dashboard:gate_run",         "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"phase_id": "phase"}),
    R("dashboard:gate_sign_off",    "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302,
      at={"phase_id": "phase"}, body={"comment": "fine"}),
    R("dashboard:gate_checklist",   "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302,
      at={"phase_id": "phase"}, body={"item": "checklist_item", "ticked": "on"}),
    R("dashboard:gate_decide",      "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"phase_id": "phase"}, body={"kind": "no_go", "comment": "not yet"}),
    R("dashboard:flags",            "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("dashboard:flag",             "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200, at=FLAG),
    R("dashboard:flag_evaluate",    "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200, at=FLAG,
      query='context={"targetingKey":"u-1"}'),
    R("dashboard:flag_percentage",  "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"key": "loose"},
      body={"rule": "default", "percentage": "5", "reason": "authz", "version": "1"}),
    R("dashboard:flag_kill_switch", "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at={"key": "loose"},
      body={"killed": "on", "reason": "authz", "version": "1"}),
    R("dashboard:why",              "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200,
      query="unit=u-1&kind=user"),

    # Feedback pages: support staff and release managers; excluding a unit is managers' only.
    R("feedback:queue",             "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("feedback:export",            "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("feedback:bulk",              "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302,
      body={"ids": ["item"], "action": "status", "status": "triaged"}),
    R("feedback:create",            "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("feedback:create",            "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302,
      body={"type": "feature_request", "text": "More colours"}),
    R("feedback:detail",            "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200, at=ITEM),
    R("feedback:status",            "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302, at=ITEM,
      body={"status": "triaged"}),
    R("feedback:priority",          "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302, at=ITEM,
      body={"priority": "high", "reason": "authz"}),
    R("feedback:assign",            "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302, at=ITEM,
      body={"assignee": "sam"}),
    R("feedback:comment",           "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302, at=ITEM,
      body={"text": "Looking"}),
    R("feedback:request-exclusion", "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 302,  302,
      at=ITEM, body={}),
    R("feedback:exclude-unit",      "POST",   LOGIN, LOGIN, LOGIN, LOGIN, 403,  302,
      at=ITEM, body={}),

    # Admin: staff only. Roles are groups without model permissions, so a release manager who
    # is not a superuser sees only what phases' admin opens to the roles.
    R("admin:index",                "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("admin:app_list",             "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200,
      at={"app_label": "phases_app"}),
    R("admin:login",                "GET",    200,  200,  200,  200,  302,  302),
    R("admin:logout",               "POST",   302,  302,  302,  302,  302,  302),
    R("admin:password_change",      "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("admin:password_change_done", "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("admin:jsi18n",               "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200),
    R("admin:autocomplete",         "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 200,  200,
      query="app_label=phases&model_name=phase&field_name=plan"),
    R("admin:view_on_site",         "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 404,  404,
      at={"content_type_id": "phase_type", "object_id": "phase"}),
    R("admin:<catch-all>",          "GET",    LOGIN, LOGIN, LOGIN, LOGIN, 404,  404),
    R("admin:auth_user_password_change", "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403,  403,
      at={"id": "sam_id"}),
    # Changelists of our models.
    R("admin:core_apitoken_changelist",           "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 200),
    R("admin:core_auditentry_changelist",         "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:core_webhookendpoint_changelist",    "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 200),
    R("admin:flags_flag_changelist",              "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:flags_cohort_changelist",            "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:monitoring_metricdefinition_changelist", "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 200),
    R("admin:monitoring_heartbeat_changelist",    "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 200),
    R("admin:monitoring_metricrollup_changelist", "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 200),
    R("admin:feedback_feedbackitem_changelist",   "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_rolloutplan_changelist",      "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_plantemplate_changelist",     "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_phase_changelist",            "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_rampstep_changelist",         "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_rampskip_changelist",         "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_admissionbatch_changelist",   "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_gatereview_changelist",       "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_decision_changelist",         "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_incident_changelist",         "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_checkpoint_changelist",       "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_guardrail_changelist",        "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_guardrailcheck_changelist",   "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_degradationstate_changelist", "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200),
    R("admin:phases_rolloutplan_change",          "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200,
      at={"object_id": "plan"}),
    # Our admin views and actions.
    R("admin:phases_rolloutplan_add",             "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 200),
    R("admin:phases_rolloutplan_add",             "POST", LOGIN, LOGIN, LOGIN, LOGIN, 403, 302,
      body={"name": "Admin plan", "template": "feature-release",
            "flags": "basic: scenes\nreporting: reports\ndrag_drop: loose",
            "cohorts": "\n".join(f"{c}: {c}" for c in NEW_PLAN["cohorts"])}),
    R("admin:phases_rolloutplan_changelist",      "POST", LOGIN, LOGIN, LOGIN, LOGIN, IGNORED, 302,
      variant="activate", body=_action("activate", "draft")),
    R("admin:phases_rolloutplan_changelist",      "POST", LOGIN, LOGIN, LOGIN, LOGIN, IGNORED, 302,
      variant="pause", body=_action("pause", "plan", apply="1", reason="authz")),
    R("admin:phases_rolloutplan_changelist",      "POST", LOGIN, LOGIN, LOGIN, LOGIN, IGNORED, 302,
      variant="resume", body=_action("resume", "paused")),
    R("admin:flags_flag_changelist",              "POST", LOGIN, LOGIN, LOGIN, LOGIN, IGNORED, 302,
      variant="kill_switch", body=_action("kill_switch", "flag_pk", apply="1", reason="x")),
    R("admin:flags_flag_changelist",              "POST", LOGIN, LOGIN, LOGIN, LOGIN, IGNORED, 302,
      variant="release_kill_switch", body=_action("release_kill_switch", "flag_pk")),
    R("admin:flags_flag_changelist",              "POST", LOGIN, LOGIN, LOGIN, LOGIN, IGNORED, 302,
      variant="archive", body=_action("archive", "flag_pk")),
    R("admin:core_apitoken_changelist",           "POST", LOGIN, LOGIN, LOGIN, LOGIN, 403, 302,
      variant="revoke", body=_action("revoke", "token")),
    R("admin:phases_phase_gate",                  "GET", LOGIN, LOGIN, LOGIN, LOGIN, 200, 200,
      at={"object_id": "phase"}),
    R("admin:phases_phase_gate",                  "POST", LOGIN, LOGIN, LOGIN, LOGIN, 302, 302,
      variant="sign", at={"object_id": "phase"}, body={"op": "sign", "comment": "fine"}),
    R("admin:phases_phase_gate",                  "POST", LOGIN, LOGIN, LOGIN, LOGIN, 302, 302,
      variant="run", at={"object_id": "phase"}, body={"op": "run"}),
    R("admin:phases_phase_gate",                  "POST", LOGIN, LOGIN, LOGIN, LOGIN, 302, 302,
      variant="tick", at={"object_id": "phase"}, body={"op": "tick", "item": "checklist_item"}),
    # A GET only sends the manager back to the gate page: the confirm page needs the POST.
    R("admin:phases_phase_decide",                "GET", LOGIN, LOGIN, LOGIN, LOGIN, 403, 302,
      at={"object_id": "phase"}),
    R("admin:phases_phase_decide",                "POST", LOGIN, LOGIN, LOGIN, LOGIN, 403, 302,
      at={"object_id": "phase"}, body={"kind": "no_go", "comment": "not yet", "confirm": "1"}),
]
# fmt: on

# Every model admin's generated pages (changelist, add, change, history, delete, and the
# unnamed object redirect) are Django's, gated by the model admin's permissions; they are
# covered by this rule. Rows above pin the changelists of our apps and our own views.
MODEL_ADMIN_URL = re.compile(
    r"^admin:(?P<app>\w+?)_(?P<model>[a-z0-9]+)_(changelist|add|change|history|delete)$"
)
MODEL_ADMIN_REDIRECT = re.compile(r"^admin/(?P<app>\w+)/(?P<model>\w+)/<path:object_id>/$")
# Only routed when settings.BENCH_VIEWS is on (the OFREP benchmark's baseline).
OPTIONAL = {"bench-constant"}


def _walk(patterns: list[Any], namespace: str = "", prefix: str = "") -> Iterator[str]:
    """Every URL as `namespace:name`, or as its route when it has no name."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if isinstance(pattern, URLResolver):
            inner = f"{namespace}{pattern.namespace}:" if pattern.namespace else namespace
            yield from _walk(pattern.url_patterns, inner, route)
        elif isinstance(pattern, URLPattern):
            if pattern.name:
                yield namespace + pattern.name
            elif route == "admin/(?P<url>.*)$":
                yield "admin:<catch-all>"
            else:
                yield route


def _registered() -> set[tuple[str, str]]:
    return {(m._meta.app_label, m._meta.model_name) for m in admin.site._registry}


def _covered_by_rule(name: str) -> bool:
    registered = _registered()
    for rule in (MODEL_ADMIN_URL, MODEL_ADMIN_REDIRECT):
        match = rule.match(name)
        if match and (match["app"], match["model"]) in registered:
            return True
    return False


def test_matrix__every_url_has_a_row() -> None:
    rows = {row.name for row in TABLE}
    urls = set(_walk(get_resolver().url_patterns))
    missing = sorted(n for n in urls - rows - OPTIONAL if not _covered_by_rule(n))
    assert not missing, (
        "URLs without a row in tests/test_authz_matrix.py TABLE (add one per method, with the "
        f"status each of {', '.join(PRINCIPALS)} should get): {missing}"
    )
    stale = sorted(rows - urls)
    assert not stale, f"Rows for URLs that no longer exist: {stale}"


def test_matrix__rows_are_unique() -> None:
    keys = [(row.name, row.method, row.variant) for row in TABLE]
    assert len(keys) == len(set(keys))


# The world every request meets ---------------------------------------------------------------


def _plan(name: str, flag: str) -> RolloutPlan:
    """A one-phase plan on its own flag (a flag belongs to one live plan at most)."""
    flag_services.flag_create(key=flag, actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "cohorts": [],
        "phases": [{"name": "Only", "targets": [{"flag": "f", "start": 10, "step": 10,
                                                  "target": 100}]}],
    }  # fmt: skip
    return phase_services.plan_create(
        name=name, definition=definition, flags={"f": flag}, actor=SYSTEM
    )


@pytest.fixture
def world(
    release_flags: dict[str, str],
    release_manager: Any,
    support_user: Any,
    client_token: str,
    ingest_token: str,
    admin_token: str,
) -> dict[str, Any]:
    from django.contrib.contenttypes.models import ContentType

    get_user_model().objects.filter(pk__in=[release_manager.pk, support_user.pk]).update(
        is_staff=True
    )
    definition = two_flag_release()
    definition["phases"][0]["checklist"] = ["Security review cleared"]
    plan = phase_services.plan_create(
        name="Stripboard",
        definition=definition,
        flags=release_flags,
        cohorts={c: c for c in NEW_PLAN["cohorts"]},
        actor=SYSTEM,
    )
    plan = phase_services.plan_activate(plan=plan, actor=SYSTEM)
    phase = plan.phases.get(status=Phase.Status.ACTIVE)
    paused = phase_services.plan_activate(plan=_plan("Paused", "paused-flag"), actor=SYSTEM)
    phase_services.plan_pause(plan=paused, actor=SYSTEM, reason="setup")
    rolled_back = phase_services.plan_activate(plan=_plan("Rolled", "rolled-flag"), actor=SYSTEM)
    phase_services.plan_rollback(plan=rolled_back, trigger="manual", actor=SYSTEM, reason="x")
    now = timezone.now()
    window = phase_services.freeze_window_add(
        plan=plan,
        starts_at=now + timedelta(days=400),
        ends_at=now + timedelta(days=401),
        reason="setup",
        actor=SYSTEM,
    )
    flag_services.flag_create(key="loose", actor=SYSTEM)
    flag_services.cohort_create(key="spare", name="Spare", actor=SYSTEM)
    item = feedback_services.feedback_create(
        type="blocker", text="Crashes on save", actor=SYSTEM, flag_key="scenes", unit="u-1"
    )
    return {
        "plan": plan.pk,
        "phase": phase.pk,
        "checklist_item": phase.checklist.get().pk,
        "draft": _plan("Draft", "draft-flag").pk,
        "paused": paused.pk,
        "rolled_back": rolled_back.pk,
        "window": window.pk,
        "item": item.pk,
        "token": ApiToken.objects.get(scope="client").pk,
        "flag": "scenes",
        "flag_pk": Flag.objects.get(name="scenes").pk,
        "loose": "loose",
        "spare": "spare",
        "open": "open_beta",
        "metric": "error_rate",
        "phases_app": "phases",
        "phase_type": ContentType.objects.get_for_model(Phase).pk,
        "sam_id": support_user.pk,
        "tokens": {
            "client_token": client_token,
            "ingest_token": ingest_token,
            "admin_token": admin_token,
        },
        "users": {"support": support_user, "release_manager": release_manager},
    }


def _client(principal: str, world: dict[str, Any], sessions: dict[str, str]) -> Client:
    headers = {}
    if principal in world["tokens"]:
        headers["Authorization"] = f"Bearer {world['tokens'][principal]}"
    client = Client(headers=headers, REMOTE_ADDR=REMOTE_ADDR)
    if principal in sessions:
        client.cookies["sessionid"] = sessions[principal]
    return client


def _url(row: Row, world: dict[str, Any]) -> str:
    if row.name == "admin:<catch-all>":
        return "/admin/no-such-page/"
    kwargs = {name: world[key] for name, key in row.at.items()}
    url = reverse(row.name, kwargs=kwargs)
    return f"{url}?{row.query}" if row.query else url


def _resolve(value: Any, world: dict[str, Any]) -> Any:
    """Body values naming a world key (an id made by the fixture) become that id."""
    if isinstance(value, list):
        return [_resolve(v, world) for v in value]
    if isinstance(value, str) and value in world and value not in ("flag", "metric", "open"):
        return world[value]
    return value


def _observe(response: HttpResponse, *, row: Row, audited: int) -> Status:
    if response.status_code == 302:
        location = response["Location"]
        if location.startswith((reverse("login"), reverse("admin:login"))) and "next=" in location:
            return LOGIN
    if response.status_code in (200, 302) and hasattr(response.wsgi_request, "_messages"):
        levels = [m.level for m in messages.get_messages(response.wsgi_request)]
        if any(level >= messages.WARNING for level in levels):
            return NOTED
    if response.status_code == 200 and row.method == "POST" and row.name not in API_NAMES:
        return IGNORED if audited == 0 else 200
    return response.status_code


def _send(client: Client, row: Row, world: dict[str, Any]) -> HttpResponse:
    url = _url(row, world)
    body = {k: _resolve(v, world) for k, v in (row.body or {}).items()}
    is_api = row.name in API_NAMES
    if row.method == "GET":
        return client.get(url)
    if is_api:
        return client.generic(row.method, url, json.dumps(body), content_type="application/json")
    return client.post(url, body)


API_NAMES = {
    name
    for name in (row.name for row in TABLE)
    if ":" not in name and name not in {"login", "logout", "healthz", "readyz", "metrics"}
}


@pytest.mark.parametrize("principal", PRINCIPALS)
def test_matrix__each_url_and_method__answers_as_the_table_says(
    principal: str, world: dict[str, Any]
) -> None:
    column = PRINCIPALS.index(principal)
    sessions = {}
    for name, user in world["users"].items():
        client = Client()
        client.force_login(user)
        sessions[name] = client.cookies["sessionid"].value
    wrong = []
    for row in TABLE:
        client = _client(principal, world, sessions)
        with transaction.atomic():
            before = AuditEntry.objects.count()
            response = _send(client, row, world)
            audited = AuditEntry.objects.count() - before
            observed = _observe(response, row=row, audited=audited)
            if response.streaming:
                # Exhausting it closes it (the test client's wrapper keeps the connection open).
                b"".join(response.streaming_content)
            transaction.set_rollback(True)
        store.reset()
        if observed in REFUSALS and audited:
            wrong.append(
                f"{row.method} {row.name} {row.variant}: refused, yet wrote {audited} audit row(s)"
            )
        if observed != row.expected[column]:
            detail = response.content[:200] if not response.streaming else b""
            wrong.append(
                f"{row.method} {row.name} {row.variant}: expected {row.expected[column]!r}, "
                f"got {observed!r} {detail!r}"
            )
    assert not wrong, f"as {principal}:\n" + "\n".join(wrong)


# Denials are logged ---------------------------------------------------------------------------


def test_api__client_token_on_a_release_action__403_logged_by_permissions(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = _client("client_token", world, {})
    url = reverse("plan-pause", kwargs={"pk": world["plan"]})
    with caplog.at_level(logging.WARNING, logger="rollout_control.core.permissions"):
        response = client.post(url, {"reason": "x"}, content_type="application/json")
    assert response.status_code == 403
    records = [r for r in caplog.records if r.name == "rollout_control.core.permissions"]
    assert len(records) == 1
    assert url in records[0].getMessage()
    assert "POST" in records[0].getMessage()


def test_api__support_user_on_a_release_action__403_logged_by_permissions(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    client.force_login(world["users"]["support"])
    url = reverse("flag-detail", kwargs={"key": "loose"})
    with caplog.at_level(logging.WARNING, logger="rollout_control.core.permissions"):
        response = client.delete(url)
    assert response.status_code == 403
    messages_logged = [
        r.getMessage() for r in caplog.records if r.name == "rollout_control.core.permissions"
    ]
    assert messages_logged == [f"permission denied: DELETE {url} for sam"]


def test_api__revoked_token__401_logged_by_authentication(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    from rollout_control.core.services import api_token_revoke

    api_token_revoke(token=ApiToken.objects.get(pk=world["token"]), actor=SYSTEM)
    store.reset()
    client = _client("client_token", world, {})
    with caplog.at_level(logging.WARNING, logger="rollout_control.core.authentication"):
        response = client.get(reverse("whoami"))
    assert response.status_code == 401
    records = [r for r in caplog.records if r.name == "rollout_control.core.authentication"]
    assert len(records) == 1
    assert "/api/v1/whoami/" in records[0].getMessage()


def test_api__unknown_token__401_logged_by_authentication(
    db: None, caplog: pytest.LogCaptureFixture
) -> None:
    client = Client(headers={"Authorization": "Bearer not-a-token"})
    with caplog.at_level(logging.WARNING, logger="rollout_control.core.authentication"):
        response = client.post(
            reverse("evaluate"), {"context": {}}, content_type="application/json"
        )
    assert response.status_code == 401
    assert [r.name for r in caplog.records].count("rollout_control.core.authentication") == 1


def test_dashboard__support_on_a_release_action__403_logged(
    world: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = Client()
    client.force_login(world["users"]["support"])
    url = reverse("dashboard:flag_kill_switch", kwargs={"key": "scenes"})
    with caplog.at_level(logging.WARNING, logger="django.request"):
        response = client.post(url, {"killed": "on", "reason": "x"})
    assert response.status_code == 403
    assert any(url in r.getMessage() for r in caplog.records if r.name == "django.request")
