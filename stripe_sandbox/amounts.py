"""Money: amounts as people read them, and how a coupon's discount falls on each line item."""

ZERO_DECIMAL_CURRENCIES = {
    "bif", "clp", "djf", "gnf", "jpy", "kmf", "krw", "mga", "pyg", "rwf", "ugx", "vnd", "vuv", "xaf", "xof", "xpf",
}  # fmt: skip
CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money(amount: int, currency: str) -> str:
    """Minor units as people read them: 799 usd is $7.99, 500 jpy is 500 JPY."""
    if currency in ZERO_DECIMAL_CURRENCIES:
        number = f"{amount:,}"
    else:
        number = f"{amount // 100:,}.{amount % 100:02d}"
    symbol = CURRENCY_SYMBOLS.get(currency)
    return f"{symbol}{number}" if symbol else f"{number} {currency.upper()}"


def cycle(recurring: dict | None) -> str:
    if recurring is None:
        return "one time"
    count, interval = recurring["interval_count"], recurring["interval"]
    return f"per {interval}" if count == 1 else f"every {count} {interval}s"


def amounts_off(coupon: dict | None, subtotals: list[int]) -> list[int]:
    """The discount on each line item: a percentage of each, or a fixed amount shared in proportion."""
    if coupon is None:
        return [0] * len(subtotals)
    if coupon["percent_off"] is not None:
        # Half-up rounding in integer cents, per line item.
        return [(subtotal * round(coupon["percent_off"] * 100) + 5000) // 10000 for subtotal in subtotals]
    if not subtotals:  # an invoice of prorations alone: no line of a new period to share the amount among
        return []
    total = sum(subtotals)
    amount = min(coupon["amount_off"], total)
    shares = [amount * subtotal // total if total else 0 for subtotal in subtotals]
    shares[-1] += amount - sum(shares)
    return shares


def per_interval(recurring: dict) -> str:
    """How an invoice line names a price's interval: "month", or "every 3 months"."""
    count, interval = recurring["interval_count"], recurring["interval"]
    return interval if count == 1 else f"every {count} {interval}s"
