"""Billing against the Stripe sandbox, in-process: buy through the real checkout service, pay on the sandbox, move its
clock, and hand every event Stripe made to dj-stripe exactly as its webhook view does (our receivers run inside)."""

from dataclasses import dataclass, field

import pytest
from django.conf import settings
from django.core.management import call_command
from djstripe import models as djstripe_models

from accounts.models import Subscription
from checkout.services import checkout_session_create
from config.celery import app as celery_app
from core.stripe_api import stripe_client

DAY = 24 * 60 * 60


@pytest.fixture
def tasks_in_process():
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@dataclass
class StripeWorld:
    """The sandbox as a customer and Stripe's clock see it, with every event processed by dj-stripe once."""

    sandbox: object
    capture: object  # pytest-django's django_capture_on_commit_callbacks: what commits would send, run in-process
    seen: set[str] = field(default_factory=set)

    def api(self, method: str, path: str, **params) -> dict:
        # Stripe's JSON as sent (the SDK's objects turn some numbers into Decimals, which dj-stripe cannot store).
        return stripe_client().raw_request(method, path, **params).data

    def buy(
        self, email: str, *, plan: str = "starter", cycle: str = "monthly", card: str = "pm_card_visa"
    ) -> Subscription:
        session = checkout_session_create(plan_code=plan, billing_cycle=cycle, email=email, customer_name="Buyer")
        self.api(
            "post", f"/v1/test_helpers/checkout/sessions/{session.stripe_session_id}/complete", payment_method=card
        )
        self.process()
        return Subscription.objects.select_related("customer").get(checkout_session=session)

    def set_card(self, subscription: Subscription, card: str) -> str:
        """The customer's default card from now on (renewals charge it)."""
        method = self.api("post", f"/v1/payment_methods/{card}/attach", customer=subscription.stripe_customer_id)
        self.api(
            "post",
            f"/v1/customers/{subscription.stripe_customer_id}",
            invoice_settings={"default_payment_method": method["id"]},
        )
        self.api(
            "post", f"/v1/subscriptions/{subscription.stripe_subscription_id}", default_payment_method=method["id"]
        )
        return method["id"]

    def advance(self, *, days: float) -> None:
        self.sandbox._control("POST", "clock/advance", {"seconds": int(days * DAY)})
        self.process()

    def events(self) -> list[dict]:
        events, starting_after = [], None
        while True:
            params = {"limit": 100, **({"starting_after": starting_after} if starting_after else {})}
            page = self.api("get", "/v1/events", **params)
            events += page["data"]
            if not page["has_more"]:
                return list(reversed(events))
            starting_after = page["data"][-1]["id"]

    def process(self, events: list[dict] | None = None) -> list[dict]:
        """Hand each new event (oldest first) to dj-stripe, as its webhook view does once the signature checks."""
        new = [event for event in (events if events is not None else self.events()) if event["id"] not in self.seen]
        for event in new:
            with self.capture(execute=True):
                djstripe_models.Event.process(data=event, api_key=settings.STRIPE_SECRET_KEY)
            self.seen.add(event["id"])
        return new


@pytest.fixture
def world(stripe_sandbox, db, settings, tasks_in_process, django_capture_on_commit_callbacks) -> StripeWorld:
    call_command("catalog_load", verbosity=0)
    settings.PROVISIONING_BACKEND = "simulated"
    settings.PROVISIONING_RETRY_BASE_SECONDS = 0
    settings.PROVISIONING_RETRY_CAP_SECONDS = 0
    return StripeWorld(sandbox=stripe_sandbox, capture=django_capture_on_commit_callbacks)
