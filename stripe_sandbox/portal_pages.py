"""The customer portal page a billing portal session's `url` points at (`/p/session/{id}`): the customer's
subscriptions (plan, amount, renews or cancels on), invoices (with their hosted page and PDF), the default card, and
plain forms (no JavaScript, fits a phone) to change the card to a test card, cancel at period end or undo it, and go
back to the session's `return_url`. Each form posts to a path under the session, which must still be valid (an hour
of the sandbox's time); an unknown or expired session is a 404.

    POST /p/session/{id}/payment_method             payment_method=pm_card_visa|pm_card_chargeCustomerFail
    POST /p/session/{id}/subscriptions/{sub}/cancel cancel at period end
    POST /p/session/{id}/subscriptions/{sub}/renew  undo that

Each answers 303 to the page (or to the flow's `after_completion` redirect). Events are the API's own: see
billing.replace_default_card and billing.cancel_at_period_end.
"""

import re
from datetime import UTC, datetime
from html import escape
from urllib.parse import parse_qsl, quote, unquote

from stripe_sandbox import billing
from stripe_sandbox.amounts import cycle, money
from stripe_sandbox.fulfillment import _Flow
from stripe_sandbox.invoice_pages import CARD_CHOICES
from stripe_sandbox.pages import _document
from stripe_sandbox.responses import Response, html_response
from stripe_sandbox.store import Store

_PATH = re.compile(r"/p/session/([^/]+)(?:/(payment_method)|/subscriptions/([^/]+)/(cancel|renew))?")

_STYLE = """
section { margin: 1.5rem 0; }
h2 { font-size: 1rem; margin: 0 0 .5rem; }
ul.cards { list-style: none; padding: 0; margin: 0; }
ul.cards li { border: 1px solid #e3e8ee; border-radius: 6px; padding: .75rem; margin: 0 0 .5rem;
              overflow-wrap: anywhere; }
.notice { background: #e6f4ea; color: #0b5b24; padding: .5rem .75rem; border-radius: 6px; }
fieldset { border: 1px solid #e3e8ee; border-radius: 6px; margin: 0 0 .75rem; }
fieldset label { display: block; margin: .4rem 0; }
a.back { display: inline-block; margin-top: 1rem; }
"""


