"""Builders for payments: the payment method the customer paid with, the PaymentIntent and its Charge.

The sandbox pays with Stripe's test cards (`TEST_CARDS`: 4242 4242 4242 4242 succeeds at once, 4000 0000 0000 0341
attaches to a customer but every charge on it is declined), or a test US bank account (ACH Direct Debit: a delayed
payment, `processing` until it succeeds or fails).
"""

from stripe_sandbox.objects.core import list_object

CARD = "card"
BANK_DEBIT = "us_bank_account"
PAYMENT_METHOD_TYPES = (CARD, BANK_DEBIT)

# Stripe's test PaymentMethod tokens: using one creates a new `pm_...` with that card's details.
TEST_CARDS = {
    "pm_card_visa": {"brand": "visa", "last4": "4242", "fingerprint": "SbxLocalCard4242", "declines": False},
    "pm_card_mastercard": {
        "brand": "mastercard",
        "last4": "4444",
        "fingerprint": "SbxLocalCard4444",
        "declines": False,
    },
    "pm_card_chargeCustomerFail": {
        "brand": "visa",
        "last4": "0341",
        "fingerprint": "SbxLocalCard0341",
        "declines": True,
    },
}
DEFAULT_TEST_CARD = "pm_card_visa"
DECLINE_MESSAGE = "Your card was declined."


def _billing_details(email: str | None, name: str | None) -> dict:
    address = dict.fromkeys(("city", "country", "line1", "line2", "postal_code", "state"))
    return {"address": address, "email": email, "name": name, "phone": None, "tax_id": None}


def payment_method(
    *,
    id: str,
    created: int,
    type: str,
    customer: str | None,
    email: str | None,
    name: str | None,
    test_card: str = DEFAULT_TEST_CARD,
) -> dict:
    """A card (one of `TEST_CARDS`) or a test bank account."""
    card = TEST_CARDS[test_card]
    obj = {
        "id": id,
        "object": "payment_method",
        "allow_redisplay": "limited",
        "billing_details": _billing_details(email, name),
        "created": created,
        "customer": customer,
        "customer_account": None,
        "livemode": False,
        "metadata": {},
        "type": type,
    }
    if type == CARD:
        obj["card"] = {
            "brand": card["brand"],
            "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
            "country": "US",
            "display_brand": card["brand"],
            "exp_month": 12,
            "exp_year": 2034,
            "fingerprint": card["fingerprint"],
            "funding": "credit",
            "generated_from": None,
            "last4": card["last4"],
            "networks": {"available": [card["brand"]], "preferred": None},
            "regulated_status": "unregulated",
            "three_d_secure_usage": {"supported": True},
            "wallet": None,
        }
    else:
        obj["us_bank_account"] = {
            "account_holder_type": "individual",
            "account_type": "checking",
            "bank_name": "STRIPE TEST BANK",
            "financial_connections_account": None,
            "fingerprint": "SbxLocalBank6789",
            "last4": "6789",
            "networks": {"preferred": "ach", "supported": ["ach"]},
            "routing_number": "110000000",
            "status_details": {},
        }
    return obj


def mandate(*, id: str, accepted_at: int, payment_method: dict) -> dict:
    """The customer's permission to debit a bank account, given on the payment page: multi-use, so renewals debit
    the same account under it. Stripe records the browser's address and user agent; the sandbox records its own."""
    return {
        "id": id,
        "object": "mandate",
        "customer_acceptance": {
            "accepted_at": accepted_at,
            "online": {"ip_address": "127.0.0.1", "user_agent": "Stripe sandbox payment page"},
            "type": "online",
        },
        "livemode": False,
        "multi_use": {},
        "payment_method": payment_method["id"],
        "payment_method_details": {"type": BANK_DEBIT, BANK_DEBIT: {"collection_method": None}},
        "status": "active",
        "type": "multi_use",
    }


def payment_intent(
    *,
    id: str,
    created: int,
    amount: int,
    currency: str,
    customer: str | None,
    description: str | None,
    payment_method_type: str,
    setup_future_usage: str | None,
    metadata: dict,
) -> dict:
    """A PaymentIntent as created, before the payment method is confirmed on it."""
    return {
        "id": id,
        "object": "payment_intent",
        "amount": amount,
        "amount_capturable": 0,
        "amount_details": {"tip": {}},
        "amount_received": 0,
        "application": None,
        "application_fee_amount": None,
        "automatic_payment_methods": None,
        "canceled_at": None,
        "cancellation_reason": None,
        "capture_method": "automatic",
        "client_secret": f"{id}_secret_SbxLocal{created}",
        "confirmation_method": "automatic",
        "created": created,
        "currency": currency,
        "customer": customer,
        "customer_account": None,
        "description": description,
        "excluded_payment_method_types": None,
        "last_payment_error": None,
        "latest_charge": None,
        "livemode": False,
        "managed_payments": {"enabled": False},
        "metadata": metadata,
        "next_action": None,
        "on_behalf_of": None,
        "payment_method": None,
        "payment_method_configuration_details": None,
        "payment_method_options": {},
        "payment_method_types": [payment_method_type],
        "processing": None,
        "receipt_email": None,
        "review": None,
        "setup_future_usage": setup_future_usage,
        "shipping": None,
        "source": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": "requires_payment_method",
        "transfer_data": None,
        "transfer_group": None,
    }


