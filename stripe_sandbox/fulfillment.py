"""What Stripe does when a Checkout Session is paid, when its delayed payment settles or fails, and when it expires:
the objects it creates or changes and the events it emits about them, in the order it emits them.

Paid by card, subscription mode (`complete_session`):
    customer.created, payment_method.attached, customer.subscription.created (incomplete), invoice.created (draft),
    invoice.finalized (open), payment_intent.created, charge.succeeded, payment_intent.succeeded, invoice.paid,
    invoice.payment_succeeded, customer.subscription.updated (active), checkout.session.completed
With a free trial nothing is charged: the first invoice is 0 and paid at once, the subscription is `trialing` and
there is no payment intent. Paid by bank debit (delayed): the intent is `processing` (charge.pending,
payment_intent.processing), the invoice stays open and the subscription incomplete, then
checkout.session.completed with payment_status `unpaid`; `settle_delayed_payment` later emits either
    charge.succeeded, payment_intent.succeeded, invoice.paid, invoice.payment_succeeded,
    customer.subscription.updated (active), checkout.session.async_payment_succeeded
or
    charge.failed, payment_intent.payment_failed, invoice.payment_failed, checkout.session.async_payment_failed.
A customer that the session already names is not created again. All callers hold the store's lock.
"""

import calendar
import heapq
from datetime import UTC, datetime

from stripe_sandbox import objects
from stripe_sandbox.amounts import amounts_off, money, per_interval
from stripe_sandbox.objects.payments import BANK_DEBIT, CARD, DECLINE_MESSAGE, DEFAULT_TEST_CARD, TEST_CARDS
from stripe_sandbox.store import Store, new_id
from stripe_sandbox.wire import StripeError, card_declined

DAY = 24 * 3600


def add_interval(timestamp: int, interval: str, count: int) -> int:
    """`timestamp` moved on by `count` days, weeks, months or years; a month end stays within the month (Jan 31 +
    1 month is Feb 28 or 29), as Stripe's billing periods do."""
    if interval == "day":
        return timestamp + count * DAY
    if interval == "week":
        return timestamp + count * 7 * DAY
    months = count if interval == "month" else 12 * count
    start = datetime.fromtimestamp(timestamp, UTC)
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return int(start.replace(year=year, month=month, day=day).timestamp())


