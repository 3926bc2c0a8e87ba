"""Password reset by e-mail: the same page, the same work in the request and the same throttle for every address;
only the address's real owner gets an e-mail, and its link sets the password."""

import re

import pytest
from django.core import mail
from django.test import override_settings
from django.urls import reverse

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"


def ask(client, email, ip="203.0.113.7"):
    return client.post(reverse("accounts:password_reset"), {"email": email}, REMOTE_ADDR=ip, follow=True)


@pytest.fixture
def known():
    return UserFactory(email="known@example.com", password=PASSWORD)


def test_a_known_and_an_unknown_address_get_the_same_page_and_only_the_owner_an_e_mail(
    client, known, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as unknown_callbacks:
        unknown = ask(client, "unknown@example.com")
    assert len(mail.outbox) == 0
    with django_capture_on_commit_callbacks(execute=True) as known_callbacks:
        answer = ask(client, "known@example.com")

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["known@example.com"]
    assert unknown.redirect_chain == answer.redirect_chain == [(reverse("accounts:password_reset_sent"), 302)]
    assert unknown.content == answer.content
    # The request itself does the same work either way: one task queued with the address typed.
    assert len(unknown_callbacks) == len(known_callbacks) == 1


def test_the_e_mails_link_sets_a_new_password(client, known, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        ask(client, "KNOWN@example.com")
    link = re.search(r"http://\S+/account/password-reset/\S+/", mail.outbox[0].body).group(0)
    path = link.split("://", 1)[1].split("/", 1)[1]

    form_page = client.get(f"/{path}", follow=True)
    client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a quiet orange lamp", "new_password2": "a quiet orange lamp"},
    )

    known.refresh_from_db()
    assert known.check_password("a quiet orange lamp")
    assert "does not work any more" in client.get(f"/{path}", follow=True).content.decode()


def test_a_customer_who_never_chose_a_password_can_get_a_link_too(client, django_capture_on_commit_callbacks):
    UserFactory(email="ordered@example.com")  # the set-password e-mail's link may have expired

    with django_capture_on_commit_callbacks(execute=True):
        ask(client, "ordered@example.com")

    assert len(mail.outbox) == 1


def test_an_inactive_user_gets_nothing(client, known, django_capture_on_commit_callbacks):
    known.is_active = False
    known.save()

    with django_capture_on_commit_callbacks(execute=True):
        ask(client, "known@example.com")

    assert mail.outbox == []


@override_settings(PASSWORD_RESET_MAX_PER_ADDRESS=3)
def test_requests_for_one_address_are_throttled_alike_for_known_and_unknown(
    client, known, django_capture_on_commit_callbacks
):
    for email in ("known@example.com", "unknown@example.com"):
        with django_capture_on_commit_callbacks(execute=True):
            for _ in range(3):
                ask(client, email)
            blocked = ask(client, email, ip="198.51.100.1")
        assert "Too many requests for a reset link" in blocked.content.decode()
        assert blocked.redirect_chain == []
    assert len(mail.outbox) == 3


@override_settings(PASSWORD_RESET_MAX_PER_IP=4, PASSWORD_RESET_MAX_PER_ADDRESS=100)
def test_one_client_asking_for_many_addresses_is_throttled(client, known):
    for n in range(4):
        ask(client, f"someone{n}@example.com")

    assert "Too many requests" in ask(client, "known@example.com").content.decode()
    assert ask(client, "known@example.com", ip="198.51.100.1").redirect_chain


@override_settings(PASSWORD_RESET_MAX_PER_ADDRESS=3, PASSWORD_RESET_MAX_PER_IP=3)
def test_reset_requests_never_lock_the_owner_out_of_signing_in(client, known):
    for _ in range(10):
        ask(client, "known@example.com", ip="203.0.113.50")  # from the owner's own address, too

    response = client.post(
        reverse("accounts:login"), {"username": "known@example.com", "password": PASSWORD}, REMOTE_ADDR="203.0.113.50"
    )

    assert response.status_code == 302
