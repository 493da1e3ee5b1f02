"""Audit completeness (issue 9, point 10): every way of changing data writes its audit row.

A database execute wrapper (`AuditWatch`) sees every statement on the test's connection. Each
service runs in `transaction.atomic()`, which inside the test's own transaction is a savepoint,
so the wrapper can tell transactions apart: when the outermost one it saw is released, any
INSERT, UPDATE or DELETE it made on an audited table must have come with an INSERT into
core_auditentry; a write outside any transaction never can. The operations below change data
the ways the product offers (API with an admin token, the Django admin, Celery task functions,
management commands) and check both that rule and the rows themselves: one per changed object,
with actor, before/after and a UTC time. The last test shows the wrapper catching a bare
`Flag.objects.update()`.
"""

import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.urls import reverse
from rest_framework.test import APIClient

from flags import services as flag_services
from flags.models import Flag
from phases import services as plan_services
from phases import tasks as phase_tasks
from phases.models import RolloutPlan
from rollout_control.core.models import ApiToken, AuditEntry
from tests.phases.conftest import SYSTEM, release_flags, two_flag_release  # noqa: F401

pytestmark = pytest.mark.django_db

# Configuration and decisions: a change to any of these is someone's act and must be audited.
# Not here: what the system records about itself (samples, events, heartbeats, checks, ramp-step
# and admission ledgers written in the same transaction as the audited change), and
# core_configversion, bumped by the services beside their audit row.
AUDITED = {
    "auth_user",
    "auth_user_groups",
    "auth_user_user_permissions",
    "auth_group",
    "auth_group_permissions",
    "core_apitoken",
    "core_webhookendpoint",
    "django_celery_beat_periodictask",
    "django_celery_beat_intervalschedule",
    "django_celery_beat_crontabschedule",
    "django_celery_beat_solarschedule",
    "django_celery_beat_clockedschedule",
    "flags_flag",
    "flags_cohort",
    "flags_cohortmember",
    "flags_flagcohortrule",
    "monitoring_metricdefinition",
    "phases_plantemplate",
    "phases_rolloutplan",
    "phases_freezewindow",
    "phases_phase",
    "phases_phasetarget",
    "phases_cohortadmission",
    "phases_gatecriterion",
    "phases_checklistitem",
    "phases_signoff",
    "phases_decision",
    "phases_guardrail",
    "phases_incident",
}
# Not changes anyone made: a login's time, token use, batched by the snapshot poller
# (core/tokens.py), and a webhook endpoint's delivery status (core/notifications.py). Beat's own
# bookkeeping on periodic tasks (last run, run count) is not exercised here.
EXEMPT = [
    re.compile(r'^UPDATE "auth_user" SET "last_login" = '),
    re.compile(r'^UPDATE "core_apitoken" SET "last_used_at" = '),
    re.compile(r'^UPDATE "core_webhookendpoint" SET "last_(?:success|failure)_at" = '),
]

_WRITE = re.compile(r'^\s*(?:INSERT\s+INTO|UPDATE|DELETE\s+FROM)\s+"(\w+)"', re.IGNORECASE)
_SAVEPOINT = re.compile(r'^\s*SAVEPOINT\s+"?(\w+)"?', re.IGNORECASE)
_RELEASE = re.compile(r'^\s*RELEASE\s+SAVEPOINT\s+"?(\w+)"?', re.IGNORECASE)
_ROLLBACK = re.compile(r'^\s*ROLLBACK\s+TO\s+SAVEPOINT\s+"?(\w+)"?', re.IGNORECASE)


@dataclass
class _Transaction:
    savepoint: str
    writes: list[str] = field(default_factory=list)
    audit_rows: int = 0


