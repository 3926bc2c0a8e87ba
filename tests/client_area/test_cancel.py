"""Cancel at period end and undo from the client area, against the Stripe sandbox: the customer's click reaches
Stripe through billing's services, with the customer as the actor, and Stripe's events agree afterwards."""

import re

import pytest
from django.urls import reverse

from billing.models import BillingAction

pytestmark = pytest.mark.django_db


@pytest.fixture
def bought(world):
    subscription = world.buy("cancel.me@example.com")
    owner = subscription.customer.memberships.get(role="owner").user
    return subscription, owner


def _key(html: str) -> str:
    return re.search(r'name="idempotency_key" value="([^"]+)"', html).group(1)


def test_the_customer_cancels_at_period_end_after_a_confirmation_and_undoes_it(client, world, bought):
    subscription, owner = bought
    client.force_login(owner)
    confirm = client.get(reverse("accounts:service_cancel", args=[subscription.pk])).content.decode()
    assert "keeps working until" in confirm

    cancelled = client.post(
        reverse("accounts:service_cancel", args=[subscription.pk]), {"idempotency_key": _key(confirm)}, follow=True
    )
    world.process()

    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is True and subscription.status == "active"
    page = cancelled.content.decode()
    assert "Your service is cancelled: it keeps running until" in page
    assert 'id="undo-cancel"' in page and "Cancels on " in page
    action = BillingAction.objects.get(kind="cancel_at_period_end")
    assert (action.actor, action.reason, action.status) == (
        owner,
        "Cancelled by the customer in the client area",
        "done",
    )

    kept = client.post(
        reverse("accounts:service_cancel_undo", args=[subscription.pk]), {"idempotency_key": _key(page)}, follow=True
    )
    world.process()

    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False
    assert "no longer cancelled" in kept.content.decode()
    assert BillingAction.objects.get(kind="undo_cancel").actor == owner
    stripe_subscription = world.api("get", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert stripe_subscription["cancel_at_period_end"] is False


def test_a_double_click_on_cancel_asks_stripe_once(client, world, bought, stripe_sandbox):
    subscription, owner = bought
    client.force_login(owner)
    key = _key(client.get(reverse("accounts:service_cancel", args=[subscription.pk])).content.decode())
    before = len(
        stripe_sandbox.requests(method="POST", path=f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    )

    first = client.post(
        reverse("accounts:service_cancel", args=[subscription.pk]), {"idempotency_key": key}, follow=True
    )
    second = client.post(
        reverse("accounts:service_cancel", args=[subscription.pk]), {"idempotency_key": key}, follow=True
    )

    assert BillingAction.objects.filter(kind="cancel_at_period_end").count() == 1
    sent = stripe_sandbox.requests(method="POST", path=f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert len(sent) - before == 1
    for response in (first, second):
        assert "Your service is cancelled" in response.content.decode()


def test_a_refusal_is_a_message_on_the_service_page_not_an_error_page(client, world, bought):
    subscription, owner = bought
    client.force_login(owner)
    page = client.get(reverse("accounts:service", args=[subscription.pk])).content.decode()
    assert 'id="undo-cancel"' not in page

    response = client.post(
        reverse("accounts:service_cancel_undo", args=[subscription.pk]),
        {"idempotency_key": "client-undo-00000000001"},
        follow=True,
    )

    assert response.status_code == 200
    assert "Only a subscription that cancels at the end of its period can be kept." in response.content.decode()


def test_a_form_without_its_key_asks_again(client, world, bought):
    subscription, owner = bought
    client.force_login(owner)

    response = client.post(reverse("accounts:service_cancel", args=[subscription.pk]), {}, follow=True)

    assert "out of date" in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.cancel_at_period_end is False
