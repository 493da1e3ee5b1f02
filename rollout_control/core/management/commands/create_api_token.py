from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from rollout_control.core.actors import Actor
from rollout_control.core.models import ApiToken
from rollout_control.core.services import api_token_create


class Command(BaseCommand):
    help = "Creates an API token and prints it (once) as the last line of output."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--scope", required=True, choices=ApiToken.Scope.values)
        parser.add_argument("--name", required=True)
        parser.add_argument("--user", help="username the token acts for (needed for decisions)")
        parser.add_argument("--expires-days", type=int, help="expire after this many days")

    def handle(self, *args: object, **options: object) -> None:
        user = None
        if options["user"]:
            try:
                user = get_user_model().objects.get_by_natural_key(options["user"])
            except get_user_model().DoesNotExist:
                raise CommandError(f"no user named {options['user']!r}") from None
        expires_days = options["expires_days"]
        if expires_days is not None and expires_days < 1:
            raise CommandError("--expires-days must be at least 1")
        expires_at = timezone.now() + timedelta(days=expires_days) if expires_days else None
        token, raw = api_token_create(
            name=str(options["name"]),
            scope=str(options["scope"]),
            user=user,
            expires_at=expires_at,
            actor=Actor.system("manage.py create_api_token"),
        )
        self.stdout.write(
            f"Created {token.scope} token {token.name!r} (id {token.pk}). Shown once:"
        )
        self.stdout.write(raw)
