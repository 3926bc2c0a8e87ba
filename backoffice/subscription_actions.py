"""Staff's billing actions on a subscription page: which exist, who may run them, when they apply, the confirmation
form each asks for (a reason, and a hidden idempotency key made when the form is shown), what each will do in
words, and the billing service each one calls."""

import uuid
from dataclasses import dataclass

from django import forms
from django.conf import settings

from accounts.models import Subscription
from backoffice.admin_tools import MoneyField
from backoffice.selectors import SubscriptionBillingOverview
from billing.models import BillingAction, SubscriptionInvoice
from billing.selectors import (
    invoice_refundable_amount,
    payment_intent_is_latest_payment,
    subscription_unsuspends_on_payment,
)
from billing.services import (
    hosting_account_suspend,
    hosting_account_terminate,
    hosting_account_unsuspend,
    invoice_refund,
    subscription_cancel,
    subscription_cancel_undo,
)
from core.money import money_format
from provisioning.models import HostingAccountStatus, ProvisioningAction, ProvisioningJobStatus

REASON_MIN_LENGTH = 3  # billing.services refuses shorter reasons; the form says so before asking it


@dataclass(frozen=True)
class BillingActionSpec:
    name: str  # in the URL
    label: str  # the button and the page title
    permission: str
    danger: bool = False


SPECS = {
    spec.name: spec
    for spec in (
        BillingActionSpec("cancel_at_period_end", "Cancel at period end", "billing.cancel_subscription"),
        BillingActionSpec("cancel_now", "Cancel now", "billing.cancel_subscription", danger=True),
        BillingActionSpec("undo_cancel", "Keep the subscription (undo cancellation)", "billing.cancel_subscription"),
        BillingActionSpec("suspend", "Suspend the account", "billing.suspend_account", danger=True),
        BillingActionSpec("unsuspend", "Unsuspend the account", "billing.suspend_account"),
        BillingActionSpec("refund", "Refund", "billing.refund_payment", danger=True),
        BillingActionSpec("terminate", "Terminate the account", "billing.terminate_account", danger=True),
    )
}


def new_idempotency_key() -> str:
    return f"staff-{uuid.uuid4()}"


# --- When an action applies ---------------------------------------------------------------------------------------------

_OPEN_JOB = (ProvisioningJobStatus.PENDING, ProvisioningJobStatus.RUNNING, ProvisioningJobStatus.RETRYING)
_DECISION_OUTCOME = {
    ProvisioningAction.SUSPEND: HostingAccountStatus.SUSPENDED,
    ProvisioningAction.UNSUSPEND: HostingAccountStatus.ACTIVE,
    ProvisioningAction.TERMINATE: HostingAccountStatus.TERMINATED,
}


def account_status_ahead(overview: SubscriptionBillingOverview) -> str | None:
    """The account's status once the decisions already waiting are carried out (None: no account yet): a suspension
    waiting in the queue makes "Unsuspend" the button that applies, not "Suspend" again."""
    if overview.account is None:
        return None
    status = overview.account.status
    for job in sorted(overview.jobs, key=lambda job: job.pk):
        if job.status in _OPEN_JOB and job.action in _DECISION_OUTCOME and status != HostingAccountStatus.TERMINATED:
            status = _DECISION_OUTCOME[job.action]
    return status


def action_applies(
    name: str, overview: SubscriptionBillingOverview, invoice: SubscriptionInvoice | None = None
) -> bool:
    subscription = overview.subscription
    running = not overview.ended and bool(subscription.stripe_subscription_id)
    ahead = account_status_ahead(overview)
    if name == "cancel_now":
        return running
    if name == "cancel_at_period_end":
        return running and not subscription.cancel_at_period_end
    if name == "undo_cancel":
        return running and subscription.cancel_at_period_end
    if name == "suspend":
        # Also over a suspension for non-payment, as a hold of staff's own: paying does not lift that one.
        return ahead == HostingAccountStatus.ACTIVE or (
            ahead == HostingAccountStatus.SUSPENDED and subscription_unsuspends_on_payment(subscription=subscription)
        )
    if name == "unsuspend":
        return ahead == HostingAccountStatus.SUSPENDED
    if name == "terminate":
        # No account yet (the setup failed) but a running subscription: terminating cancels it and the setup.
        return ahead in (HostingAccountStatus.ACTIVE, HostingAccountStatus.SUSPENDED) or (ahead is None and running)
    if name == "refund":
        if invoice is not None:
            return invoice_refundable_amount(invoice=invoice) > 0
        return any(invoice.refundable > 0 for invoice in overview.invoices)
    return False


def actions_offered(user, overview: SubscriptionBillingOverview) -> list[BillingActionSpec]:
    """The page's buttons: the actions this person may run that would change something now (refunds are offered
    on each invoice instead)."""
    return [
        spec
        for spec in SPECS.values()
        if spec.name != "refund" and user.has_perm(spec.permission) and action_applies(spec.name, overview)
    ]


# --- The confirmation forms -------------------------------------------------------------------------------------------