class _Flow:
    """One run of Stripe's machinery: the time it happens at and the request (if any) its events name."""

    def __init__(self, store: Store, now: int, request: dict | None):
        self.store = store
        self.now = now
        self.request = request

    def emit(self, type: str, obj: dict, previous_attributes: dict | None = None) -> None:
        self.store.emit(type, obj, request=self.request, previous_attributes=previous_attributes, created=self.now)

    # Payments

    def create_payment_intent(self, *, amount, currency, customer, description, save_payment_method) -> dict:
        intent = self.store.add(
            objects.payment_intent(
                id=new_id("pi_", 24),
                created=self.now,
                amount=amount,
                currency=currency,
                customer=customer["id"] if customer else None,
                description=description,
                payment_method_type=CARD,
                setup_future_usage="off_session" if save_payment_method else None,
                metadata={},
            )
        )
        self.emit("payment_intent.created", intent)
        return intent

    def confirm(self, intent: dict, payment_method: dict) -> dict:
        """Pay `intent` with `payment_method`: a card succeeds at once (or is declined: `declines(...)`), a bank
        debit is processing."""
        delayed = payment_method["type"] == BANK_DEBIT
        declined = declines(self.store, payment_method)
        intent["payment_method"] = payment_method["id"]
        intent["payment_method_types"] = [payment_method["type"]]
        charge = self.store.add(
            objects.charge(
                id=new_id("ch_", 24),
                created=self.now,
                payment_intent=intent,
                payment_method=payment_method,
                status="pending" if delayed else "failed" if declined else "succeeded",
                mandate=self.store.attached.get((payment_method["id"], "mandate")),
            )
        )
        intent["latest_charge"] = charge["id"]
        if delayed:
            intent["status"] = "processing"
            self.emit("charge.pending", charge)
            self.emit("payment_intent.processing", intent)
        elif declined:
            intent.update(
                status="requires_payment_method",
                last_payment_error={
                    "charge": charge["id"],
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "doc_url": "https://stripe.com/docs/error-codes/card-declined",
                    "message": DECLINE_MESSAGE,
                    "payment_method": payment_method,
                    "type": "card_error",
                },
            )
            self.emit("charge.failed", charge)
            self.emit("payment_intent.payment_failed", intent)
        else:
            intent.update(status="succeeded", amount_received=intent["amount"], last_payment_error=None)
            self.emit("charge.succeeded", charge)
            self.emit("payment_intent.succeeded", intent)
        return charge

    def settle(self, intent: dict) -> None:
        charge = self.store.get("charge", intent["latest_charge"])
        charge.update(status="succeeded", paid=True, captured=True, amount_captured=charge["amount"])
        intent.update(status="succeeded", amount_received=intent["amount"])
        self.emit("charge.succeeded", charge)
        self.emit("payment_intent.succeeded", intent)

    def fail(self, intent: dict) -> None:
        charge = self.store.get("charge", intent["latest_charge"])
        charge.update(
            status="failed",
            failure_code="insufficient_funds",
            failure_message="The bank returned the debit: insufficient funds (test account).",
            outcome={
                **charge["outcome"],
                "network_status": "declined_by_network",
                "reason": "insufficient_funds",
                "seller_message": "The bank returned this debit.",
                "type": "issuer_declined",
            },
        )
        # Stripe's last_payment_error also has a code, a message and the payment method; its fixture has `type` only.
        intent.update(status="requires_payment_method", payment_method=None, last_payment_error={"type": "card_error"})
        self.emit("charge.failed", charge)
        self.emit("payment_intent.payment_failed", intent)

    # Invoices and subscriptions

    def open_invoice_payment(self, invoice: dict, intent: dict) -> dict:
        """The invoice payment that ties `invoice` to `intent` (dahlia invoices name neither intent nor charge)."""
        payment = self.store.add(
            objects.invoice_payment(
                id=new_id("inpay_", 24),
                created=self.now,
                invoice=invoice["id"],
                amount_requested=invoice["amount_remaining"],
                currency=invoice["currency"],
                payment_intent=intent["id"],
            )
        )
        self.store.attached[invoice["id"], "payment_intent"] = intent["id"]
        self.store.attached[invoice["id"], "invoice_payment"] = payment["id"]
        return payment

    def finalize_invoice(self, invoice: dict, customer: dict) -> None:
        number = customer["next_invoice_sequence"]
        customer["next_invoice_sequence"] = number + 1
        public_url = self.store.public_url
        invoice.update(
            number=f"{customer['invoice_prefix']}-{number:04d}",
            effective_at=self.now,
            ending_balance=0,
            status="open",
            hosted_invoice_url=f"{public_url}/i/{invoice['id']}",
            invoice_pdf=f"{public_url}/i/{invoice['id']}/pdf",
        )
        invoice["status_transitions"]["finalized_at"] = self.now
        self._apply_customer_balance(invoice, customer)
        self.emit("invoice.finalized", invoice)

    def _apply_customer_balance(self, invoice: dict, customer: dict) -> None:
        """A credit in the customer's balance (negative) pays what it can of the invoice; an invoice whose total is
        negative (a downgrade's credit) leaves its credit there instead of a refund, as Stripe does."""
        balance = customer["balance"]
        if not balance and invoice["total"] >= 0:
            return
        due = max(0, invoice["total"] + balance)
        ending = invoice["total"] + balance - due
        invoice.update(starting_balance=balance, ending_balance=ending, amount_due=due, amount_remaining=due)
        if ending != balance:
            customer["balance"] = ending
            self.emit("customer.updated", customer, {"balance": balance})

    def pay_invoice(self, invoice: dict, subscription: dict | None) -> None:
        invoice.update(
            status="paid",
            amount_paid=invoice["amount_due"],
            amount_remaining=0,
            attempted=True,
            attempt_count=invoice["attempt_count"] or (1 if invoice["amount_due"] else 0),
            auto_advance=False,
            next_payment_attempt=None,
        )
        invoice["status_transitions"]["paid_at"] = self.now
        payment = self.store.find("invoice_payment", self.store.attached.get((invoice["id"], "invoice_payment")) or "")
        if payment is not None:
            payment.update(status="paid", amount_paid=invoice["amount_paid"])
            payment["status_transitions"]["paid_at"] = self.now
        self.emit("invoice.paid", invoice)
        self.emit("invoice.payment_succeeded", invoice)
        if subscription is not None and subscription["status"] == "incomplete":
            subscription["status"] = "active"
            self.emit("customer.subscription.updated", subscription, {"status": "incomplete"})