@dataclass
class AuditWatch:
    """`connection.execute_wrapper`: collects transactions that wrote audited tables unaudited."""

    open: list[_Transaction] = field(default_factory=list)
    violations: list[list[str]] = field(default_factory=list)
    audited_writes: int = 0
    transactions: int = 0

    def __call__(self, execute: Callable, sql: str, params: Any, many: bool, context: Any) -> Any:
        result = execute(sql, params, many, context)
        self._observe(sql)
        return result

    def _observe(self, sql: str) -> None:
        if match := _SAVEPOINT.match(sql):
            self.open.append(_Transaction(match[1]))
        elif match := _RELEASE.match(sql):
            done = self._close(match[1])
            if done is None:
                return
            if self.open:  # a nested atomic: part of the enclosing transaction
                self.open[-1].writes += done.writes
                self.open[-1].audit_rows += done.audit_rows
                return
            self.transactions += 1
            if done.writes and not done.audit_rows:
                self.violations.append(done.writes)
        elif match := _ROLLBACK.match(sql):
            self._close(match[1])  # rolled back: none of it happened
        elif (match := _WRITE.match(sql)) is not None:
            table = match[1]
            if table == "core_auditentry":
                if self.open:
                    self.open[-1].audit_rows += 1
            elif table in AUDITED and not any(p.match(sql) for p in EXEMPT):
                self.audited_writes += 1
                if self.open:
                    self.open[-1].writes.append(sql[:300])
                else:
                    self.violations.append([sql[:300]])  # its own transaction, alone

    def _close(self, savepoint: str) -> _Transaction | None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index].savepoint == savepoint:
                done = self.open[index]
                del self.open[index:]
                return done
        return None


@pytest.fixture
def watch() -> Iterator[AuditWatch]:
    watcher = AuditWatch()
    with connection.execute_wrapper(watcher):
        yield watcher
    assert not watcher.violations, "audited tables written without an audit row:\n" + "\n".join(
        " | ".join(writes) for writes in watcher.violations
    )


def _audited(watch: AuditWatch, change: Callable[[], Any]) -> list[AuditEntry]:
    """Runs `change`; checks it wrote audited rows, each transaction with its audit row; returns
    the audit rows it wrote, oldest first."""
    last = AuditEntry.objects.order_by("-id").values_list("id", flat=True).first() or 0
    writes = watch.audited_writes
    change()
    assert watch.audited_writes > writes, "the operation changed nothing audited"
    assert not watch.violations, watch.violations
    return list(AuditEntry.objects.filter(id__gt=last).order_by("id"))


def _one_row_per_object(
    entries: list[AuditEntry], *, action: str, object_type: str, actor_type: str
) -> AuditEntry:
    assert [(e.action, e.object_type) for e in entries] == [(action, object_type)]
    entry = entries[0]
    assert entry.actor_type == actor_type
    assert entry.actor_label
    assert entry.after is not None or action.endswith(("delete", "remove"))
    if not action.endswith("create"):
        assert entry.before is not None
    assert entry.created_at.utcoffset() == timedelta(0)
    assert abs(entry.created_at - datetime.now(UTC)) < timedelta(minutes=5)
    return entry


# The API, with an admin token -----------------------------------------------------------------


def test_api_flag_create_change_archive__one_row_each(
    admin_api: APIClient, watch: AuditWatch
) -> None:
    flag_services.cohort_create(key="beta", name="Beta", actor=SYSTEM)
    body = {"key": "checkout", "rollout_percentage": 10}
    entries = _audited(watch, lambda: admin_api.post("/api/v1/flags/", body, format="json"))
    _one_row_per_object(entries, action="flag.create", object_type="flags.flag", actor_type="token")
    change = {"rollout_percentage": 25, "cohort_rules": [{"cohort": "beta", "percentage": 100}]}
    entries = _audited(
        watch, lambda: admin_api.patch("/api/v1/flags/checkout/", change, format="json")
    )
    entry = _one_row_per_object(
        entries, action="flag.update", object_type="flags.flag", actor_type="token"
    )
    assert (entry.before["rollout_percentage"], entry.after["rollout_percentage"]) == (10, 25)
    entries = _audited(watch, lambda: admin_api.delete("/api/v1/flags/checkout/"))
    assert [e.object_type for e in entries] == ["flags.flag"]
    assert entries[0].actor_token_id is not None


