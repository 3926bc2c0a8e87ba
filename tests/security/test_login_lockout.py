"""Sign-in protection by django-axes, as the admin and the client area use it: locked per account and client IP
together, for a cool-off, in the database (Redis down changes nothing), the client IP as our proxy wrote it, and a
superuser can unlock."""

import random
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.management import call_command
from django.urls import reverse

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
WAIT = "Too many failed sign-in attempts"
IP_1, IP_2 = "203.0.113.1", "198.51.100.2"


@pytest.fixture
def user_a():
    return UserFactory(email="a@example.com", password=PASSWORD)


@pytest.fixture
def user_b():
    return UserFactory(email="b@example.com", password=PASSWORD)


def sign_in(client, email, password, ip=IP_1, **meta):
    client.logout()
    return client.post(reverse("accounts:login"), {"username": email, "password": password}, REMOTE_ADDR=ip, **meta)


def fail_five_times(client, email, ip=IP_1, **meta):
    for _ in range(5):
        sign_in(client, email, "wrong guess", ip=ip, **meta)


def test_five_failures_lock_that_account_at_that_address_only(client, user_a, user_b):
    fail_five_times(client, user_a.email, ip=IP_1)

    locked = sign_in(client, user_a.email, PASSWORD, ip=IP_1)
    a_elsewhere = sign_in(client, user_a.email, PASSWORD, ip=IP_2)
    b_same_address = sign_in(client, user_b.email, PASSWORD, ip=IP_1)

    assert locked.status_code == 429 and WAIT in locked.content.decode()
    assert a_elsewhere.status_code == 302
    assert b_same_address.status_code == 302


def test_four_failures_do_not_lock(client, user_a):
    for _ in range(4):
        sign_in(client, user_a.email, "wrong guess")

    assert sign_in(client, user_a.email, PASSWORD).status_code == 302


def test_the_lock_ends_after_its_cool_off(client, user_a):
    fail_five_times(client, user_a.email)
    attempt = AccessAttempt.objects.get(username=user_a.email, ip_address=IP_1)

    # Move the locking failure back in time rather than waiting: 14 minutes on, still locked, and the page says 1.
    AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - timedelta(minutes=14))
    still_locked = sign_in(client, user_a.email, PASSWORD)
    AccessAttempt.objects.filter(pk=attempt.pk).update(
        attempt_time=attempt.attempt_time - timedelta(minutes=15, seconds=1)
    )
    after_cool_off = sign_in(client, user_a.email, PASSWORD)

    assert still_locked.status_code == 429 and "try again in 1 minutes" in still_locked.content.decode()
    assert after_cool_off.status_code == 302


def test_attempts_while_locked_do_not_extend_the_cool_off(client, user_a):
    fail_five_times(client, user_a.email)
    locked_at = AccessAttempt.objects.get(username=user_a.email).attempt_time

    for _ in range(3):
        sign_in(client, user_a.email, "another guess")

    attempt = AccessAttempt.objects.get(username=user_a.email)
    assert attempt.attempt_time == locked_at and attempt.failures_since_start == 5


def test_with_redis_unreachable_it_still_locks(client, user_a, settings):
    # The cache pointed at a port nobody listens on, as when Redis is down: the lock lives in the database.
    settings.CACHES = {
        "default": {
            "BACKEND": "core.cache.DegradingRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    assert caches["default"].get("anything", "missed") == "missed"

    fail_five_times(client, user_a.email)
    locked = sign_in(client, user_a.email, PASSWORD)

    assert locked.status_code == 429 and WAIT in locked.content.decode()


def test_behind_one_proxy_a_forged_x_forwarded_for_does_not_make_a_new_client(client, user_a, user_b, settings):
    # nginx (our one proxy) overwrites X-Forwarded-For with the address it saw, or appends it: the rightmost address
    # is the client's, whatever the client wrote before it.
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "NUM_PROXIES": 1}
    for _ in range(5):
        forged = f"{random.randint(1, 223)}.{random.randint(0, 255)}.{random.randint(0, 255)}.7"
        sign_in(client, user_a.email, "wrong guess", ip="10.0.0.2", HTTP_X_FORWARDED_FOR=f"{forged}, {IP_1}")

    locked = sign_in(client, user_a.email, PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR=f"1.2.3.4, {IP_1}")
    other_client = sign_in(client, user_a.email, PASSWORD, ip="10.0.0.2", HTTP_X_FORWARDED_FOR=IP_2)

    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {IP_1}
    assert locked.status_code == 429
    assert other_client.status_code == 302


def test_the_admins_login_and_the_client_areas_share_one_lock(client, user_a):
    for _ in range(5):
        client.post(reverse("admin:login"), {"username": user_a.email, "password": "wrong guess"}, REMOTE_ADDR=IP_1)

    assert sign_in(client, user_a.email, PASSWORD).status_code == 429


def test_a_superuser_unlocks_from_the_admin(client, user_a):
    fail_five_times(client, user_a.email)
    root = UserFactory(email="root@example.com", password=PASSWORD, is_staff=True, is_superuser=True)
    attempt = AccessAttempt.objects.get(username=user_a.email)
    client.force_login(root)

    listing = client.get(reverse("admin:axes_accessattempt_changelist"))
    deleted = client.post(reverse("admin:axes_accessattempt_delete", args=[attempt.pk]), {"post": "yes"})

    assert user_a.email in listing.content.decode()
    assert deleted.status_code == 302
    assert sign_in(client, user_a.email, PASSWORD).status_code == 302


def test_staff_who_are_not_superusers_do_not_see_the_lock_records(client, user_a):
    fail_five_times(client, user_a.email)
    staff = UserFactory(email="staff@example.com", password=PASSWORD, is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="axes"))
    client.force_login(staff)

    assert client.get(reverse("admin:axes_accessattempt_changelist")).status_code == 403
    assert "axes" not in client.get(reverse("admin:index")).content.decode().lower()


def test_a_superuser_unlocks_with_the_management_command(client, user_a):
    fail_five_times(client, user_a.email)

    call_command("axes_reset_username", user_a.email)

    assert sign_in(client, user_a.email, PASSWORD).status_code == 302
