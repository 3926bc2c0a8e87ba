"""The hosted checkout page a session's `url` points at (`/c/pay/{id}`), with its Pay and Cancel buttons.

Pay completes the session as a customer paying by card would (a second button pays by bank debit, a delayed
payment that `POST /v1/test_helpers/checkout/sessions/{id}/async_payment` settles; a third uses Stripe's test card
that attaches but is declined on every charge), then goes to the success URL.
"""

import re
from html import escape
from urllib.parse import parse_qsl, quote, unquote

from stripe_sandbox import fulfillment
from stripe_sandbox.amounts import cycle, money
from stripe_sandbox.responses import Response, html_response
from stripe_sandbox.store import Store
from stripe_sandbox.wire import EMAIL, StripeError

_PATH = re.compile(r"/c/pay/([^/]+)(/pay|/cancel)?")

_STYLE = """
body { font-family: system-ui, sans-serif; background: #f6f8fa; color: #1a1f36; margin: 0; }
main { max-width: 28rem; margin: 3rem auto; background: #fff; padding: 2rem; border-radius: 8px;
       box-shadow: 0 1px 3px rgba(0, 0, 0, .12); }
.badge { display: inline-block; background: #ffde92; color: #6a4a00; font-size: .75rem; padding: .15rem .5rem;
         border-radius: 4px; margin: 0 0 1rem; }
h1 { font-size: 1.25rem; margin: 0 0 1.5rem; }
table { width: 100%; border-collapse: collapse; }
td { padding: .5rem 0; vertical-align: top; }
td.amount { text-align: right; white-space: nowrap; }
small { color: #697386; }
tr.total td { border-top: 1px solid #e3e8ee; font-weight: 600; padding-top: .75rem; }
.email { margin: 1.5rem 0; }
form { display: inline; }
button { font-size: 1rem; padding: .6rem 1.4rem; border-radius: 6px; border: 1px solid #c1c9d2; background: #fff;
         cursor: pointer; }
button.pay { background: #635bff; border-color: #635bff; color: #fff; margin-right: .5rem; }
button.bank { margin-right: .5rem; }
label { display: block; margin: 1.5rem 0; }
input[type=email] { display: block; width: 100%; box-sizing: border-box; font-size: 1rem; padding: .5rem;
                    margin-top: .25rem; border: 1px solid #c1c9d2; border-radius: 6px; }
"""


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)} · Stripe sandbox</title><style>{_STYLE}</style></head>"
        f'<body><main><p class="badge">Test mode · Stripe sandbox · no real payment</p>{body}</main></body></html>\n'
    )