def test_api_cohort_and_members__one_row_each(admin_api: APIClient, watch: AuditWatch) -> None:
    body = {"key": "beta", "name": "Beta"}
    entries = _audited(watch, lambda: admin_api.post("/api/v1/cohorts/", body, format="json"))
    assert [e.object_type for e in entries] == ["flags.cohort"]
    units = {"units": ["u-1", "u-2", "u-3"]}
    entries = _audited(
        watch, lambda: admin_api.post("/api/v1/cohorts/beta/members/", units, format="json")
    )
    assert [e.object_type for e in entries] == ["flags.cohort"]  # the batch, on its cohort
    assert entries[0].actor_type == "token"


def test_api_token_create_and_revoke__one_row_each(admin_api: APIClient, watch: AuditWatch) -> None:
    body = {"name": "ci", "scope": "client"}
    entries = _audited(watch, lambda: admin_api.post("/api/v1/tokens/", body, format="json"))
    created = _one_row_per_object(
        entries, action=entries[0].action, object_type="core.apitoken", actor_type="token"
    )
    assert "token" not in (created.after or {})  # the secret never reaches the log
    pk = ApiToken.objects.get(name="ci").pk
    entries = _audited(watch, lambda: admin_api.post(f"/api/v1/tokens/{pk}/revoke/"))
    assert [e.object_type for e in entries] == ["core.apitoken"]


def _plan(flags: dict[str, str], *, activate: bool = True) -> RolloutPlan:
    plan = plan_services.plan_create(
        name="Stripboard",
        definition=two_flag_release(),
        flags=flags,
        actor=SYSTEM,
        cohorts={c: c for c in ["internal", "external_beta", "open_beta", "power_users", "paying"]},
    )
    if activate:
        plan_services.plan_activate(plan=plan, actor=SYSTEM)
    return plan


def test_api_plan_pause_resume_rollback__audited(
    release_flags: dict[str, str],  # noqa: F811
    admin_api: APIClient,
    watch: AuditWatch,
) -> None:
    plan = _plan(release_flags)
    for action in ("pause", "resume"):
        entries = _audited(
            watch,
            lambda a=action: admin_api.post(
                f"/api/v1/plans/{plan.pk}/{a}/", {"reason": "audit test"}, format="json"
            ),
        )
        assert [e.object_type for e in entries] == ["phases.rolloutplan"], entries
        assert entries[0].actor_type == "token"
    entries = _audited(
        watch,
        lambda: admin_api.post(
            f"/api/v1/plans/{plan.pk}/rollback/", {"reason": "audit test"}, format="json"
        ),
    )
    # One row per object changed: the plan, and each flag put back.
    assert {e.object_type for e in entries} <= {"phases.rolloutplan", "flags.flag"}
    changed = [(e.object_type, e.object_id) for e in entries]
    assert len(changed) == len(set(changed)), changed


def test_api_plan_update__one_row_with_before_and_after(
    release_flags: dict[str, str],  # noqa: F811
    admin_api: APIClient,
    watch: AuditWatch,
) -> None:
    plan = _plan(release_flags, activate=False)
    body = {"step_hour": 10, "timezone": "Europe/Berlin", "version": plan.version}
    entries = _audited(
        watch, lambda: admin_api.patch(f"/api/v1/plans/{plan.pk}/", body, format="json")
    )
    entry = _one_row_per_object(
        entries, action="plan.update", object_type="phases.rolloutplan", actor_type="token"
    )
    assert (entry.before["step_hour"], entry.after["step_hour"]) == (9, 10)
    assert (entry.before["timezone"], entry.after["timezone"]) == ("UTC", "Europe/Berlin")


# The Django admin -------------------------------------------------------------------------------


@pytest.fixture
def admin_client_user(db: None) -> Client:
    user = get_user_model().objects.create_superuser("root", "root@example.com", "pw")
    client = Client()
    client.force_login(user)
    return client


def test_admin_flag_actions__one_row_per_flag(admin_client_user: Client, watch: AuditWatch) -> None:
    for key in ("a", "b"):
        flag_services.flag_create(key=key, actor=SYSTEM)
    pks = list(Flag.objects.filter(name__in=["a", "b"]).values_list("pk", flat=True))
    changelist = reverse("admin:flags_flag_changelist")
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            changelist,
            {"action": "kill_switch", "_selected_action": pks, "apply": "1", "reason": "incident"},
        ),
    )
    assert sorted((e.object_type, e.object_id) for e in entries) == sorted(
        ("flags.flag", str(pk)) for pk in pks
    )
    assert {e.actor_type for e in entries} == {"user"}
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            changelist, {"action": "archive", "_selected_action": pks[:1]}
        ),
    )
    assert [(e.object_type, e.object_id) for e in entries] == [("flags.flag", str(pks[0]))]


