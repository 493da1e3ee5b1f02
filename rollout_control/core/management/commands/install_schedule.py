from django.core.management.base import BaseCommand

from rollout_control.celery import app
from rollout_control.schedule import BEAT_SCHEDULE, install_periodic_tasks


class Command(BaseCommand):
    help = "Installs the periodic tasks defined in code that the database does not have yet."

    def handle(self, *args: object, **options: object) -> None:
        created = install_periodic_tasks(app, BEAT_SCHEDULE)
        self.stdout.write(f"Periodic tasks installed: {', '.join(created) or 'none missing'}")
