import secrets

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT
from rollout_control.core.services import api_token_create, api_token_revoke, user_login_set
from rollout_control.dashboard.demo import demo_load

DEMO_USERS = (
    # username, role, is_superuser
    ("admin", RELEASE_MANAGER, True),
    ("manager", RELEASE_MANAGER, False),
    ("support", SUPPORT, False),
)


class Command(BaseCommand):
    help = "Loads the demo (users, tokens and every app's demo data) and prints the logins."

    def handle(self, *args: object, **options: object) -> None:
        logins = []
        with transaction.atomic():
            actor = Actor.system("manage.py load_demo")
            for username, role, is_superuser in DEMO_USERS:
                password = secrets.token_urlsafe(9)
                user_login_set(
                    username=username,
                    password=password,
                    role=role,
                    is_superuser=is_superuser,
                    actor=actor,
                )
                logins.append((username, password, "superuser" if is_superuser else role))
            # Earlier demo tokens stop working: revoked through the service, so audited.
            for old in ApiToken.objects.filter(name__startswith="demo-", revoked_at__isnull=True):
                api_token_revoke(token=old, actor=actor)
            _, client_token = api_token_create(name="demo-client", scope="client", actor=actor)
            # For server-side reporters: metric samples (the README's breach-on-purpose curl).
            _, ingest_token = api_token_create(
                name="demo-ingest", scope=ApiToken.Scope.INGEST, actor=actor
            )
            _, admin_token = api_token_create(
                name="demo-admin",
                scope="admin",
                actor=actor,
                user=get_user_model().objects.get(username="manager"),
            )
        built = demo_load()
        self.stdout.write(
            "Demo plans, flags and metrics " + ("loaded." if built else "already there.")
        )
        self.stdout.write("")
        self.stdout.write("=" * 64)
        self.stdout.write("Demo logins (passwords are new on every start):")
        for username, password, role in logins:
            self.stdout.write(f"  {username:<8} {password:<14} {role}")
        self.stdout.write(f"  client API token: {client_token}")
        self.stdout.write(f"  ingest API token: {ingest_token}")
        self.stdout.write(f"  admin API token:  {admin_token}")
        self.stdout.write("=" * 64)