def test_admin_plan_action__audited(
    release_flags: dict[str, str],  # noqa: F811
    admin_client_user: Client,
    watch: AuditWatch,
) -> None:
    plan = _plan(release_flags)
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            reverse("admin:phases_rolloutplan_changelist"),
            {"action": "pause", "_selected_action": [plan.pk], "apply": "1", "reason": "hold"},
        ),
    )
    assert [e.object_type for e in entries] == ["phases.rolloutplan"]
    assert entries[0].actor_type == "user"


def test_admin_user_add_roles_password_delete__one_row_each(
    admin_client_user: Client, watch: AuditWatch
) -> None:
    from django.contrib.auth.models import Group

    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            reverse("admin:auth_user_add"),
            {"username": "dana", "password1": "Xk2!pq9-long", "password2": "Xk2!pq9-long"},
        ),
    )
    user = get_user_model().objects.get(username="dana")
    _one_row_per_object(entries, action="user.create", object_type="auth.user", actor_type="user")
    assert "password" not in entries[0].after and "Xk2" not in str(entries[0].after)

    manager = Group.objects.get(name="release_manager")
    change = {
        "username": "dana",
        "email": "dana@example.com",
        "is_active": "on",
        "is_staff": "on",
        "groups": [manager.pk],
        "date_joined_0": "2026-11-01",
        "date_joined_1": "10:00:00",
        "initial-date_joined_0": "2026-11-01",
        "initial-date_joined_1": "10:00:00",
    }
    entries = _audited(
        watch,
        lambda: admin_client_user.post(reverse("admin:auth_user_change", args=[user.pk]), change),
    )
    entry = _one_row_per_object(
        entries, action="user.update", object_type="auth.user", actor_type="user"
    )
    assert (entry.before["groups"], entry.after["groups"]) == ([], ["release_manager"])
    assert (entry.before["is_staff"], entry.after["is_staff"]) == (False, True)

    password = {"password1": "Another-9pass", "password2": "Another-9pass"}
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            reverse("admin:auth_user_password_change", args=[user.pk]), password
        ),
    )
    entry = _one_row_per_object(
        entries, action="user.password_change", object_type="auth.user", actor_type="user"
    )
    assert entry.after["password_changed"] is True and "Another" not in str(entry.after)

    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            reverse("admin:auth_user_delete", args=[user.pk]), {"post": "yes"}
        ),
    )
    assert [(e.action, e.object_id) for e in entries] == [("user.delete", str(user.pk))]
    assert entries[0].before["groups"] == ["release_manager"]
    assert not get_user_model().objects.filter(username="dana").exists()


def test_admin_webhook_endpoint_create_change_delete__one_row_each(
    admin_client_user: Client, watch: AuditWatch
) -> None:
    from rollout_control.core.models import WebhookEndpoint

    form = {
        "name": "ops",
        "url": "https://hooks.example.com/rollouts",
        "kind": "generic",
        "enabled": "on",
        "events": '["rollback"]',
        "secret": "s3cret-signing-key",
        "deliveries-TOTAL_FORMS": "0",
        "deliveries-INITIAL_FORMS": "0",
        "deliveries-MIN_NUM_FORMS": "0",
        "deliveries-MAX_NUM_FORMS": "0",
    }
    entries = _audited(
        watch, lambda: admin_client_user.post(reverse("admin:core_webhookendpoint_add"), form)
    )
    _one_row_per_object(
        entries, action="webhook.create", object_type="core.webhookendpoint", actor_type="user"
    )
    assert "s3cret" not in str(entries[0].after)
    endpoint = WebhookEndpoint.objects.get(name="ops")
    change_url = reverse("admin:core_webhookendpoint_change", args=[endpoint.pk])
    entries = _audited(watch, lambda: admin_client_user.post(change_url, form | {"name": "oncall"}))
    entry = _one_row_per_object(
        entries, action="webhook.update", object_type="core.webhookendpoint", actor_type="user"
    )
    assert (entry.before["name"], entry.after["name"]) == ("ops", "oncall")
    delete_url = reverse("admin:core_webhookendpoint_delete", args=[endpoint.pk])
    entries = _audited(watch, lambda: admin_client_user.post(delete_url, {"post": "yes"}))
    assert [(e.action, e.object_id) for e in entries] == [("webhook.delete", str(endpoint.pk))]
    assert not WebhookEndpoint.objects.filter(pk=endpoint.pk).exists()


