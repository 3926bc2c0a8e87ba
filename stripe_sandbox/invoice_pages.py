"""The hosted invoice page an invoice's `hosted_invoice_url` points at (`/i/{id}`): the customer sees what is due
and pays an open invoice with a test card (a plain form, no JavaScript), as on Stripe's hosted invoice page; paying
is `POST /v1/invoices/{id}/pay`. `/i/{id}/pdf` (the `invoice_pdf`) is a one-page PDF of the same."""

import re
from html import escape
from urllib.parse import parse_qsl, unquote

from stripe_sandbox import billing
from stripe_sandbox.amounts import money
from stripe_sandbox.objects.payments import TEST_CARDS
from stripe_sandbox.pages import _document
from stripe_sandbox.responses import Response, html_response
from stripe_sandbox.store import Store
from stripe_sandbox.wire import StripeError

_PATH = re.compile(r"/i/([^/]+)(/pay|/pdf)?")
CARD_CHOICES = {
    "pm_card_visa": "Visa •••• 4242 (succeeds)",
    "pm_card_chargeCustomerFail": "Visa •••• 0341 (declined)",
}


def _message(status: int, title: str, text: str) -> Response:
    return html_response(status, _document(title, f"<h1>{escape(title)}</h1><p>{escape(text)}</p>"))


def _rows(invoice: dict) -> str:
    currency = invoice["currency"]
    rows = [
        f"<tr><td>{escape(line['description'] or '')}</td>"
        f'<td class="amount">{money(line["amount"], currency)}</td></tr>'
        for line in invoice["lines"]["data"]
    ]
    discount = invoice["subtotal"] - invoice["total"]
    if discount:
        rows.append(f'<tr><td>Discount</td><td class="amount">−{money(discount, currency)}</td></tr>')
    label = "Amount due" if invoice["status"] == "open" else "Total"
    amount = invoice["amount_remaining"] if invoice["status"] == "open" else invoice["total"]
    rows.append(f'<tr class="total"><td>{label}</td><td class="amount">{money(amount, currency)}</td></tr>')
    return f"<table>{''.join(rows)}</table>"


def _invoice_page(store: Store, invoice: dict, notice: str = "") -> str:
    invoice_id = escape(invoice["id"], quote=True)
    title = f"Invoice {invoice['number'] or invoice['id']}"
    head = f"<h1>{escape(title)}</h1>{notice}<p>{escape(invoice['customer_email'] or '')}</p>"
    if invoice["status"] == "paid":
        return _document(title, f"{head}{_rows(invoice)}<p><strong>Paid.</strong> Thank you.</p>")
    if invoice["status"] != "open":
        return _document(title, f"{head}{_rows(invoice)}<p>This invoice is {escape(invoice['status'])}.</p>")
    choices = "".join(
        f'<label><input type="radio" name="payment_method" value="{token}"{" checked" if index == 0 else ""}> '
        f"{escape(text)}</label>"
        for index, (token, text) in enumerate(CARD_CHOICES.items())
    )
    form = (
        f'<form method="post" action="{invoice_id}/pay"><fieldset><legend>Pay with a test card</legend>{choices}'
        '</fieldset><button class="pay">Pay</button></form>'
    )
    return _document(title, f"{head}{_rows(invoice)}{form}")


def _pdf(invoice: dict) -> Response:
    """A minimal one-page PDF saying what the invoice is for."""
    text = f"Invoice {invoice['number'] or invoice['id']}: {money(invoice['total'], invoice['currency'])}, "
    text += invoice["status"]
    text = text.replace("\\", "").replace("(", "").replace(")", "").encode("latin-1", "replace").decode("latin-1")
    content = f"BT /F1 14 Tf 72 720 Td ({text}) Tj ET".encode("latin-1")
    parts = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        b"/Resources << /Font << /F1 5 0 R >> >> >>",
        b"<< /Length %d >>\nstream\n" % len(content) + content + b"\nendstream",
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    body = bytearray(b"%PDF-1.4\n")
    offsets = []
    for number, part in enumerate(parts, start=1):
        offsets.append(len(body))
        body += b"%d 0 obj\n" % number + part + b"\nendobj\n"
    xref = len(body)
    body += b"xref\n0 %d\n0000000000 65535 f \n" % (len(parts) + 1)
    body += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    body += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(parts) + 1, xref)
    return Response(200, [("Content-Type", "application/pdf")], bytes(body))


def handle(store: Store, method: str, path: str, body: bytes = b"") -> Response:
    match = _PATH.fullmatch(path)
    if match is None:
        return _message(404, "Page not found", "There is no page at this address.")
    invoice_id, action = unquote(match[1]), match[2]
    if (method, action) not in (("GET", None), ("GET", "/pdf"), ("POST", "/pay")):
        return _message(405, "Method not allowed", f"{method} is not supported here.")
    with store.lock:
        billing.run_sandbox_clock(store)
        invoice = store.find("invoice", invoice_id)
        if invoice is None or invoice["status"] == "draft":
            return _message(404, "Invoice not found", "This invoice link is not valid.")
        if action == "/pdf":
            return _pdf(invoice)
        if action is None:
            return html_response(200, _invoice_page(store, invoice))
        form = dict(parse_qsl(body.decode("utf-8", "replace")))
        token = form.get("payment_method") or "pm_card_visa"
        if token not in TEST_CARDS:
            return _message(400, "Unknown card", "Go back and choose one of the test cards.")
        if invoice["status"] != "open":
            return html_response(400, _invoice_page(store, invoice))
        try:
            billing.pay_invoice_now(store, invoice, payment_method_id=token, request=None)
        except StripeError as error:
            notice = f'<p class="badge">{escape(error.message)} Try another card.</p>'
            return html_response(402, _invoice_page(store, invoice, notice))
        return html_response(200, _invoice_page(store, invoice))