def _message(status: int, title: str, text: str) -> Response:
    return html_response(status, _document(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"))


def _checkout_page(store: Store, session: dict) -> str:
    currency = session["currency"]
    items = store.attached[session["id"], "line_items"]
    subscription_data = store.attached[session["id"], "subscription_data"] or {}
    trial_days = subscription_data.get("trial_period_days")

    rows = []
    due_today = 0
    for item in items:
        price = item["price"]
        product = store.find("product", price["product"])
        each = f"{money(price['unit_amount'], currency)} {cycle(price['recurring'])}"
        if item["quantity"] > 1:
            each = f"{item['quantity']} × {each}"
        description = f"<br><small>{escape(product['description'])}</small>" if product["description"] else ""
        rows.append(
            f"<tr><td><strong>{escape(item['description'])}</strong>{description}<br><small>{escape(each)}</small>"
            f'</td><td class="amount">{money(item["amount_subtotal"], currency)}</td></tr>'
        )
        # A free trial defers the recurring charges; one-time items are still paid today.
        if not (trial_days and price["recurring"]):
            due_today += item["amount_total"]

    discount = session["total_details"]["amount_discount"]
    if discount:
        coupon = store.find("coupon", session["discounts"][0]["coupon"])
        label = coupon["name"] or coupon["id"]
        rows.append(
            f"<tr><td>Discount <small>({escape(label)})</small></td>"
            f'<td class="amount">−{money(discount, currency)}</td></tr>'
        )
    if trial_days:
        after = ", ".join(
            f"{money(item['amount_total'], currency)} {cycle(item['price']['recurring'])}"
            for item in items
            if item["price"]["recurring"]
        )
        rows.append(
            f"<tr><td>Free trial<br><small>then {escape(after)}</small></td>"
            f'<td class="amount">{trial_days} days</td></tr>'
        )
    rows.append(f'<tr class="total"><td>Total due today</td><td class="amount">{money(due_today, currency)}</td></tr>')

    email = session["customer_email"]
    if email is None and session["customer"]:
        email = store.find("customer", session["customer"])["email"]
    if email:
        email_field = f'<p class="email">Paying as <strong>{escape(email)}</strong></p>'
    else:
        email_field = '<label>E-mail <input type="email" name="email" required autocomplete="email"></label>'
    session_id = escape(session["id"], quote=True)
    cancel = ""
    if session["cancel_url"]:
        cancel = f'<form method="post" action="{session_id}/cancel"><button class="cancel">Cancel</button></form>'
    return _document(
        "Checkout",
        f"<h1>Checkout</h1><table>{''.join(rows)}</table>"
        f'<form method="post" action="{session_id}/pay">{email_field}'
        '<button class="pay" name="payment" value="card">Pay</button>'
        '<button class="bank" name="payment" value="bank_debit">Pay by bank debit (delayed)</button>'
        '<button class="bank" name="payment" value="card_declined">Pay with a card that will fail '
        "(4000 0000 0000 0341)</button></form>"
        f"{cancel}",
    )


def _pay(store: Store, session: dict, body: bytes) -> Response:
    form = dict(parse_qsl(body.decode("utf-8", "replace")))
    email = form.get("email") or None
    if email is not None and not EMAIL.fullmatch(email):
        return _message(400, "Invalid e-mail address", "Go back and enter a valid e-mail address.")
    payment_status = "unpaid" if form.get("payment") == "bank_debit" else "paid"
    # Stripe's test card that attaches but fails every charge: declined now when something is due today, saved
    # (and failing at the first renewal) when a trial defers the charge.
    test_card = "pm_card_chargeCustomerFail" if form.get("payment") == "card_declined" else "pm_card_visa"
    try:
        fulfillment.complete_session(
            store, session, now=store.now(), payment_status=payment_status, email=email, test_card=test_card
        )
    except StripeError as error:
        return _message(error.status, "Payment not possible", error.message)
    target = session["success_url"] or store.attached.get((session["id"], "return_url"))
    if target is None:
        return _message(200, "Payment complete", "You can close this page.")
    target = target.replace("{CHECKOUT_SESSION_ID}", session["id"])
    return Response(303, [("Location", _header_safe(target))], b"")


def _header_safe(url: str) -> str:
    # Percent-encode what HTTP headers cannot carry, keep what URLs use.
    return quote(url, safe=":/?#[]@!$&'()*+,;=%~")


def handle(store: Store, method: str, path: str, body: bytes = b"") -> Response:
    match = _PATH.fullmatch(path)
    if match is None:
        return _message(404, "Page not found", "There is no page at this address.")
    session_id, action = unquote(match[1]), match[2]
    if (method, action) not in (("GET", None), ("POST", "/pay"), ("POST", "/cancel")):
        return _message(405, "Method not allowed", f"{method} is not supported here.")
    with store.lock:
        fulfillment.expire_due_sessions(store)
        session = store.find("checkout.session", session_id)
        if session is None:
            return _message(404, "Checkout session not found", "This checkout link is not valid.")
        if session["status"] == "expired":
            return _message(410, "Checkout session expired", "This checkout session has expired. Start again.")
        if session["status"] == "complete":
            return _message(
                200 if action is None else 400, "Already paid", "This checkout session is complete: nothing to pay."
            )
        if action == "/pay":
            return _pay(store, session, body)
        if action == "/cancel":
            if not session["cancel_url"]:
                return _message(404, "No cancel URL", "This checkout session was created without a cancel_url.")
            return Response(303, [("Location", _header_safe(session["cancel_url"]))], b"")
        return html_response(200, _checkout_page(store, session))
