"""Signing in to the client area (locked against guessing with the admin's login, by django-axes), signing out, and the set-password page
leading to sign-in."""

import re

import pytest
from django.contrib.auth.tokens import default_token_generator
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "correct horse battery"
WAIT = "Too many failed sign-in attempts"


@pytest.fixture
def customer_user():
    return UserFactory(email="jane@example.com", password=PASSWORD)


def sign_in(client, email, password, ip="203.0.113.7", **data):
    return client.post(reverse("accounts:login"), {"username": email, "password": password, **data}, REMOTE_ADDR=ip)


def test_a_customer_signs_in_with_e_mail_and_password_and_lands_on_their_services(client, customer_user):
    response = sign_in(client, "Jane@Example.com", PASSWORD)

    assert response.status_code == 302 and response["Location"] == reverse("accounts:services")
    assert client.get(reverse("accounts:services")).status_code == 200


def test_sign_in_returns_to_the_page_asked_for_but_never_to_another_site(client, customer_user):
    assert sign_in(client, customer_user.email, PASSWORD, next="/account/services/1/")["Location"] == (
        "/account/services/1/"
    )
    client.logout()
    assert sign_in(client, customer_user.email, PASSWORD, next="https://evil.example/")["Location"] == (
        reverse("accounts:services")
    )


def test_a_wrong_password_and_an_unknown_address_get_the_same_answer(client, customer_user):
    def page(email):
        html = sign_in(client, email, "nope").content.decode().replace(email, "X")
        return re.sub(r'name="csrfmiddlewaretoken" value="[^"]+"', "", html)  # masked afresh on every page

    wrong, unknown = page(customer_user.email), page("nobody@example.com")

    assert "do not match" in wrong
    assert wrong == unknown


def test_staff_need_not_be_customers_and_customers_need_not_be_staff(client, customer_user):
    assert customer_user.is_staff is False
    assert sign_in(client, customer_user.email, PASSWORD).status_code == 302


def test_an_inactive_user_cannot_sign_in(client, customer_user):
    customer_user.is_active = False
    customer_user.save()

    assert sign_in(client, customer_user.email, PASSWORD).status_code == 200


def test_guessing_one_address_is_stopped_even_with_the_right_password(client, customer_user):
    for _ in range(4):
        assert WAIT not in sign_in(client, customer_user.email, "guess").content.decode()
    sign_in(client, customer_user.email, "guess")

    blocked = sign_in(client, customer_user.email, PASSWORD)

    assert blocked.status_code == 429 and WAIT in blocked.content.decode()
    assert "try again in 15 minutes" in blocked.content.decode()
    assert client.get(reverse("accounts:services")).status_code == 302  # not signed in


def test_the_address_typed_in_another_case_counts_as_the_same_account(client, customer_user):
    for email in ("Jane@Example.com", "JANE@example.com ", "jane@EXAMPLE.com", "jane@example.COM", "jAne@example.com"):
        sign_in(client, email, "guess")

    assert sign_in(client, customer_user.email, PASSWORD).status_code == 429


def test_guessing_many_addresses_from_one_client_locks_none_of_their_owners(client, customer_user):
    for n in range(20):
        sign_in(client, f"someone{n}@example.com", "guess")

    assert sign_in(client, customer_user.email, PASSWORD).status_code == 302


def test_failures_at_the_admin_count_here_too(client, customer_user):
    for _ in range(5):
        client.post(
            reverse("admin:login"), {"username": customer_user.email, "password": "guess"}, REMOTE_ADDR="203.0.113.7"
        )

    blocked = sign_in(client, customer_user.email, PASSWORD)

    assert blocked.status_code == 429 and WAIT in blocked.content.decode()


def test_sign_out_is_a_post_and_says_so(client, customer_user):
    client.force_login(customer_user)

    assert client.get(reverse("accounts:logout")).status_code == 405
    response = client.post(reverse("accounts:logout"), follow=True)

    assert "You are signed out." in response.content.decode()
    assert client.get(reverse("accounts:services")).status_code == 302


def test_the_set_password_page_still_works_and_leads_to_sign_in(client):
    user = UserFactory(email="new@example.com")  # as an order makes one: no usable password
    url = reverse(
        "accounts:password_set",
        kwargs={
            "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
            "token": default_token_generator.make_token(user),
        },
    )

    form_page = client.get(url, follow=True)
    done = client.post(
        form_page.redirect_chain[-1][0],
        {"new_password1": "a quiet orange lamp", "new_password2": "a quiet orange lamp"},
        follow=True,
    )

    assert done.redirect_chain[-1][0] == reverse("accounts:password_set_done")
    assert f'href="{reverse("accounts:login")}"' in done.content.decode()
    assert sign_in(client, "new@example.com", "a quiet orange lamp").status_code == 302


def test_a_used_set_password_link_offers_a_new_one(client):
    user = UserFactory(password=PASSWORD)
    url = reverse(
        "accounts:password_set", kwargs={"uidb64": urlsafe_base64_encode(force_bytes(user.pk)), "token": "bad-token"}
    )

    page = client.get(url).content.decode()

    assert "does not work any more" in page and reverse("accounts:password_reset") in page
