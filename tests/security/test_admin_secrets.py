"""No secret on any admin page: every changelist and change page of every registered model, rendered for a superuser
with real rows (a checkout paid at the sandbox and processed by dj-stripe, which stores its API key; a webhook
endpoint with its secret; a lock record), shows neither the Stripe key nor a webhook or HMAC secret, nor Django's key.
dj-stripe's models are read-only and for superusers only."""

import io
import json
import time
import uuid

import pytest
import requests
import stripe
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.management import call_command
from django.test import Client
from django.urls import NoReverseMatch, reverse
from djstripe import models as djstripe_models
from rest_framework.test import APIClient

from tests.accounts.factories import UserFactory

pytestmark = pytest.mark.django_db

WEBHOOK_SECRET = "whsec_" + "W3bh00kS3cr3t" * 3
PROVISIONING_SECRET = "hmac-" + "Pr0v1s10n1ngS3cr3t" * 2


@pytest.fixture
def paid_checkout(stripe_sandbox, settings):
    """A checkout made through our API, paid at the sandbox, each of its events processed by dj-stripe (which writes
    its APIKey row and the account, customer, session, subscription, invoice ... rows)."""
    settings.PROVISIONING_HTTP_SECRET = PROVISIONING_SECRET
    call_command("catalog_load", verbosity=0)
    created = APIClient().post(
        "/api/checkout/create-session",
        {
            "planId": "starter",
            "billingCycle": "monthly",
            "trialActive": False,
            "customer": {"name": "John Doe", "email": "john@example.com"},
        },
        format="json",
    )
    assert created.status_code == 200, created.content
    client = stripe.StripeClient(
        settings.STRIPE_SECRET_KEY, base_addresses={"api": stripe_sandbox.url}, max_network_retries=0
    )
    client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{created.json()['sessionId']}/complete")
    events = requests.get(
        f"{stripe_sandbox.url}/v1/events?limit=100",
        timeout=10,
        headers={"Authorization": f"Bearer {settings.STRIPE_SECRET_KEY}"},
    ).json()["data"]
    for event in reversed(events):  # oldest first, as the webhook view would have them
        djstripe_models.Event.process(data=event, api_key=settings.STRIPE_SECRET_KEY)
    endpoint = djstripe_models.WebhookEndpoint.objects.create(
        id="we_test_secrets",
        url="https://shop.test/api/webhooks/stripe/x/",
        enabled_events=["*"],
        status="enabled",
        secret=WEBHOOK_SECRET,
        livemode=False,
        djstripe_uuid=uuid.uuid4(),
    )
    # One delivery through our webhook view too, so its stored trigger (headers and body) is on a page as well.
    body = json.dumps(events[0]).encode()
    timestamp = int(time.time())
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body.decode()}", WEBHOOK_SECRET)
    delivered = Client().post(
        f"/api/webhooks/stripe/{endpoint.djstripe_uuid}/",
        data=body,
        content_type="application/json",
        HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}",
        HTTP_X_DJSTRIPE_WEBHOOK_SECRET=WEBHOOK_SECRET,
    )
    assert delivered.status_code == 200 and djstripe_models.WebhookEventTrigger.objects.exists()
    assert djstripe_models.APIKey.objects.filter(secret=settings.STRIPE_SECRET_KEY).exists()


def secrets() -> list[str]:
    return [
        settings.STRIPE_SECRET_KEY,
        WEBHOOK_SECRET,
        PROVISIONING_SECRET,
        settings.SECRET_KEY,
        *djstripe_models.WebhookEndpoint.objects.values_list("secret", flat=True),
    ]


def admin_pages():
    for model in admin.site._registry:
        app_label, model_name = model._meta.app_label, model._meta.model_name
        yield reverse(f"admin:{app_label}_{model_name}_changelist")
        obj = model.objects.first()
        if obj is not None:
            try:
                yield reverse(f"admin:{app_label}_{model_name}_change", args=[obj.pk])
            except NoReverseMatch:
                pass


def test_no_admin_page_shows_a_secret_to_a_superuser(client, paid_checkout):
    root = UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(root)
    client.post(reverse("accounts:login"), {"username": "john@example.com", "password": "wrong"})  # a lock record

    pages = list(admin_pages())
    leaks, seen = [], 0
    client.raise_request_exception = False
    broken = []
    for url in pages:
        response = client.get(url)
        if response.status_code != 200:
            broken.append((url, response.status_code))
            continue
        html = response.content.decode()
        seen += 1
        leaks += [(url, secret[:10]) for secret in secrets() if secret in html]

    assert not leaks
    assert not broken
    assert seen > 60  # every model, and a change page for each that has a row


def test_the_api_key_admin_is_gone_and_dj_stripes_pages_are_read_only(client, paid_checkout):
    root = UserFactory(email="root@example.com", is_staff=True, is_superuser=True)
    client.force_login(root)
    customer = djstripe_models.Customer.objects.first()

    page = client.get(reverse("admin:djstripe_customer_change", args=[customer.pk])).content.decode()

    assert not admin.site.is_registered(djstripe_models.APIKey)
    assert 'name="_save"' not in page
    assert 'class="deletelink"' not in page
    assert client.post(reverse("admin:djstripe_customer_change", args=[customer.pk]), {}).status_code == 403
    assert client.get(reverse("admin:djstripe_customer_add")).status_code == 403
    with pytest.raises(NoReverseMatch):
        reverse("admin:djstripe_custom_action", args=["_cancel", "subscription"])


def test_staff_with_dj_stripe_permissions_still_do_not_see_its_pages(client, paid_checkout):
    staff = UserFactory(email="staff@example.com", is_staff=True)
    staff.user_permissions.add(*Permission.objects.filter(content_type__app_label="djstripe"))
    client.force_login(staff)

    assert client.get(reverse("admin:djstripe_event_changelist")).status_code == 403
    assert "djstripe" not in client.get(reverse("admin:index")).content.decode()


def test_a_rolled_key_is_pruned_from_the_database_and_the_current_one_kept(paid_checkout, settings):
    rolled = "sk_test_" + "R0ll3dK3yR0ll3dK3y" * 2
    djstripe_models.APIKey.objects.create(secret=rolled, type="secret", livemode=False)
    output = io.StringIO()

    call_command("stripe_apikey_prune", stdout=output)

    assert list(djstripe_models.APIKey.objects.values_list("secret", flat=True)) == [settings.STRIPE_SECRET_KEY]
    assert rolled not in output.getvalue() and settings.STRIPE_SECRET_KEY not in output.getvalue()
