"""Model permissions for the two roles, so the admin opens to them (superusers need none).

release_manager: flags, cohorts, plans and everything under them, metric definitions, webhooks,
the periodic schedule; tokens (view, revoke); audit log and feedback (view). support: view
flags, cohorts, plans, gates, the audit log and feedback. Writes still go through services."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

FULL = ("add", "change", "delete", "view")
RELEASE_MANAGER = {
    "flags": {"flag": FULL, "cohort": FULL, "cohortmember": ("view",), "flagcohortrule": ("view",)},
    "phases": {
        model: FULL
        for model in (
            "plantemplate", "rolloutplan", "freezewindow", "phase", "phasetarget", "rampstep", "rampskip",
            "cohortadmission", "admissionbatch", "gatecriterion", "checklistitem", "signoff", "gatereview",
            "decision", "checkpoint", "incident", "guardrail", "guardrailcheck", "degradationstate",
        )
    },
    "monitoring": {"metricdefinition": FULL, "heartbeat": ("view",), "metricrollup": ("view",)},
    "core": {"apitoken": ("view", "change"), "auditentry": ("view",), "webhookendpoint": FULL,
             "webhookdelivery": ("view",)},
    "feedback": {"feedbackitem": ("view", "change")},
    "django_celery_beat": {"periodictask": ("view", "change"), "intervalschedule": ("view", "add", "change")},
}
SUPPORT = {
    "flags": {"flag": ("view",), "cohort": ("view",)},
    "phases": {"rolloutplan": ("view",), "phase": ("view",), "gatereview": ("view",), "decision": ("view",),
               "incident": ("view",)},
    "core": {"auditentry": ("view",)},
    "feedback": {"feedbackitem": ("view", "change")},
}


def _grant(apps, group_name, grants):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=group_name)
    for app_label, models in grants.items():
        for model, actions in models.items():
            codenames = [f"{action}_{model}" for action in actions]
            group.permissions.add(
                *Permission.objects.filter(content_type__app_label=app_label, codename__in=codenames)
            )


def grant(apps, schema_editor):
    # Permissions are normally created after all migrations; these need them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    grant_roles(apps, schema_editor)


def grant_roles(apps, schema_editor):
    _grant(apps, "release_manager", RELEASE_MANAGER)
    _grant(apps, "support", SUPPORT)


def revoke(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name in ("release_manager", "support"):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.clear()


class Migration(migrations.Migration):
    dependencies = [
        ("core", "0005_webhooks"),
        ("flags", "0001_initial"),
        ("phases", "0006_admission_batch_plural"),
        ("monitoring", "0006_heartbeat_stall_alert"),
        ("feedback", "0002_feedback_items"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(grant, revoke)]
