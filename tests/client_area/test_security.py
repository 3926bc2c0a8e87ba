"""The client area's defences: another customer's service, invoice or portal by id is a 404 (never a 403 that
would confirm it exists), every form needs its CSRF token, and each action needs a signed-in user."""

import pytest
from django.test import Client
from django.urls import reverse

from accounts.models import CustomerMembership
from tests.client_area.conftest import PASSWORD, member

pytestmark = pytest.mark.django_db

KEY = {"idempotency_key": "client-test-0000000001"}

# Every page that takes a service id: (method, url name, extra url args).
SERVICE_ENDPOINTS = [
    ("get", "accounts:service", []),
    ("post", "accounts:billing_portal", []),
    ("get", "accounts:service_cancel", []),
    ("post", "accounts:service_cancel", []),
    ("post", "accounts:service_cancel_undo", []),
    ("get", "accounts:plan_change_options", []),
    ("get", "accounts:plan_change_preview", [1]),
    ("post", "accounts:plan_change_preview", [1]),
]


@pytest.mark.parametrize("role", ["owner", "admin", "billing", "technical"])
@pytest.mark.parametrize(("method", "name", "extra"), SERVICE_ENDPOINTS)
def test_another_customers_service_is_not_found_whatever_the_role(
    client, service, other_service, role, method, name, extra
):
    user = member(service.customer, role)
    client.force_login(user)

    response = getattr(client, method)(reverse(name, args=[other_service.pk, *extra]), KEY)

    assert response.status_code == 404
    assert "someone-else.example.com" not in response.content.decode()
    other_service.refresh_from_db()
    assert other_service.cancel_at_period_end is False


def test_an_id_that_does_not_exist_is_the_same_404_as_another_customers(client, owner, other_service):
    client.force_login(owner)

    foreign = client.get(reverse("accounts:service", args=[other_service.pk]))
    missing = client.get(reverse("accounts:service", args=[other_service.pk + 1000]))

    assert foreign.status_code == missing.status_code == 404
    assert foreign.content == missing.content


def test_another_customers_invoices_are_never_listed_or_linked(client, owner, service, other_service):
    client.force_login(owner)

    pages = (
        client.get(reverse("accounts:services")).content.decode()
        + client.get(reverse("accounts:service", args=[service.pk])).content.decode()
    )

    assert "OTHER-0001" not in pages and "someone-else.example.com" not in pages


def test_a_membership_removed_takes_the_service_away_at_once(client, service):
    user = member(service.customer, "billing")
    client.force_login(user)
    assert client.get(reverse("accounts:service", args=[service.pk])).status_code == 200

    CustomerMembership.objects.filter(user=user).delete()

    assert client.get(reverse("accounts:service", args=[service.pk])).status_code == 404


@pytest.mark.parametrize(("method", "name", "extra"), SERVICE_ENDPOINTS)
def test_signed_out_requests_go_to_sign_in_and_change_nothing(client, service, method, name, extra):
    response = getattr(client, method)(reverse(name, args=[service.pk, *extra]), KEY)

    assert response.status_code == 302 and response["Location"].startswith(reverse("accounts:login"))
    service.refresh_from_db()
    assert service.cancel_at_period_end is False


# --- CSRF on every form ---------------------------------------------------------------------------------------------


def _csrf_client(user=None) -> Client:
    client = Client(enforce_csrf_checks=True)
    if user is not None:
        client.force_login(user)
    return client


@pytest.mark.parametrize(
    ("name", "extra"),
    [
        ("accounts:billing_portal", []),
        ("accounts:service_cancel", []),
        ("accounts:service_cancel_undo", []),
        ("accounts:plan_change_preview", [1]),
        ("accounts:logout", None),
    ],
)
def test_each_form_of_a_signed_in_user_refuses_a_post_without_its_csrf_token(owner, service, name, extra):
    client = _csrf_client(owner)
    url = reverse(name, args=[service.pk, *extra]) if extra is not None else reverse(name)

    response = client.post(url, KEY)

    assert response.status_code == 403
    assert "CSRF" in response.content.decode()
    service.refresh_from_db()
    assert service.cancel_at_period_end is False
    assert client.get(reverse("accounts:services")).status_code == 200  # still signed in


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("accounts:login", {"username": "x@example.com", "password": PASSWORD}),
        ("accounts:password_reset", {"email": "x@example.com"}),
    ],
)
def test_the_signed_out_forms_refuse_a_post_without_their_csrf_token(db, name, data):
    assert _csrf_client().post(reverse(name), data).status_code == 403


def test_the_set_password_form_refuses_a_post_without_its_csrf_token(db):
    from django.contrib.auth.tokens import default_token_generator
    from django.utils.encoding import force_bytes
    from django.utils.http import urlsafe_base64_encode

    from tests.accounts.factories import UserFactory

    user = UserFactory()
    client = _csrf_client()
    page = client.get(
        reverse(
            "accounts:password_set",
            kwargs={
                "uidb64": urlsafe_base64_encode(force_bytes(user.pk)),
                "token": default_token_generator.make_token(user),
            },
        ),
        follow=True,
    )

    response = client.post(
        page.redirect_chain[-1][0], {"new_password1": "a quiet orange lamp", "new_password2": "a quiet orange lamp"}
    )

    assert response.status_code == 403
    user.refresh_from_db()
    assert not user.has_usable_password()


def test_every_form_on_the_pages_carries_a_csrf_token(owner, service):
    client = _csrf_client(owner)
    pages = [
        reverse("accounts:services"),
        reverse("accounts:service", args=[service.pk]),
        reverse("accounts:service_cancel", args=[service.pk]),
    ]
    for url in pages:
        html = client.get(url).content.decode()
        assert html.count('method="post"') == html.count('name="csrfmiddlewaretoken"') >= 1, url
    client.logout()
    for url in (reverse("accounts:login"), reverse("accounts:password_reset")):
        html = client.get(url).content.decode()
        assert html.count('method="post"') == html.count('name="csrfmiddlewaretoken"') == 1, url


def test_a_price_this_service_may_not_move_to_is_not_found(client, owner, service):
    from tests.catalog.factories import PriceFactory

    elsewhere = PriceFactory()  # another product, no move allowed to it
    client.force_login(owner)

    response = client.get(reverse("accounts:plan_change_preview", args=[service.pk, elsewhere.pk]))

    assert response.status_code == 404
