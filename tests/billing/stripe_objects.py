"""Stripe objects as API version 2026-05-27.dahlia shapes them (the fields billing reads), for tests that hand
events to the services directly. Times are unix seconds, as Stripe sends them."""

from datetime import datetime


def ts(moment: datetime) -> int:
    return int(moment.timestamp())


def stripe_invoice(
    *,
    id: str,
    subscription: str,
    status: str,
    created: datetime,
    period_start: datetime,
    period_end: datetime,
    amount: int = 799,
    billing_reason: str = "subscription_cycle",
    attempt_count: int = 0,
    next_payment_attempt: datetime | None = None,
    paid_at: datetime | None = None,
    test_clock: str | None = None,
) -> dict:
    paid = status == "paid"
    return {
        "id": id,
        "object": "invoice",
        "status": status,
        "billing_reason": billing_reason,
        "currency": "usd",
        "number": f"SBX-{id[-6:].upper()}",
        "customer": "cus_test",
        "created": ts(created),
        "amount_due": amount,
        "amount_paid": amount if paid else 0,
        "amount_remaining": 0 if paid else amount,
        "attempt_count": attempt_count,
        "attempted": attempt_count > 0,
        "next_payment_attempt": ts(next_payment_attempt) if next_payment_attempt else None,
        "hosted_invoice_url": f"https://invoice.stripe.test/i/{id}",
        "invoice_pdf": f"https://pay.stripe.test/{id}/pdf",
        "parent": {
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"subscription": subscription, "metadata": {}},
        },
        "lines": {
            "object": "list",
            "data": [
                {
                    "id": f"il_{id}",
                    "object": "line_item",
                    "amount": amount,
                    "period": {"start": ts(period_start), "end": ts(period_end)},
                }
            ],
        },
        "period_start": ts(period_start),
        "period_end": ts(period_end),
        "status_transitions": {
            "finalized_at": ts(created),
            "paid_at": ts(paid_at) if paid_at else None,
            "marked_uncollectible_at": None,
            "voided_at": None,
        },
        "test_clock": test_clock,
    }


def stripe_subscription(
    *,
    id: str,
    status: str,
    period_start: datetime,
    period_end: datetime,
    cancel_at_period_end: bool = False,
    canceled_at: datetime | None = None,
    ended_at: datetime | None = None,
    cancellation_reason: str | None = None,
    test_clock: str | None = None,
) -> dict:
    return {
        "id": id,
        "object": "subscription",
        "status": status,
        "customer": "cus_test",
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": ts(period_end) if cancel_at_period_end else None,
        "canceled_at": ts(canceled_at) if canceled_at else None,
        "ended_at": ts(ended_at) if ended_at else None,
        "cancellation_details": {"reason": cancellation_reason, "comment": None, "feedback": None},
        "items": {
            "object": "list",
            "data": [
                {
                    "id": f"si_{id}",
                    "object": "subscription_item",
                    "current_period_start": ts(period_start),
                    "current_period_end": ts(period_end),
                }
            ],
        },
        "test_clock": test_clock,
    }


def stripe_refund(
    *,
    id: str,
    payment_intent: str,
    amount: int,
    created: datetime,
    subscription_id: int | None = None,
    status: str = "succeeded",
) -> dict:
    return {
        "id": id,
        "object": "refund",
        "amount": amount,
        "currency": "usd",
        "status": status,
        "payment_intent": payment_intent,
        "charge": f"ch_{payment_intent[3:]}",
        "reason": "requested_by_customer",
        "created": ts(created),
        "metadata": {"subscription_id": str(subscription_id)} if subscription_id else {},
    }


def stripe_charge(*, payment_intent: str, amount: int, amount_refunded: int) -> dict:
    return {
        "id": f"ch_{payment_intent[3:]}",
        "object": "charge",
        "amount": amount,
        "amount_refunded": amount_refunded,
        "refunded": amount_refunded >= amount,
        "payment_intent": payment_intent,
        "currency": "usd",
    }
