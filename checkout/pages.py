"""The pages Stripe sends a customer back to: the order followed live after paying, and a cancelled checkout."""

import re

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from catalog.models import BillingCycle, Product
from checkout.selectors import Fulfilment, checkout_session_public, checkout_session_trial_end
from checkout.services import checkout_session_follow
from core.money import money_format

_STRIPE_SESSION_ID = re.compile(r"^cs_[A-Za-z0-9_]{1,250}$")

# The heading and the one sentence under it, per state: the page and its live updates say the same.
HEADLINES = {
    Fulfilment.PENDING: (
        "We are confirming your payment",
        "Stripe is telling us about your payment; this usually takes a few seconds.",
    ),
    Fulfilment.PAID: (
        "Payment received, thank you",
        "Your payment is confirmed. We are starting to set up your hosting account.",
    ),
    Fulfilment.SETTING_UP: (
        "Setting up your hosting account",
        "Your payment is confirmed and your account is being created; this usually takes under a minute.",
    ),
    Fulfilment.READY: ("Your hosting is ready", "Your hosting account is set up and ready to use."),
    Fulfilment.PAYMENT_FAILED: (
        "Your payment did not go through",
        "Your bank declined the payment, so this order was not completed.",
    ),
    Fulfilment.EXPIRED: (
        "This checkout has expired",
        "The payment page was not completed in time, so this order was not placed.",
    ),
    Fulfilment.NEEDS_REVIEW: (
        "We are checking your order",
        "Something about this order needs one of us to look at it before we set it up.",
    ),
}

PERIOD_PHRASES = {
    BillingCycle.MONTHLY: "a month",
    BillingCycle.YEARLY: "a year",
    BillingCycle.BIENNIAL: "every 2 years",
    BillingCycle.TRIENNIAL: "every 3 years",
}


@require_safe
@never_cache
def checkout_success_page(request):
    """GET /checkout/success/?session_id=cs_...: what was bought and where the order is, as the JSON answer says.

    Works without JavaScript (the page refreshes itself while the order moves); with it, a small script polls the
    JSON endpoint and swaps in this page's new state only when it changed.
    """
    session_id = request.GET.get("session_id", "")
    session = (
        checkout_session_follow(stripe_session_id=session_id, full=True)
        if _STRIPE_SESSION_ID.match(session_id)
        else None
    )
    if session is None:
        return render(request, "checkout/not_found.html", {"storefront_url": settings.STOREFRONT_URL}, status=404)

    public = checkout_session_public(session=session)
    state = public["fulfilment"]
    product = Product.objects.filter(code=session.product_code).only("name").first()
    cycle = BillingCycle(session.billing_cycle) if session.billing_cycle in BillingCycle.values else None
    heading, summary = HEADLINES[state]
    paid = state in (Fulfilment.PAID, Fulfilment.SETTING_UP, Fulfilment.READY)
    steps = [
        _step("Confirming your payment", "Payment confirmed", done=paid, current=state == Fulfilment.PENDING),
        _step(
            "Setting up your hosting account",
            "Hosting account set up",
            done=state == Fulfilment.READY,
            current=state in (Fulfilment.PAID, Fulfilment.SETTING_UP),
            upcoming="Hosting account set-up",
        ),
        _step("Ready to use", "Ready to use", done=state == Fulfilment.READY, current=False),
    ]
    context = {
        "session": session,
        "state": state,
        "final": state in Fulfilment.FINAL,
        "failed": state in (Fulfilment.PAYMENT_FAILED, Fulfilment.EXPIRED),
        "heading": heading,
        "summary": summary,
        "steps": steps,
        "plan_name": product.name if product else session.product_code,
        "cycle_label": cycle.label if cycle else session.billing_cycle,
        "domain": (session.domain_info or {}).get("value", ""),
        "paid": paid,
        "charged_now": money_format(public["amount_total"], session.currency),
        "discount": money_format(session.amount_discount, session.currency) if session.amount_discount else None,
        "price_per_cycle": money_format(session.amount, session.currency),
        "period_phrase": PERIOD_PHRASES.get(session.billing_cycle, ""),
        "trial_days": session.trial_days,
        "trial_end": checkout_session_trial_end(session=session),
        "poll_url": f"/api/checkout/session/{session.stripe_session_id}",
        "storefront_url": settings.STOREFRONT_URL,
    }
    return render(request, "checkout/success.html", context)


def _step(current_label: str, done_label: str, *, done: bool, current: bool, upcoming: str | None = None) -> dict:
    # A step's words say where it is ("Confirming your payment" while it runs), not only the icon beside it.
    label = done_label if done else current_label if current else (upcoming or current_label)
    return {"label": label, "done": done, "current": current}


@require_safe
def checkout_cancel_page(request):
    """GET /checkout/cancel/: nothing was charged; back to the plans to start again."""
    return render(request, "checkout/cancel.html", {"storefront_url": settings.STOREFRONT_URL})