def declines(store: Store, payment_method: dict) -> bool:
    """Whether every charge on this payment method fails (Stripe's pm_card_chargeCustomerFail)."""
    return bool(store.attached.get((payment_method["id"], "declines")))


def create_payment_method(
    store: Store, *, now: int, test_card: str, customer: dict | None, email=None, name=None, type: str = CARD
) -> dict:
    """A new `pm_...` from one of Stripe's test tokens (`pm_card_visa` ...), attached to `customer` if given."""
    payment_method = store.add(
        objects.payment_method(
            id=new_id("pm_", 24),
            created=now,
            type=type,
            customer=customer["id"] if customer else None,
            email=email,
            name=name,
            test_card=test_card,
        )
    )
    if type == CARD and TEST_CARDS[test_card]["declines"]:
        store.attached[payment_method["id"], "declines"] = True
    if type == BANK_DEBIT:
        # Stripe debits a bank account only under a mandate, which its payment page collects with the account.
        mandate = store.add(objects.mandate(id=new_id("mandate_", 24), accepted_at=now, payment_method=payment_method))
        store.attached[payment_method["id"], "mandate"] = mandate["id"]
    return payment_method


def complete_session(
    store: Store,
    session: dict,
    *,
    now: int,
    payment_status: str,
    email: str | None = None,
    name: str | None = None,
    request: dict | None = None,
    test_card: str = DEFAULT_TEST_CARD,
) -> dict:
    """Pay `session` as its customer would on the payment page: `payment_status` "paid" pays by card (`test_card`,
    one of Stripe's test PaymentMethod tokens), "unpaid" starts a bank debit that `settle_delayed_payment` settles
    later. A card that declines leaves the session open (402), as on Stripe's page, unless nothing is due today (a
    trial): then it is saved, and the first renewal fails."""
    if session["status"] != "open":
        raise StripeError(
            f"This Checkout Session is {session['status']}: only an open session can be completed.",
            param="checkout_session",
        )
    customer = store.find("customer", session["customer"]) if session["customer"] else None
    if customer is not None:
        # A customer on a test clock lives on its time: its subscription starts at the clock's frozen time.
        now = clock_time(store, customer["test_clock"], now)
    email, name = _payer_details(session, customer, email=email, name=name)
    if payment_status == "paid" and TEST_CARDS[test_card]["declines"] and _due_today(store, session):
        raise card_declined()
    flow = _Flow(store, now, request)
    if customer is None and (session["mode"] == "subscription" or session["customer_creation"] == "always"):
        customer = _create_customer(flow, session, email=email, name=name)

    payment_method = create_payment_method(
        store,
        now=now,
        test_card=test_card,
        customer=customer,
        email=email,
        name=name,
        type=CARD if payment_status == "paid" else BANK_DEBIT,
    )
    if customer is not None:
        flow.emit("payment_method.attached", payment_method)
    session["customer"] = customer["id"] if customer else None
    session["customer_details"] = objects.customer_details(email=email, name=name)
    due_now = _charge_session(flow, session, customer, payment_method)
    _mark_complete(flow, session, due_now=due_now, payment_method=payment_method)
    return session


def _payer_details(
    session: dict, customer: dict | None, *, email: str | None, name: str | None
) -> tuple[str, str | None]:
    """The payer's e-mail address and name: as typed on the payment page, else the session's or its customer's.
    An address is required."""
    email = email or session["customer_email"]
    if customer is not None:
        email = email or customer["email"]
        name = name or customer["name"]
    if email is None:
        raise StripeError(
            "The customer's e-mail address is required: this session has no customer or customer_email, so pass "
            "customer_details[email].",
            param="customer_details[email]",
            code="parameter_missing",
        )
    return email, name


def _due_today(store: Store, session: dict) -> int:
    if session["mode"] != "subscription":
        return session["amount_total"]
    trial = (store.attached[session["id"], "subscription_data"] or {}).get("trial_period_days")
    items = store.attached[session["id"], "line_items"]
    return sum(item["amount_total"] for item in items if not (trial and item["price"]["recurring"]))


