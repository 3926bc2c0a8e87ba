"""The admin's login: at a path from settings, and locked against guessing (django-axes, per account and client
IP; the lock's own tests are in tests/security/test_login_lockout.py)."""

import pytest
from django.urls import clear_url_caches, reverse

pytestmark = pytest.mark.django_db

WAIT = "Too many failed sign-in attempts"


def login(client, email, password, ip="203.0.113.7"):
    return client.post(reverse("admin:login"), {"username": email, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def staff(superuser):
    return superuser  # password "correct horse battery"


def test_a_good_login_works(client, staff):
    response = login(client, staff.email, "correct horse battery")

    assert response.status_code == 302


def test_guessing_one_address_is_stopped_even_with_the_right_password(client, staff):
    for _ in range(4):
        assert WAIT not in login(client, staff.email, "guess").content.decode()
    locking = login(client, staff.email, "guess")  # the fifth failure locks, and says so

    blocked = login(client, staff.email, "correct horse battery")

    assert locking.status_code == 429 and WAIT in locking.content.decode()
    assert blocked.status_code == 429 and WAIT in blocked.content.decode()
    assert "try again in 15 minutes" in blocked.content.decode()
    assert "_auth_user_id" not in client.session


def test_guessing_other_addresses_from_one_client_does_not_lock_staff_out(client, staff):
    # Locks are per account and client together: 20 failures spread over other addresses from the staff member's
    # own network (one NAT address) leave the staff member's login alone.
    for n in range(20):
        login(client, f"someone{n}@example.com", "guess")

    assert login(client, staff.email, "correct horse battery").status_code == 302


def test_a_successful_login_is_not_blocked_and_forgets_earlier_typos(client, staff):
    for _ in range(4):
        login(client, staff.email, "typo")

    assert login(client, staff.email, "correct horse battery").status_code == 302
    client.logout()
    for _ in range(4):
        assert WAIT not in login(client, staff.email, "typo").content.decode()
    assert login(client, staff.email, "correct horse battery").status_code == 302


def test_the_admin_path_comes_from_settings(client, staff, settings):
    import importlib

    import config.urls

    settings.ADMIN_URL = "staff-only-7f3a/"
    try:
        clear_url_caches()
        importlib.reload(config.urls)
        assert reverse("admin:index") == "/staff-only-7f3a/"
        assert client.get("/admin/").status_code == 404
    finally:
        settings.ADMIN_URL = "admin/"
        importlib.reload(config.urls)
        clear_url_caches()