class BillingActionForm(forms.Form):
    reason = forms.CharField(
        label="Reason",
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Why you do this (the customer's request, a ticket number...). Kept with the action.",
    )
    idempotency_key = forms.CharField(widget=forms.HiddenInput, max_length=255)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if len(reason) < REASON_MIN_LENGTH:
            raise forms.ValidationError("Say why (a few words): it is kept with the action.", code="reason_required")
        return reason


class RefundForm(BillingActionForm):
    scope = forms.ChoiceField(
        label="Refund",
        widget=forms.RadioSelect,
        initial="full",
        choices=[("full", "All that is left"), ("partial", "Part of it")],
    )
    amount = MoneyField(label="Amount", required=False, help_text="Only for a partial refund, e.g. 4.50.")
    field_order = ["scope", "amount", "reason", "idempotency_key"]

    def __init__(self, *args, refundable: int, currency: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.refundable, self.currency = refundable, currency
        self.fields["scope"].choices = [
            ("full", f"All that is left: {money_format(refundable, currency)}"),
            ("partial", "Part of it"),
        ]
        self.fields["amount"].max_cents = refundable or 1

    def clean(self):
        data = super().clean()
        if data.get("scope") == "partial":
            if data.get("amount") is None and "amount" not in self.errors:
                self.add_error("amount", "Enter the amount to refund.")
        else:
            data["amount"] = None
        return data


def form_class(name: str) -> type[BillingActionForm]:
    return RefundForm if name == "refund" else BillingActionForm


# --- What each action will do, in words ----------------------------------------------------------------------------------


def _date(value) -> str:
    return f"{value:%d %b %Y}" if value else "-"


def _termination_after_end(account_name: str) -> str:
    days = settings.BILLING_TERMINATE_AFTER_DAYS
    if days == 0:
        return f"The hosting account {account_name} is terminated as soon as the subscription ends."
    return (
        f"The hosting account {account_name} keeps running for {days} days after the subscription ends, then "
        f"is terminated (the customer is warned {settings.BILLING_TERMINATION_WARNING_DAYS} days before)."
    )


def consequences(
    name: str, overview: SubscriptionBillingOverview, invoice: SubscriptionInvoice | None = None
) -> list[str]:
    subscription: Subscription = overview.subscription
    account = overview.account
    account_name = f"{account.username} on {account.server}" if account else "(not set up)"
    if name == "cancel_now":
        return [
            "Stripe ends the subscription now: no more renewals. Nothing is refunded (refund an invoice "
            "separately if money is owed).",
            _termination_after_end(account_name),
            "The customer is e-mailed a cancellation confirmation.",
        ]
    if name == "cancel_at_period_end":
        return [
            f"The subscription runs until the end of the paid period, {_date(subscription.current_period_end)}, "
            "then ends at Stripe; it does not renew.",
            _termination_after_end(account_name),
            "The customer is e-mailed a confirmation. This can be undone until the period ends.",
        ]
    if name == "undo_cancel":
        return [
            f"The subscription renews again on {_date(subscription.current_period_end)} at "
            f"{money_format(subscription.amount, subscription.currency)}."
        ]
    if name == "suspend":
        return [
            f"The hosting account {account_name} is suspended on the control panel: its sites go offline, its "
            "data is kept.",
            "A payment does not lift a suspension made by staff: unsuspend it by hand.",
            "The customer is e-mailed a suspension notice. Nothing changes at Stripe.",
        ]
    if name == "unsuspend":
        return [
            f"The hosting account {account_name} is switched back on. Nothing changes at Stripe: open invoices "
            "stay open."
        ]
    if name == "terminate":
        lines = [
            f"The hosting account {account_name} is removed from the control panel with its data. This cannot "
            "be undone; any change still waiting for it is canceled."
        ]
        if not overview.ended and subscription.stripe_subscription_id:
            lines.append(
                "The subscription is cancelled at Stripe now as well (no invoices for a terminated "
                "service). Nothing is refunded."
            )
        lines.append("The customer is e-mailed that the service was terminated.")
        return lines
    if name == "refund" and invoice is not None:
        refundable = invoice_refundable_amount(invoice=invoice)
        lines = [
            f"Invoice {invoice.number or invoice.stripe_invoice_id}: paid "
            f"{money_format(invoice.amount_paid, invoice.currency)} on {_date(invoice.paid_at)}; "
            f"{money_format(refundable, invoice.currency)} is left to refund.",
            "The money goes back to the card that paid; the customer is e-mailed the refund.",
        ]
        latest = not invoice.stripe_payment_intent_id or payment_intent_is_latest_payment(
            subscription=subscription, payment_intent=invoice.stripe_payment_intent_id
        )
        if latest and not overview.account_terminated:
            lines.append(
                "A full refund (all that is left) also ends the subscription at Stripe and terminates the "
                "hosting account at once. A partial refund is only recorded."
            )
        else:
            lines.append(
                "A refund of this invoice, full or partial, is only recorded: "
                + (
                    "a later payment exists, so the subscription goes on."
                    if not latest
                    else "the account is already terminated."
                )
            )
        return lines
    return []


# --- Running one ------------------------------------------------------------------------------------------------------


def action_perform(
    name: str, *, subscription: Subscription, invoice: SubscriptionInvoice | None, data: dict, actor
) -> BillingAction:
    """Call the billing service behind the action with the form's cleaned data; its ApplicationError goes up."""
    common = {"reason": data["reason"], "actor": actor, "idempotency_key": data["idempotency_key"]}
    if name in ("cancel_now", "cancel_at_period_end"):
        return subscription_cancel(subscription=subscription, at_period_end=name == "cancel_at_period_end", **common)
    if name == "undo_cancel":
        return subscription_cancel_undo(subscription=subscription, **common)
    if name == "suspend":
        return hosting_account_suspend(subscription=subscription, **common)
    if name == "unsuspend":
        return hosting_account_unsuspend(subscription=subscription, **common)
    if name == "terminate":
        return hosting_account_terminate(subscription=subscription, **common)
    if name == "refund":
        return invoice_refund(invoice=invoice, amount=data.get("amount"), **common)
    raise ValueError(f"no billing action {name!r}")