def clock_time(store: Store, test_clock: str | None, default: int | None = None) -> int:
    """The time of a test clock, or the sandbox's (`default`, else now) for objects on no clock."""
    if test_clock is not None:
        clock = store.find("test_helpers.test_clock", test_clock)
        if clock is not None:
            return clock["frozen_time"]
    return store.now() if default is None else default


def _create_customer(flow: _Flow, session: dict, *, email: str, name: str | None) -> dict:
    customer = flow.store.add(
        objects.customer(
            id=new_id("cus_", 14),
            created=flow.now,
            invoice_prefix=new_id("", 8).upper(),
            email=email,
            name=name,
            description=None,
            phone=None,
            address=None,
            preferred_locales=[session["locale"]] if session["locale"] not in (None, "auto") else [],
            metadata={},
        )
    )
    if session["mode"] == "subscription":
        customer["currency"] = session["currency"]
    flow.emit("customer.created", customer)
    return customer


def _charge_session(flow: _Flow, session: dict, customer: dict | None, payment_method: dict) -> int:
    """Start the subscription (subscription mode) or charge the session's total (payment mode); the amount due
    now."""
    if session["mode"] == "subscription":
        if payment_method["type"] == CARD:
            # The card is kept for renewals: as the subscription's default and the customer's.
            customer["invoice_settings"]["default_payment_method"] = payment_method["id"]
        return _subscribe(flow, session, customer, payment_method)
    due_now = session["amount_total"]
    if due_now:
        intent = flow.create_payment_intent(
            amount=due_now,
            currency=session["currency"],
            customer=customer,
            description=None,
            save_payment_method=False,
        )
        flow.confirm(intent, payment_method)
        session["payment_intent"] = intent["id"]
    return due_now


def _mark_complete(flow: _Flow, session: dict, *, due_now: int, payment_method: dict) -> None:
    if not due_now:
        session["payment_status"] = "no_payment_required"
    else:
        session["payment_status"] = "paid" if payment_method["type"] == CARD else "unpaid"
    session["status"] = "complete"
    # Stripe shows the URL only while the session is open.
    session["url"] = None
    flow.emit("checkout.session.completed", session)


def _subscribe(flow: _Flow, session: dict, customer: dict, payment_method: dict) -> int:
    """Create the subscription, its first invoice and that invoice's payment; the amount due now."""
    store, now = flow.store, flow.now
    items = store.attached[session["id"], "line_items"]
    subscription_data = store.attached[session["id"], "subscription_data"] or {}
    trial_days = subscription_data.get("trial_period_days")
    trial_end = now + trial_days * DAY if trial_days else None
    metadata = subscription_data.get("metadata") or {}
    subscription_id = new_id("sub_", 24)

    subscription_items = _subscription_items(items, subscription_id=subscription_id, now=now, trial_end=trial_end)
    coupon, discount = _redeem_coupon(store, session, customer=customer, subscription_id=subscription_id, now=now)
    invoice, lines = _first_invoice(
        session,
        items,
        subscription_items,
        customer=customer,
        coupon=coupon,
        discount=discount,
        subscription_id=subscription_id,
        metadata=metadata,
        now=now,
        trial_end=trial_end,
    )
    subscription = store.add(
        objects.subscription(
            id=subscription_id,
            created=now,
            customer=customer["id"],
            currency=session["currency"],
            items=list(subscription_items.values()),
            status=_first_status(due_now=invoice["amount_due"], trial_end=trial_end),
            latest_invoice=invoice["id"],
            discounts=[discount["id"]] if discount else [],
            metadata=metadata,
            trial_start=now if trial_end else None,
            trial_end=trial_end,
            default_payment_method=payment_method["id"],
            test_clock=customer["test_clock"],
        )
    )
    _store_first_invoice(store, session, subscription, subscription_items, invoice, lines)
    flow.emit("customer.subscription.created", subscription)
    flow.emit("invoice.created", invoice)
    flow.finalize_invoice(invoice, customer)
    # What the card pays: finalising applied the customer's balance (a credit left by a downgrade, say) to the invoice.
    due_now = invoice["amount_due"]
    _pay_first_invoice(flow, session, subscription, invoice, customer, payment_method, due_now=due_now)
    return due_now


