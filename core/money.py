"""Amounts as people read them: one formatter for the back office, the client area, e-mails and our own pages."""

CURRENCY_SYMBOLS = {"usd": "$", "eur": "€", "gbp": "£"}


def money_format(amount: int | None, currency: str, *, code: bool = True) -> str:
    """Minor units with their currency. Staff read the code always, as amounts of several currencies sit side by side:
    (799, "usd") -> "$7.99 USD". Customers read it only where no symbol says it (code=False): "$7.99", and for both
    (123456, "chf") -> "1,234.56 CHF". None (no amount) -> "-"."""
    if amount is None:
        return "-"
    units, cents = divmod(abs(amount), 100)
    number = f"{'-' if amount < 0 else ''}{units:,}.{cents:02d}"
    symbol = CURRENCY_SYMBOLS.get((currency or "").lower())
    if symbol and not code:
        return f"{symbol}{number}"
    return f"{symbol or ''}{number} {(currency or '').upper()}"
