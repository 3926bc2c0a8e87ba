"""Staff of each role (catalog, support, billing), logged in."""

import pytest
from django.contrib.auth.models import Group

from accounts.models import User
from backoffice.roles import BILLING, CATALOG_MANAGERS, SUPPORT, staff_groups_sync
from tests.browser import STAFF_PASSWORD


@pytest.fixture
def staff_groups(db):
    # The data migration made them; a transactional test's flush may have removed them since.
    staff_groups_sync()


def _staff(email: str, group: str | None, *, superuser: bool = False) -> User:
    user = User.objects.create_user(email=email, password=STAFF_PASSWORD, is_staff=True, is_superuser=superuser)
    if group:
        user.groups.add(Group.objects.get(name=group))
    return user


@pytest.fixture
def catalog_manager(staff_groups):
    return _staff("catalog@migrahosting.test", CATALOG_MANAGERS)


@pytest.fixture
def support_agent(staff_groups):
    return _staff("support@migrahosting.test", SUPPORT)


@pytest.fixture
def billing_agent(staff_groups):
    return _staff("billing@migrahosting.test", BILLING)


@pytest.fixture
def superuser(db):
    return _staff("root@migrahosting.test", None, superuser=True)


@pytest.fixture
def catalog_client(client, catalog_manager):
    client.force_login(catalog_manager)
    return client


@pytest.fixture
def support_client(client, support_agent):
    client.force_login(support_agent)
    return client


@pytest.fixture
def billing_client(client, billing_agent):
    client.force_login(billing_agent)
    return client