def _subscription_items(items: list[dict], *, subscription_id: str, now: int, trial_end: int | None) -> dict[str, dict]:
    """A subscription item for each recurring line item, keyed by the line item's id; its first period ends with
    the trial, else after one interval."""
    subscription_items = {}
    for item in items:
        recurring = item["price"]["recurring"]
        if recurring:
            subscription_items[item["id"]] = objects.subscription_item(
                id=new_id("si_", 14),
                created=now,
                subscription=subscription_id,
                price=item["price"],
                quantity=item["quantity"],
                current_period_start=now,
                current_period_end=trial_end or add_interval(now, recurring["interval"], recurring["interval_count"]),
            )
    return subscription_items


def _redeem_coupon(
    store: Store, session: dict, *, customer: dict, subscription_id: str, now: int
) -> tuple[dict | None, dict | None]:
    """The session's coupon, redeemed once more, and the discount it gives the subscription (stored); None and None
    when the session has none."""
    session_discount = store.attached[session["id"], "discount"]
    if session_discount is None:
        return None, None
    coupon = store.get("coupon", session_discount["source"]["coupon"])
    coupon["times_redeemed"] += 1
    end = None
    if coupon["duration"] == "repeating":
        end = add_interval(now, "month", coupon["duration_in_months"])
    discount = store.add(
        objects.discount(
            id=new_id("di_", 24),
            coupon_id=coupon["id"],
            checkout_session=session["id"],
            start=now,
            customer=customer["id"],
            subscription=subscription_id,
            end=end,
        )
    )
    return coupon, discount


def _first_invoice(
    session: dict,
    items: list[dict],
    subscription_items: dict[str, dict],
    *,
    customer: dict,
    coupon: dict | None,
    discount: dict | None,
    subscription_id: str,
    metadata: dict,
    now: int,
    trial_end: int | None,
) -> tuple[dict, list[dict]]:
    """The subscription's first invoice (a draft, not stored) and its lines: each recurring item's first period
    (nothing during a trial) and the one-time items."""
    invoice_id = new_id("in_", 24)
    amounts = [0 if trial_end and item["price"]["recurring"] else item["amount_subtotal"] for item in items]
    amounts_discounted = amounts_off(coupon, amounts)
    lines = []
    for item, amount, amount_discounted in zip(items, amounts, amounts_discounted, strict=True):
        subscription_item = subscription_items.get(item["id"])
        description, period_end = _first_line_text(item, subscription_item, now=now, trial_end=trial_end)
        lines.append(
            objects.invoice_line_item(
                id=new_id("il_", 24),
                invoice=invoice_id,
                price=item["price"],
                description=description,
                quantity=item["quantity"],
                amount=amount,
                discount_amounts=[{"amount": amount_discounted, "discount": discount["id"]}] if discount else [],
                period_start=now,
                period_end=period_end,
                subscription=subscription_id,
                subscription_item=subscription_item["id"] if subscription_item else None,
                metadata=dict(metadata) if subscription_item else {},
            )
        )
    invoice = objects.invoice(
        id=invoice_id,
        created=now,
        customer=customer,
        currency=session["currency"],
        lines=lines,
        discounts=[discount["id"]] if discount else [],
        subscription=subscription_id,
        subscription_metadata=metadata or None,
        billing_reason="subscription_create",
        period_start=now,
        period_end=now,
    )
    return invoice, lines


def _first_line_text(item: dict, subscription_item: dict | None, *, now: int, trial_end: int | None) -> tuple[str, int]:
    """A first invoice line's description and the end of the period it bills (now, for a one-time item)."""
    if subscription_item is None:
        return f"{item['quantity']} × {item['description']}", now
    if trial_end:
        return f"Trial period for {item['description']}", trial_end
    price = item["price"]
    unit = f"{money(price['unit_amount'], price['currency'])} / {per_interval(price['recurring'])}"
    return f"{item['quantity']} × {item['description']} (at {unit})", subscription_item["current_period_end"]


def _first_status(*, due_now: int, trial_end: int | None) -> str:
    if trial_end:
        return "trialing"
    # Stripe creates the subscription incomplete and activates it once its first invoice is paid.
    return "incomplete" if due_now else "active"