def _message(status: int, title: str, text: str) -> Response:
    return html_response(status, _document(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"))


def _day(timestamp: int | None) -> str:
    if timestamp is None:
        return ""
    day = datetime.fromtimestamp(timestamp, UTC)
    return f"{day:%B} {day.day}, {day.year}"


def _card(method: dict | None) -> str:
    if method is None or method["type"] != "card":
        return "No card on file"
    card = method["card"]
    return f"{card['brand'].capitalize()} •••• {card['last4']}, expires {card['exp_month']:02d}/{card['exp_year']}"


def _subscriptions(store: Store, customer: dict) -> list[dict]:
    return [
        subscription
        for subscription in store.newest_first("subscription")
        if subscription["customer"] == customer["id"] and subscription["status"] not in billing.ENDED
    ]


def _subscription_entry(store: Store, session_id: str, subscription: dict) -> str:
    parts = []
    for item in subscription["items"]["data"]:
        price = item["price"]
        product = store.find("product", price["product"])
        name = product["name"] if product else price["id"]
        amount = money(price["unit_amount"] * item["quantity"], price["currency"])
        quantity = f"{item['quantity']} × " if item["quantity"] != 1 else ""
        per = cycle(price["recurring"])
        parts.append(f"<strong>{escape(quantity + name)}</strong><br>{escape(amount)} {escape(per)}")
    end = billing.period_end(subscription)
    status = subscription["status"]
    if subscription["cancel_at_period_end"]:
        when = f"Cancels on {_day(subscription['cancel_at'] or end)}"
        action, label = "renew", "Don't cancel"
    else:
        when = f"{'Trial ends' if status == 'trialing' else 'Renews'} on {_day(end)}"
        action, label = "cancel", "Cancel at period end"
    state = "" if status == "active" else f"<br><small>Status: {escape(status.replace('_', ' '))}</small>"
    target = f"{quote(session_id)}/subscriptions/{quote(subscription['id'])}/{action}"
    return (
        f"<li>{'<br>'.join(parts)}<br>{escape(when)}{state}"
        f'<form method="post" action="{escape(target, quote=True)}"><button>{label}</button></form></li>'
    )


def _invoice_entry(invoice: dict) -> str:
    amount = money(invoice["total"], invoice["currency"])
    links = []
    if invoice["hosted_invoice_url"]:
        links.append(f'<a href="{escape(invoice["hosted_invoice_url"], quote=True)}">View</a>')
    if invoice["invoice_pdf"]:
        links.append(f'<a href="{escape(invoice["invoice_pdf"], quote=True)}">PDF</a>')
    return (
        f"<li><strong>{escape(invoice['number'] or invoice['id'])}</strong> · {escape(_day(invoice['created']))}"
        f"<br>{escape(amount)} · {escape(invoice['status'])}<br>{' · '.join(links)}</li>"
    )


def _page(store: Store, session: dict, notice: str = "") -> str:
    customer = store.get("customer", session["customer"])
    session_id = session["id"]
    subscriptions = _subscriptions(store, customer)
    invoices = [
        invoice
        for invoice in store.newest_first("invoice")
        if invoice["customer"] == customer["id"] and invoice["status"] != "draft"
    ]
    method = billing.default_payment_method(store, None, customer)
    choices = "".join(
        f'<label><input type="radio" name="payment_method" value="{token}"{" checked" if index == 0 else ""}> '
        f"{escape(text)}</label>"
        for index, (token, text) in enumerate(CARD_CHOICES.items())
    )
    sections = [
        f"<h1>Billing</h1>{notice}<p>{escape(customer['name'] or '')} {escape(customer['email'] or '')}</p>",
        "<section><h2>Subscriptions</h2>"
        + (
            f'<ul class="cards">{"".join(_subscription_entry(store, session_id, s) for s in subscriptions)}</ul>'
            if subscriptions
            else "<p>No current subscriptions.</p>"
        )
        + "</section>",
        f"<section><h2>Payment method</h2><p>{escape(_card(method))}</p>"
        f'<form method="post" action="{escape(quote(session_id), quote=True)}/payment_method">'
        f"<fieldset><legend>Use a test card</legend>{choices}</fieldset>"
        '<button class="pay">Update card</button></form></section>',
        "<section><h2>Invoices</h2>"
        + (
            f'<ul class="cards">{"".join(_invoice_entry(invoice) for invoice in invoices)}</ul>'
            if invoices
            else "<p>No invoices yet.</p>"
        )
        + "</section>",
    ]
    if session["return_url"]:
        sections.append(f'<a class="back" href="{escape(session["return_url"], quote=True)}">← Return</a>')
    return _document("Billing", f"<style>{_STYLE}</style>" + "".join(sections))


def _done(session: dict, session_path: str, notice: str) -> Response:
    """Where a form leads: the flow's redirect if it has one, else back to the page saying what was done."""
    flow = session["flow"] or {}
    redirect = (flow.get("after_completion") or {}).get("redirect") or {}
    target = redirect.get("return_url") or f"{session_path}?done={quote(notice)}"
    return Response(303, [("Location", target)], b"")


NOTICES = {
    "card": "Your card was updated.",
    "cancel": "Your subscription will be canceled at the end of the period.",
    "renew": "Your subscription will renew.",
}


def handle(store: Store, method: str, path: str, body: bytes = b"", query: str = "") -> Response:
    match = _PATH.fullmatch(path)
    if match is None:
        return _message(404, "Page not found", "There is no page at this address.")
    session_id, card_action, subscription_id, subscription_action = (
        unquote(match[1]),
        match[2],
        match[3] and unquote(match[3]),
        match[4],
    )
    action = card_action or subscription_action
    if (method == "GET") != (action is None) or method not in ("GET", "POST"):
        return _message(405, "Method not allowed", f"{method} is not supported here.")
    with store.lock:
        billing.run_sandbox_clock(store)
        session = store.find("billing_portal.session", session_id)
        if session is None or store.attached.get((session_id, "expires_at"), 0) <= store.now():
            return _message(404, "Session not found", "This billing portal link is not valid or has expired.")
        customer = store.get("customer", session["customer"])
        session_path = f"/p/session/{quote(session_id)}"
        if action is None:
            notice = dict(parse_qsl(query)).get("done")
            text = NOTICES.get(notice or "")
            return html_response(200, _page(store, session, f'<p class="notice">{escape(text)}</p>' if text else ""))
        flow = _Flow(store, billing.now_for(store, customer), None)
        if card_action:
            form = dict(parse_qsl(body.decode("utf-8", "replace")))
            token = form.get("payment_method") or "pm_card_visa"
            if token not in CARD_CHOICES:
                return _message(400, "Unknown card", "Go back and choose one of the test cards.")
            billing.replace_default_card(flow, customer, token)
            return _done(session, session_path, "card")
        subscription = store.find("subscription", subscription_id)
        if subscription is None or subscription["customer"] != customer["id"]:
            return _message(404, "Subscription not found", "This customer has no such subscription.")
        if subscription["status"] in billing.ENDED:
            return _message(400, "Subscription ended", "This subscription has already ended.")
        billing.cancel_at_period_end(flow, subscription, subscription_action == "cancel")
        return _done(session, session_path, subscription_action)
