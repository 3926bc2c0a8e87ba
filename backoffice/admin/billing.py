"""Staff's read-only lists of billing: invoices, refunds and billing decisions, searchable by invoice number, Stripe
ids and the customer's e-mail. Nothing is added, changed or deleted here: Stripe's events write these rows, and
staff act from the subscription page (each action asks for a reason)."""

from django.contrib import admin
from django.db.models.functions import Lower
from django.urls import reverse
from django.utils.html import format_html

from backoffice.admin_tools import EstimatedCountPaginator, ReadOnlyAdminMixin, fixed_choices_filter, stripe_link
from billing.models import BillingAction, RefundRecord, SubscriptionInvoice
from core.money import money_format

# Stripe's values (its API reference), listed so that the filters need no SELECT DISTINCT over millions of rows.
INVOICE_BILLING_REASONS = [
    ("subscription_create", "First invoice"),
    ("subscription_cycle", "Renewal"),
    ("subscription_update", "Plan change"),
    ("subscription_threshold", "Usage threshold"),
    ("manual", "Manual"),
    ("upcoming", "Upcoming"),
]
REFUND_STATUSES = [
    ("pending", "Pending"),
    ("requires_action", "Requires action"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("canceled", "Canceled"),
]
# Why Stripe says the money went back (its refund reasons), as the lists say it.
REFUND_REASONS = {
    "duplicate": "Duplicate",
    "fraudulent": "Fraudulent",
    "requested_by_customer": "Requested by customer",
    "expired_uncaptured_charge": "Uncaptured charge expired",
}

_BILLING_REASON_LABELS = dict(INVOICE_BILLING_REASONS)
_REFUND_STATUS_LABELS = dict(REFUND_STATUSES)


def _subscription_link(subscription) -> str:
    url = reverse("admin:accounts_subscription_change", args=[subscription.pk])
    return format_html('<a href="{}">{}</a>', url, subscription.customer.email)


def _search(queryset, term: str, *, stripe: dict[str, str], number: str | None = None):
    """A Stripe id by its prefix (exact, indexed), an e-mail address (exact, any case, on the customer's Lower(email)
    index) or its start, else an invoice number (exact)."""
    term = term.strip()
    if not term:
        return queryset
    for prefix, lookup in stripe.items():
        if term.startswith(prefix):
            return queryset.filter(**{lookup: term})
    queryset = queryset.alias(_email_lower=Lower("subscription__customer__email"))
    if "@" in term:
        return queryset.filter(_email_lower=term.lower())
    if number:
        return queryset.filter(**{number: term})
    return queryset.filter(_email_lower__startswith=term.lower())


class BillingRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """Invoices, refunds and billing actions: written by Stripe's events and by the billing actions only."""

    paginator = EstimatedCountPaginator
    show_full_result_count = False
    # "Show counts" would run a COUNT per filter choice over millions of rows, as on the other long lists.
    show_facets = admin.ShowFacets.NEVER
    list_per_page = 50
    list_select_related = ("subscription__customer",)

    @admin.display(description="Subscription")
    def subscription_link(self, obj) -> str:
        return _subscription_link(obj.subscription)


@admin.register(SubscriptionInvoice)
class SubscriptionInvoiceAdmin(BillingRecordAdmin):
    # The date next to the number: the last columns are the first out of view in a narrow window.
    list_display = (
        "invoice_label",
        "subscription_link",
        "created",
        "billing_reason_label",
        "amount_due_money",
        "status",
        "paid_at",
        "attempt_count",
        "first_failed_at",
    )
    list_filter = ("status", fixed_choices_filter("billing_reason", "billing reason", INVOICE_BILLING_REASONS))
    search_fields = ("number",)
    search_help_text = (
        "An invoice number (exact), a customer's e-mail (exact) or a Stripe id: in_... invoice, "
        "pi_... payment, sub_... subscription, cus_... customer."
    )
    readonly_fields = (
        "subscription_link",
        "stripe_invoice",
        "number",
        "billing_reason",
        "status",
        "amount_due_money",
        "amount_paid_money",
        "amount_remaining_money",
        "attempt_count",
        "next_payment_attempt",
        "first_failed_at",
        "paid_at",
        "period_start",
        "period_end",
        "hosted_invoice_url",
        "invoice_pdf",
        "stripe_payment_intent_id",
        "stripe_created",
        "stripe_state_at",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        return _search(
            queryset,
            search_term,
            number="number",
            stripe={
                "in_": "stripe_invoice_id",
                "pi_": "stripe_payment_intent_id",
                "sub_": "subscription__stripe_subscription_id",
                "cus_": "subscription__stripe_customer_id",
            },
        ), False

    @admin.display(description="Invoice")
    def invoice_label(self, invoice: SubscriptionInvoice) -> str:
        return str(invoice)

    @admin.display(description="Created", ordering="stripe_created")
    def created(self, invoice: SubscriptionInvoice):
        return invoice.stripe_created

    @admin.display(description="Billing reason", ordering="billing_reason")
    def billing_reason_label(self, invoice: SubscriptionInvoice) -> str:
        """As the filter names it ("Renewal"), not Stripe's code ("subscription_cycle")."""
        return _BILLING_REASON_LABELS.get(invoice.billing_reason, invoice.billing_reason or "-")

    @admin.display(description="Stripe invoice")
    def stripe_invoice(self, invoice: SubscriptionInvoice) -> str:
        return stripe_link(invoice.stripe_invoice_id)

    @admin.display(description="Amount due", ordering="amount_due")
    def amount_due_money(self, invoice: SubscriptionInvoice) -> str:
        return money_format(invoice.amount_due, invoice.currency)

    @admin.display(description="Amount paid")
    def amount_paid_money(self, invoice: SubscriptionInvoice) -> str:
        return money_format(invoice.amount_paid, invoice.currency)

    @admin.display(description="Amount remaining")
    def amount_remaining_money(self, invoice: SubscriptionInvoice) -> str:
        return money_format(invoice.amount_remaining, invoice.currency)


@admin.register(RefundRecord)
class RefundRecordAdmin(BillingRecordAdmin):
    list_display = (
        "stripe_refund_id",
        "subscription_link",
        "created",
        "amount_money",
        "status_label",
        "reason_label",
        "charge_fully_refunded",
    )
    list_filter = (fixed_choices_filter("status", "status", REFUND_STATUSES), "charge_fully_refunded")
    search_fields = ("stripe_refund_id",)
    search_help_text = (
        "A customer's e-mail (exact) or a Stripe id: re_... refund, pi_... payment, ch_... charge, "
        "sub_... subscription."
    )
    readonly_fields = (
        "subscription_link",
        "stripe_refund_id",
        "stripe_charge_id",
        "payment_link",
        "amount_money",
        "status",
        "reason",
        "charge_fully_refunded",
        "stripe_created",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        return _search(
            queryset,
            search_term,
            stripe={
                "re_": "stripe_refund_id",
                "pyr_": "stripe_refund_id",
                "pi_": "stripe_payment_intent_id",
                "ch_": "stripe_charge_id",
                "py_": "stripe_charge_id",
                "sub_": "subscription__stripe_subscription_id",
            },
        ), False

    @admin.display(description="Created", ordering="stripe_created")
    def created(self, refund: RefundRecord):
        return refund.stripe_created

    @admin.display(description="Status", ordering="status")
    def status_label(self, refund: RefundRecord) -> str:
        """As the filter names it ("Succeeded"), not Stripe's code."""
        return _REFUND_STATUS_LABELS.get(refund.status, refund.status)

    @admin.display(description="Reason", ordering="reason")
    def reason_label(self, refund: RefundRecord) -> str:
        return REFUND_REASONS.get(refund.reason, refund.reason or "-")

    @admin.display(description="Amount", ordering="amount")
    def amount_money(self, refund: RefundRecord) -> str:
        return money_format(refund.amount, refund.currency)

    @admin.display(description="Payment")
    def payment_link(self, refund: RefundRecord) -> str:
        return stripe_link(refund.stripe_payment_intent_id)


@admin.register(BillingAction)
class BillingActionAdmin(BillingRecordAdmin):
    list_display = ("created_at", "kind", "subscription_link", "amount_display", "status", "actor", "reason")
    list_filter = ("kind", "status")
    list_select_related = ("subscription__customer", "actor")
    search_fields = ("=idempotency_key",)
    search_help_text = (
        "A customer's e-mail (exact) or its start, or a Stripe id: sub_... subscription, "
        "in_... the refunded invoice, re_... the refund made."
    )
    readonly_fields = (
        "subscription_link",
        "kind",
        "status",
        "amount_display",
        "reason",
        "actor",
        "error",
        "stripe_object_id",
        "idempotency_key",
        "created_at",
        "updated_at",
    )
    fields = readonly_fields

    def get_search_results(self, request, queryset, search_term):
        return _search(
            queryset,
            search_term,
            stripe={
                "sub_": "subscription__stripe_subscription_id",
                "in_": "stripe_object_id",
                "re_": "stripe_object_id",
            },
        ), False

    @admin.display(description="Amount")
    def amount_display(self, action: BillingAction) -> str:
        return money_format(action.amount, action.subscription.currency) if action.amount is not None else "-"
