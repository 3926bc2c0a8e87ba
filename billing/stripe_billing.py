"""Our calls to Stripe about a subscription after its first payment: cancel, cancel at period end (and undo),
refund, and finding the payment behind an invoice. Each carries the idempotency key of the BillingAction that asked
for it, so a repeated click or a task run twice asks Stripe once; nothing here touches the database."""

import logging

import stripe

from core.exceptions import ApplicationError
from core.stripe_api import stripe_client

logger = logging.getLogger(__name__)


def stripe_subscription_cancel(stripe_subscription_id: str, *, comment: str, idempotency_key: str) -> dict:
    return _call(
        lambda: stripe_client().v1.subscriptions.cancel(
            stripe_subscription_id,
            {"cancellation_details": {"comment": comment[:500]}},
            {"idempotency_key": idempotency_key},
        )
    )


def stripe_subscription_cancel_at_period_end(
    stripe_subscription_id: str, *, cancel: bool, comment: str, idempotency_key: str
) -> dict:
    params: dict = {"cancel_at_period_end": cancel}
    if cancel:
        params["cancellation_details"] = {"comment": comment[:500]}
    return _call(
        lambda: stripe_client().v1.subscriptions.update(
            stripe_subscription_id, params, {"idempotency_key": idempotency_key}
        )
    )


def stripe_refund_create(
    *, payment_intent: str, amount: int | None, metadata: dict[str, str], idempotency_key: str
) -> dict:
    params: dict = {"payment_intent": payment_intent, "reason": "requested_by_customer", "metadata": metadata}
    if amount is not None:
        params["amount"] = amount
    return _call(lambda: stripe_client().v1.refunds.create(params, {"idempotency_key": idempotency_key}))


def stripe_invoice_payment_intent(stripe_invoice_id: str) -> str | None:
    """The payment intent that paid the invoice (since API 2025-03-31 an invoice names its payments, not a charge)."""
    payments = _call(lambda: stripe_client().v1.invoice_payments.list({"invoice": stripe_invoice_id, "limit": 10}))
    for invoice_payment in payments.data:
        payment = invoice_payment.get("payment") or {}
        if invoice_payment.get("status") == "paid" and payment.get("payment_intent"):
            intent = payment["payment_intent"]
            return intent if isinstance(intent, str) else intent.get("id")
    return None


def stripe_invoice_for_payment_intent(payment_intent: str) -> dict | None:
    """The invoice a payment intent paid, or None (a payment that was not for an invoice)."""
    payments = _call(
        lambda: stripe_client().v1.invoice_payments.list(
            {"payment": {"type": "payment_intent", "payment_intent": payment_intent}, "limit": 1}
        )
    )
    if not payments.data:
        return None
    invoice = payments.data[0].get("invoice")
    if isinstance(invoice, str):
        return _call(lambda: stripe_client().v1.invoices.retrieve(invoice)).to_dict()
    return invoice.to_dict() if invoice is not None else None


def stripe_subscription_paid_invoices(stripe_subscription_id: str) -> list[dict]:
    invoices = _call(
        lambda: stripe_client().v1.invoices.list(
            {"subscription": stripe_subscription_id, "status": "paid", "limit": 100}
        )
    )
    return [invoice.to_dict() for invoice in invoices.data]


def _call(request):
    """Run one Stripe request; Stripe's refusals become an ApplicationError that says what Stripe said (these are
    staff's and our workers' calls: the message is for staff, never shown to a customer)."""
    try:
        return request()
    except stripe.InvalidRequestError as error:
        raise ApplicationError(
            f"Stripe refused: {error.user_message or error}", code=error.code or "stripe_refused", status_code=400
        ) from error
    except stripe.CardError as error:
        raise ApplicationError(
            f"Stripe refused the card: {error.user_message or error}", code="card_error", status_code=402
        ) from error
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        logger.warning("Stripe unreachable or busy: %s", error)
        raise ApplicationError(
            "Stripe could not be reached; nothing was changed. Try again in a minute.",
            code="payment_provider_unavailable",
            status_code=503,
        ) from error
    except stripe.StripeError as error:
        logger.warning("Stripe failed: %s %s", error.http_status, error.user_message)
        raise ApplicationError(
            f"Stripe failed ({error.http_status}); try again in a minute.",
            code="payment_provider_error",
            status_code=502,
        ) from error
