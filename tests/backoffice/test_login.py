"""The admin's login: at a path from settings, and throttled against guessing."""

import pytest
from django.test import override_settings
from django.urls import clear_url_caches, reverse

pytestmark = pytest.mark.django_db

WAIT = "Too many failed logins"


def login(client, email, password, ip="203.0.113.7"):
    return client.post(reverse("admin:login"), {"username": email, "password": password}, REMOTE_ADDR=ip)


@pytest.fixture
def staff(superuser):
    return superuser  # password "correct horse battery"


def test_a_good_login_works(client, staff):
    response = login(client, staff.email, "correct horse battery")

    assert response.status_code == 302


@override_settings(ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME=3)
def test_guessing_one_address_is_stopped_even_with_the_right_password(client, staff):
    for _ in range(3):
        assert WAIT not in login(client, staff.email, "guess").content.decode()

    blocked = login(client, staff.email, "correct horse battery")

    assert blocked.status_code == 200 and WAIT in blocked.content.decode()


@override_settings(ADMIN_LOGIN_MAX_FAILURES_PER_IP=4, ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME=100)
def test_guessing_from_one_address_is_stopped_across_usernames(client, staff):
    for n in range(4):
        login(client, f"someone{n}@example.com", "guess")

    assert WAIT in login(client, staff.email, "correct horse battery").content.decode()
    assert login(client, staff.email, "correct horse battery", ip="198.51.100.1").status_code == 302


@override_settings(ADMIN_LOGIN_MAX_FAILURES_PER_USERNAME=3)
def test_a_successful_login_is_not_blocked_and_forgets_earlier_typos(client, staff):
    login(client, staff.email, "typo")
    login(client, staff.email, "typo")

    assert login(client, staff.email, "correct horse battery").status_code == 302
    client.logout()
    login(client, staff.email, "typo")
    login(client, staff.email, "typo")
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
