"""Template filters of the client area: money as a customer reads it, and the badge colour of a service status."""

from django import template

from provisioning.emails import money as money_text

register = template.Library()

_BADGES = {
    "active": "ok",
    "setting_up": "",
    "cancels": "warn",
    "past_due": "error",
    "suspended": "error",
    "ended": "muted",
    "terminated": "muted",
    "paid": "ok",
    "open": "warn",
    "uncollectible": "error",
    "void": "muted",
}


@register.filter
def money(amount, currency: str) -> str:
    """Cents and a currency: 799|money:"usd" -> "$7.99"."""
    if amount is None:
        return ""
    amount = int(amount)
    # A credit reads "−$3.50", not "$-3.50".
    return f"−{money_text(-amount, currency or '')}" if amount < 0 else money_text(amount, currency or "")


@register.filter
def badge(status: str) -> str:
    """The badge class for a service or invoice status ("badge badge--ok")."""
    variant = _BADGES.get(status, "")
    return f"badge badge--{variant}" if variant else "badge"


_PER_CYCLE = {"monthly": "per month", "yearly": "per year", "biennial": "every 2 years", "triennial": "every 3 years"}


@register.filter
def per_cycle(billing_cycle: str) -> str:
    """ "monthly" -> "per month": how often a price is charged, in words."""
    return _PER_CYCLE.get(billing_cycle, "per period")
