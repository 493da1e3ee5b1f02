from collections.abc import Iterator

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

from rollout_control.core.actors import Actor
from rollout_control.core.roles import RELEASE_MANAGER, SUPPORT
from rollout_control.core.services import api_token_create
from rollout_control.core.snapshots import store


def _user(username: str, role: str | None) -> object:
    user = get_user_model().objects.create_user(username=username, password="pw-" + username)
    if role:
        user.groups.add(Group.objects.get(name=role))
    return user


@pytest.fixture
def release_manager(db: None) -> object:
    return _user("rita", RELEASE_MANAGER)


@pytest.fixture
def support_user(db: None) -> object:
    return _user("sam", SUPPORT)


@pytest.fixture
def client_token(db: None) -> str:
    return api_token_create(name="app", scope="client", actor=Actor.system())[1]


@pytest.fixture
def ingest_token(db: None) -> str:
    """A server-side reporter's token: the only non-admin token that may push metric samples."""
    return api_token_create(name="reporter", scope="ingest", actor=Actor.system())[1]


@pytest.fixture
def admin_token(db: None, release_manager: object) -> str:
    return api_token_create(name="ops", scope="admin", user=release_manager, actor=Actor.system())[
        1
    ]


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def client_api(client_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {client_token}")
    return client


@pytest.fixture
def ingest_api(ingest_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {ingest_token}")
    return client


@pytest.fixture
def admin_api(admin_token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {admin_token}")
    return client


@pytest.fixture(autouse=True)
def _fresh_snapshots() -> Iterator[None]:
    """Each test's database starts over, so must each process-level snapshot."""
    store.reset()
    yield
    store.reset()


# Data migrations that create reference rows, in dependency order, as (module, function).
SEED_MIGRATIONS = [
    ("rollout_control.core.migrations.0002_roles", "create_roles"),
    ("rollout_control.core.migrations.0004_config_version_row", "create_row"),
    ("monitoring.migrations.0003_default_definitions", "create"),
    ("monitoring.migrations.0004_data_corruption_definition", "create"),
    ("feedback.migrations.0001_feedback_metric_definitions", "create"),
    ("phases.migrations.0002_seed_templates", "install"),
    ("phases.migrations.0004_template_guardrails", "add"),
    ("rollout_control.core.migrations.0006_role_permissions", "grant_roles"),
]


@pytest.fixture(autouse=True)
def _reference_data(request: pytest.FixtureRequest) -> None:
    """Transactional tests (real processes, threads, a live server) flush the database when they
    end, taking the rows the data migrations made (roles, metric definitions, templates) with
    them. Before each database test, put them back if they are gone. (Serialized rollback would
    do this, but its saved copy lives on a connection object that Playwright's greenlet does not
    see.)"""
    if request.node.get_closest_marker("django_db") is None and "db" not in request.fixturenames:
        return
    request.getfixturevalue("_django_db_helper")
    from importlib import import_module

    from django.apps import apps
    from django.contrib.auth.models import Group

    if Group.objects.filter(name="release_manager").exists():
        return
    for module, function in SEED_MIGRATIONS:
        getattr(import_module(module), function)(apps, None)
