"""A paid subscription made the way production makes one, against the Stripe sandbox over HTTP: the checkout API,
the sandbox completing the payment, fulfilment re-reading it, and the first invoice recorded from Stripe's object."""

from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.models import Subscription
from billing.services import invoice_event_apply, subscription_event_apply
from checkout.models import CheckoutSession
from checkout.services import checkout_session_refresh
from core.stripe_api import stripe_client
from provisioning.models import HostingAccount, ProvisioningJob, ProvisioningJobStatus
from tests.provisioning.factories import HostingAccountFactory


def sandbox_subscription(
    *, email: str = "billing.customer@example.com", domain: str = "billing-page.example.com", with_account: bool = True
) -> Subscription:
    call_command("catalog_load", verbosity=0)
    response = APIClient().post(
        "/api/checkout/create-session",
        {
            "planId": "starter",
            "billingCycle": "monthly",
            "trialActive": False,
            "customer": {"name": "Billing Customer", "email": email},
            "domain": {"mode": "new-or-transfer", "value": domain},
        },
        format="json",
    )
    assert response.status_code in (200, 201), response.content
    session = CheckoutSession.objects.get(email=email)
    client = stripe_client()
    client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session.stripe_session_id}/complete")
    checkout_session_refresh(session=session, force=True)
    subscription = Subscription.objects.select_related("customer").get(checkout_session=session)
    now = timezone.now()
    stripe_subscription = client.v1.subscriptions.retrieve(subscription.stripe_subscription_id).to_dict()
    subscription_event_apply(stripe_subscription=stripe_subscription, event_created=now)
    invoice = client.v1.invoices.retrieve(stripe_subscription["latest_invoice"]).to_dict()
    invoice_event_apply(event_type="invoice.paid", stripe_invoice=invoice, event_created=now)
    if with_account and not HostingAccount.objects.filter(subscription=subscription).exists():
        ProvisioningJob.objects.filter(subscription=subscription).update(
            status=ProvisioningJobStatus.SUCCEEDED, attempts=1, finished_at=now
        )
        HostingAccountFactory(subscription=subscription, username="billcust", server="web01.sim.migrahosting.test")
    subscription.refresh_from_db()
    return subscription