def test_admin_role_permissions_changed__one_row(
    admin_client_user: Client, watch: AuditWatch
) -> None:
    from django.contrib.auth.models import Group, Permission

    support = Group.objects.get(name="support")
    granted = sorted(support.permissions.values_list("pk", flat=True))
    extra = Permission.objects.get(codename="change_flag")
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            reverse("admin:auth_group_change", args=[support.pk]),
            {"name": "support", "permissions": [*granted, extra.pk]},
        ),
    )
    entry = _one_row_per_object(
        entries, action="group.update", object_type="auth.group", actor_type="user"
    )
    assert set(entry.after["permissions"]) - set(entry.before["permissions"]) == {
        "flags.change_flag"
    }


def test_admin_periodic_task_edit_disable_and_schedule__one_row_each(
    admin_client_user: Client, watch: AuditWatch
) -> None:
    from django_celery_beat.models import IntervalSchedule, PeriodicTask

    from rollout_control.celery import app
    from rollout_control.schedule import BEAT_SCHEDULE, install_periodic_tasks

    entries = _audited(watch, lambda: install_periodic_tasks(app, BEAT_SCHEDULE))
    assert [e.action for e in entries] == ["periodic_task.create"] * len(BEAT_SCHEDULE)
    assert {e.actor_type for e in entries} == {"system"}
    task = PeriodicTask.objects.get(name="check guardrails")
    inline = {"periodictask_set-TOTAL_FORMS": "0", "periodictask_set-INITIAL_FORMS": "0"}
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            reverse("admin:django_celery_beat_intervalschedule_add"),
            {"every": "1", "period": "hours"} | inline,
        ),
    )
    assert [e.action for e in entries] == ["schedule.create"]
    hourly = IntervalSchedule.objects.get(every=1, period=IntervalSchedule.HOURS)
    form = {
        "name": task.name,
        "regtask": task.task,
        "task": task.task,
        "interval": hourly.pk,  # and the enabled box left unticked: disabled
        "args": "[]",
        "kwargs": "{}",
        "expire_seconds": "60",
        "priority": "",
        "headers": "{}",
    }
    change_url = reverse("admin:django_celery_beat_periodictask_change", args=[task.pk])
    entries = _audited(watch, lambda: admin_client_user.post(change_url, form))
    entry = _one_row_per_object(
        entries,
        action="periodic_task.update",
        object_type="django_celery_beat.periodictask",
        actor_type="user",
    )
    assert (entry.before["enabled"], entry.after["enabled"]) == (True, False)
    assert (entry.before["interval"], entry.after["interval"]) == (
        "every 60 seconds",
        "every hour",
    )
    assert entry.after["task"] == "phases.tasks.check_guardrails"

    changelist = reverse("admin:django_celery_beat_periodictask_changelist")
    pks = list(PeriodicTask.objects.filter(enabled=True).values_list("pk", flat=True)[:2])
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            changelist, {"action": "disable_tasks", "_selected_action": pks}
        ),
    )
    assert sorted((e.action, e.object_id) for e in entries) == sorted(
        ("periodic_task.disable", str(pk)) for pk in pks
    )
    assert all(e.before["enabled"] and not e.after["enabled"] for e in entries)
    entries = _audited(
        watch,
        lambda: admin_client_user.post(
            changelist, {"action": "toggle_tasks", "_selected_action": [task.pk]}
        ),
    )
    assert [(e.action, e.object_id) for e in entries] == [("periodic_task.enable", str(task.pk))]

    interval_url = reverse("admin:django_celery_beat_intervalschedule_change", args=[hourly.pk])
    entries = _audited(
        watch,
        lambda: admin_client_user.post(interval_url, {"every": "2", "period": "hours"} | inline),
    )
    entry = _one_row_per_object(
        entries,
        action="schedule.update",
        object_type="django_celery_beat.intervalschedule",
        actor_type="user",
    )
    assert (entry.before["schedule"], entry.after["schedule"]) == ("every hour", "every 2 hours")
    assert entry.after["tasks"] == ["check guardrails"]


