"""The billing portal and plan changes from the client area, against the Stripe sandbox."""

import re
from urllib.parse import urlsplit

import pytest
from django.urls import reverse

from billing.models import BillingAction
from catalog.models import Price

pytestmark = pytest.mark.django_db


@pytest.fixture
def bought(world):
    subscription = world.buy("plans@example.com")
    return subscription, subscription.customer.memberships.get(role="owner").user


def test_manage_payment_method_redirects_to_a_portal_session_that_returns_to_the_service(
    client, bought, stripe_sandbox
):
    subscription, owner = bought
    client.force_login(owner)

    response = client.post(reverse("accounts:billing_portal", args=[subscription.pk]))

    assert response.status_code == 302
    assert response["Location"].startswith(stripe_sandbox.url)
    sent = stripe_sandbox.requests(method="POST", path="/v1/billing_portal/sessions")[-1]
    assert subscription.stripe_customer_id in str(sent)
    assert f"/account/services/{subscription.pk}/" in str(sent)


def test_the_portal_is_never_opened_by_a_get(client, bought):
    subscription, owner = bought
    client.force_login(owner)

    assert client.get(reverse("accounts:billing_portal", args=[subscription.pk])).status_code == 405


def test_stripe_refusing_the_portal_is_a_message_on_the_service_page(client, bought, stripe_sandbox):
    subscription, owner = bought
    client.force_login(owner)
    type(subscription).objects.filter(pk=subscription.pk).update(stripe_customer_id="cus_doesnotexist")

    response = client.post(reverse("accounts:billing_portal", args=[subscription.pk]), follow=True)

    assert response.redirect_chain[-1][0] == reverse("accounts:service", args=[subscription.pk])
    assert "The billing portal could not be opened" in response.content.decode()


def test_an_upgrade_shows_the_preview_then_changes_the_plan_once_for_a_double_click(client, world, bought):
    subscription, owner = bought
    premium = Price.objects.get(product__code="premium", billing_cycle="monthly", active=True)
    client.force_login(owner)
    options = client.get(reverse("accounts:plan_change_options", args=[subscription.pk])).content.decode()
    assert f'id="option-{premium.pk}"' in options

    preview = client.get(reverse("accounts:plan_change_preview", args=[subscription.pk, premium.pk])).content.decode()
    charged = re.search(r'id="amount-due-now">([^<]+)<', preview).group(1)
    assert charged == "$1.00"  # 8.99 - 7.99 for a whole month
    assert "$8.99" in re.search(r'id="next-renewal">([^<]+)<', preview).group(1)
    data = dict(re.findall(r'name="(idempotency_key|proration_date)" value="([^"]*)"', preview))
    url = reverse("accounts:plan_change_preview", args=[subscription.pk, premium.pk])
    first = client.post(url, data, follow=True)
    second = client.post(url, data, follow=True)

    for response in (first, second):  # the second submission answers as the first did
        assert "Your plan is now Hosting Premium, monthly." in response.content.decode()
    subscription.refresh_from_db()
    assert subscription.product.code == "premium"
    assert BillingAction.objects.filter(kind="change_plan").count() == 1
    assert BillingAction.objects.get(kind="change_plan").actor == owner


def test_a_move_the_catalog_does_not_allow_is_refused_with_a_message(client, world, bought):
    subscription, owner = bought
    email_plan = Price.objects.filter(product__type="email", active=True).first()
    client.force_login(owner)
    url = reverse("accounts:plan_change_preview", args=[subscription.pk, email_plan.pk])

    preview = client.get(url)
    response = client.post(url, {"idempotency_key": "client-plan-0000000001"}, follow=True)

    assert preview.status_code == 404
    assert "cannot move to that plan" in response.content.decode()
    assert not BillingAction.objects.filter(kind="change_plan").exists()


def test_no_plan_change_while_cancelling(client, world, bought):
    subscription, owner = bought
    type(subscription).objects.filter(pk=subscription.pk).update(cancel_at_period_end=True)
    client.force_login(owner)

    response = client.get(reverse("accounts:plan_change_options", args=[subscription.pk]), follow=True)

    assert "keep it first, then change the plan" in response.content.decode()
    assert urlsplit(response.redirect_chain[-1][0]).path == reverse("accounts:service", args=[subscription.pk])