def _store_first_invoice(
    store: Store, session: dict, subscription: dict, subscription_items: dict, invoice: dict, lines: list[dict]
) -> None:
    """Store the subscription's items, its first invoice and the invoice's lines, and name them on the session."""
    for subscription_item in subscription_items.values():
        store.add(subscription_item)
    store.add(invoice)
    store.attached[subscription["id"], "invoices"] = [invoice["id"]]
    for line in lines:
        store.add(line)
    session["subscription"] = subscription["id"]
    session["invoice"] = invoice["id"]
    # Once paid, a session shows what was due today: for a trial, nothing.
    session["amount_subtotal"] = invoice["subtotal"]
    session["amount_total"] = invoice["total"]
    session["total_details"]["amount_discount"] = invoice["subtotal"] - invoice["total"]


def _pay_first_invoice(
    flow: _Flow,
    session: dict,
    subscription: dict,
    invoice: dict,
    customer: dict,
    payment_method: dict,
    *,
    due_now: int,
) -> None:
    """Charge the first invoice (unless nothing is due); once it is paid, the subscription is active and its first
    renewal scheduled. A payment still processing or declined leaves both as they are."""
    if due_now:
        intent = flow.create_payment_intent(
            amount=due_now,
            currency=session["currency"],
            customer=customer,
            description="Subscription creation",
            save_payment_method=True,
        )
        flow.open_invoice_payment(invoice, intent)
        flow.confirm(intent, payment_method)
        invoice.update(attempted=True, attempt_count=1)
        if intent["status"] != "succeeded":
            return
    flow.pay_invoice(invoice, subscription)
    flow.store.schedule_billing(subscription, min(item["current_period_end"] for item in subscription["items"]["data"]))


def settle_delayed_payment(store: Store, session: dict, *, now: int, succeeded: bool, request: dict | None) -> dict:
    """The bank debit of a session completed with payment_status `unpaid` succeeds or fails."""
    intent = _processing_intent(store, session)
    flow = _Flow(store, now, request)
    invoice = store.get("invoice", session["invoice"]) if session["invoice"] else None
    subscription = store.get("subscription", session["subscription"]) if session["subscription"] else None
    if succeeded:
        flow.settle(intent)
        if invoice is not None:
            flow.pay_invoice(invoice, subscription)
        if subscription is not None:
            store.schedule_billing(
                subscription, min(item["current_period_end"] for item in subscription["items"]["data"])
            )
        session["payment_status"] = "paid"
        flow.emit("checkout.session.async_payment_succeeded", session)
    else:
        flow.fail(intent)
        if invoice is not None:
            # The invoice stays open and the subscription incomplete (Stripe expires it after 23 hours).
            invoice["next_payment_attempt"] = None
            flow.emit("invoice.payment_failed", invoice)
        flow.emit("checkout.session.async_payment_failed", session)
    return session


def _processing_intent(store: Store, session: dict) -> dict:
    intent_id = session["payment_intent"]
    if session["invoice"]:
        intent_id = store.attached.get((session["invoice"], "payment_intent"))
    intent = store.find("payment_intent", intent_id) if intent_id else None
    if session["status"] != "complete" or intent is None or intent["status"] != "processing":
        raise StripeError(
            "This Checkout Session has no delayed payment in progress: complete it with payment_status=unpaid first.",
            param="checkout_session",
        )
    return intent


def expire_session(store: Store, session: dict, *, now: int, request: dict | None) -> dict:
    if session["status"] != "open":
        raise StripeError(
            f"Only Checkout Sessions with a status of `open` can be expired; this one is `{session['status']}`."
        )
    session["status"] = "expired"
    # Stripe shows a session's URL only while the session is open.
    session["url"] = None
    _Flow(store, now, request).emit("checkout.session.expired", session)
    return session


def schedule_expiry(store: Store, session: dict) -> None:
    heapq.heappush(store.expirations, (session["expires_at"], session["id"]))


def expire_due_sessions(store: Store) -> list[str]:
    """Expire the open sessions whose `expires_at` has passed; their ids. Cheap when none is due."""
    now = store.now()
    expired = []
    while store.expirations and store.expirations[0][0] <= now:
        _, id = heapq.heappop(store.expirations)
        session = store.find("checkout.session", id)
        if session is not None and session["status"] == "open":
            expire_session(store, session, now=now, request=None)
            expired.append(id)
    return expired