# Celery task functions, run directly ------------------------------------------------------------


def test_task_advance_rollouts__ramp_step_audited(
    release_flags: dict[str, str],  # noqa: F811
    watch: AuditWatch,
    time_machine: Any,
) -> None:
    time_machine.move_to(datetime(2026, 3, 2, 8, 0, tzinfo=UTC), tick=False)
    flag_services.flag_create(key="ramped", actor=SYSTEM)
    definition = {
        "flags": ["f"],
        "allowed_weekdays": list(range(7)),
        "phases": [
            {"name": "Ramp", "targets": [{"flag": "f", "start": 10, "step": 10, "target": 50}]}
        ],
    }
    plan = plan_services.plan_create(
        name="ramp", definition=definition, flags={"f": "ramped"}, actor=SYSTEM, step_hour=9
    )
    plan_services.plan_activate(plan=plan, actor=SYSTEM)
    time_machine.move_to(datetime(2026, 3, 3, 10, 0, tzinfo=UTC), tick=False)
    entries = _audited(watch, phase_tasks.advance_rollouts)
    entry = _one_row_per_object(
        entries, action=entries[0].action, object_type="flags.flag", actor_type="system"
    )
    assert entry.before != entry.after


# Management commands ----------------------------------------------------------------------------


def test_command_create_api_token__one_row(watch: AuditWatch) -> None:
    entries = _audited(
        watch,
        lambda: call_command(
            "create_api_token", "--scope", "client", "--name", "cli", stdout=io.StringIO()
        ),
    )
    _one_row_per_object(
        entries, action=entries[0].action, object_type="core.apitoken", actor_type="system"
    )


def test_command_load_demo__every_transaction_audited(watch: AuditWatch) -> None:
    entries = _audited(watch, lambda: call_command("load_demo", stdout=io.StringIO()))
    assert entries
    assert all(e.actor_label and e.created_at.utcoffset() == timedelta(0) for e in entries)


def test_command_load_demo__run_again__replaced_tokens_revoked_and_audited(
    watch: AuditWatch,
) -> None:
    call_command("load_demo", stdout=io.StringIO())
    before = set(ApiToken.objects.filter(revoked_at__isnull=True).values_list("pk", flat=True))
    entries = _audited(watch, lambda: call_command("load_demo", stdout=io.StringIO()))
    revoked = {int(e.object_id) for e in entries if e.action == "api_token.revoke"}
    assert before and revoked == before
    assert not ApiToken.objects.filter(pk__in=before, revoked_at__isnull=True).exists()


# The check itself -------------------------------------------------------------------------------


def test_watch__bare_queryset_update__caught() -> None:
    flag_services.flag_create(key="sneaky", actor=SYSTEM)
    watcher = AuditWatch()
    with connection.execute_wrapper(watcher), transaction.atomic():
        Flag.objects.filter(name="sneaky").update(everyone=False)
    assert len(watcher.violations) == 1
    assert 'UPDATE "flags_flag"' in watcher.violations[0][0]
    watcher = AuditWatch()
    with connection.execute_wrapper(watcher):
        Flag.objects.filter(name="sneaky").update(everyone=None)  # no transaction at all
    assert len(watcher.violations) == 1


def test_watch__service_change__passes() -> None:
    flag_services.flag_create(key="fine", actor=SYSTEM)
    watcher = AuditWatch()
    with connection.execute_wrapper(watcher):
        flag_services.flag_set_kill_switch(key="fine", killed=True, actor=SYSTEM, reason="test")
    assert watcher.transactions == 1  # the service's atomic() was seen as one transaction
    assert watcher.audited_writes and not watcher.violations