def charge(
    *,
    id: str,
    created: int,
    payment_intent: dict,
    payment_method: dict,
    status: str,
    mandate: str | None = None,
) -> dict:
    """The charge a confirmed PaymentIntent makes: `succeeded` (card), `failed` (a declined card), or `pending` (bank
    debit, under the payment method's `mandate`) until it settles."""
    succeeded = status == "succeeded"
    declined = status == "failed"
    if payment_method["type"] == CARD:
        card = payment_method["card"]
        details = {
            "card": {
                "amount_authorized": None if declined else payment_intent["amount"],
                "authorization_code": None if declined else "123456",
                "brand": card["brand"],
                "checks": {"address_line1_check": None, "address_postal_code_check": None, "cvc_check": "pass"},
                "country": "US",
                "exp_month": payment_method["card"]["exp_month"],
                "exp_year": payment_method["card"]["exp_year"],
                "extended_authorization": {"status": "disabled"},
                "fingerprint": payment_method["card"]["fingerprint"],
                "funding": "credit",
                "incremental_authorization": {"status": "unavailable"},
                "installments": None,
                "last4": card["last4"],
                "mandate": None,
                "multicapture": {"status": "unavailable"},
                "network": card["brand"],
                "network_token": {"used": False},
                "network_transaction_id": "SBX0000000000001",
                "overcapture": {"maximum_amount_capturable": payment_intent["amount"], "status": "unavailable"},
                "regulated_status": "unregulated",
                "three_d_secure": None,
                "transaction_link_id": None,
                "wallet": None,
            },
            "type": CARD,
        }
    else:
        bank = payment_method["us_bank_account"]
        details = {
            "type": BANK_DEBIT,
            "us_bank_account": {
                "account_holder_type": bank["account_holder_type"],
                "account_type": bank["account_type"],
                "bank_name": bank["bank_name"],
                "fingerprint": bank["fingerprint"],
                "last4": bank["last4"],
                "mandate": mandate,
                "payment_reference": None,
                "routing_number": bank["routing_number"],
            },
        }
    return {
        "id": id,
        "object": "charge",
        "amount": payment_intent["amount"],
        "amount_captured": payment_intent["amount"] if succeeded else 0,
        "amount_refunded": 0,
        "application": None,
        "application_fee": None,
        "application_fee_amount": None,
        # The sandbox keeps no balance: no balance transaction behind a charge.
        "balance_transaction": None,
        "billing_details": dict(payment_method["billing_details"]),
        "calculated_statement_descriptor": "SANDBOX",
        "captured": succeeded,
        "created": created,
        "currency": payment_intent["currency"],
        "customer": payment_intent["customer"],
        "description": payment_intent["description"],
        "disputed": False,
        "failure_balance_transaction": None,
        "failure_code": "card_declined" if declined else None,
        "failure_message": DECLINE_MESSAGE if declined else None,
        "fraud_details": {},
        "livemode": False,
        "metadata": dict(payment_intent["metadata"]),
        "on_behalf_of": None,
        "outcome": {
            "advice_code": "try_again_later" if declined else None,
            "network_advice_code": None,
            "network_decline_code": None,
            "network_status": "declined_by_network" if declined else "approved_by_network",
            "reason": "generic_decline" if declined else None,
            "seller_message": (
                "The bank did not return any further details with this decline." if declined else "Payment complete."
            ),
            "type": "issuer_declined" if declined else "authorized",
        },
        "paid": succeeded,
        "payment_intent": payment_intent["id"],
        "payment_method": payment_method["id"],
        "payment_method_details": details,
        "receipt_email": None,
        "receipt_number": None,
        "receipt_url": None,
        "refunded": False,
        "refunds": list_object([], url=f"/v1/charges/{id}/refunds", has_more=False),
        "review": None,
        "shipping": None,
        "source": None,
        "source_transfer": None,
        "statement_descriptor": None,
        "statement_descriptor_suffix": None,
        "status": status,
        "transfer_data": None,
        "transfer_group": None,
    }


def refund(
    *,
    id: str,
    created: int,
    charge: dict,
    amount: int,
    reason: str | None,
    metadata: dict,
) -> dict:
    """A refund of (part of) a card charge; card refunds succeed at once in test mode."""
    return {
        "id": id,
        "object": "refund",
        "amount": amount,
        "balance_transaction": None,
        "charge": charge["id"],
        "created": created,
        "currency": charge["currency"],
        "customer": charge["customer"],
        "customer_account": None,
        "destination_details": {"card": {"type": "refund"}, "type": "card"},
        "metadata": metadata,
        "payment_intent": charge["payment_intent"],
        "payment_method": charge["payment_method"],
        "reason": reason,
        "receipt_number": None,
        "source_transfer_reversal": None,
        "status": "succeeded",
        "transfer_reversal": None,
    }
