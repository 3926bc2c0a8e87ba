"""Reading and checking the catalog data file (catalog/data/catalog.json) into typed entries; no database access."""

import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.utils.dateparse import parse_datetime

from catalog.models import CYCLE_TERMS, BillingCycle, Coupon, CouponDuration, Price, Product, ProductType
from core.exceptions import ApplicationError

DEFAULT_CATALOG_FILE = Path(__file__).resolve().parent / "data" / "catalog.json"

# The layout of the file this module reads. It is not a revision number of the prices: bump it only together with
# a change to this reader.
SUPPORTED_VERSION = 1

_TOP_KEYS = {"version", "about", "currency", "products", "coupons"}
_PRODUCT_KEYS = {"code", "name", "type", "description", "sort_order", "active", "prices", "moves_to"}
_PRICE_KEYS = {"per_month", "unit_amount", "trial_days", "note"}
_COUPON_KEYS = {
    "code",
    "name",
    "percent_off",
    "amount_off",
    "duration",
    "duration_in_months",
    "valid_from",
    "valid_until",
    "max_redemptions",
    "active",
    "products",
    "billing_cycles",
}


@dataclass(frozen=True)
class PriceEntry:
    billing_cycle: str
    unit_amount: int  # charged once per billing period, in cents
    trial_days: int | None


@dataclass(frozen=True)
class ProductEntry:
    code: str
    name: str
    type: str
    description: str
    sort_order: int
    active: bool
    prices: tuple[PriceEntry, ...]
    # Products of the same type a subscription of this one may move to (optional in the file: none).
    moves_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class CouponEntry:
    code: str
    name: str
    percent_off: Decimal | None
    amount_off: int | None
    duration: str
    duration_in_months: int | None
    valid_from: datetime | None
    valid_until: datetime | None
    max_redemptions: int | None
    active: bool
    product_codes: tuple[str, ...]
    billing_cycles: tuple[str, ...]


@dataclass(frozen=True)
class CatalogFile:
    version: int
    currency: str
    products: tuple[ProductEntry, ...]
    coupons: tuple[CouponEntry, ...]


class _Problems:
    """Collects every problem in the file, so one run of the command lists them all."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def add(self, where: str, message: str) -> None:
        self.messages.append(f"{where}: {message}")

    def add_validation_error(self, where: str, error: ValidationError) -> None:
        for field, messages in error.message_dict.items():
            for message in messages:
                self.add(where, message if field == NON_FIELD_ERRORS else f"{field}: {message}")

    def unknown_keys(self, where: str, entry: dict, allowed: set[str]) -> None:
        for key in sorted(set(entry) - allowed):
            self.add(where, f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")


def catalog_file_read(*, path: Path) -> dict:
    """The file's JSON; a duplicated key is an error, as json.loads would silently keep only the last one."""

    def reject_duplicates(pairs: list[tuple[str, object]]) -> dict:
        keys = [key for key, _ in pairs]
        duplicates = sorted({key for key in keys if keys.count(key) > 1})
        if duplicates:
            raise ApplicationError(
                f"{path}: key {duplicates[0]!r} appears twice in one object.", code="catalog_file_invalid"
            )
        return dict(pairs)

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as error:
        raise ApplicationError(
            f"Cannot read the catalog file {path}: {error.strerror}.", code="catalog_file_unreadable"
        ) from error
    try:
        return json.loads(text, object_pairs_hook=reject_duplicates)
    except json.JSONDecodeError as error:
        raise ApplicationError(f"{path} is not valid JSON: {error}.", code="catalog_file_invalid") from error


def catalog_file_parse(*, data: dict) -> CatalogFile:
    """Check the whole file and return its entries; raise one ApplicationError listing every problem found."""
    problems = _Problems()
    if not isinstance(data, dict):
        raise ApplicationError("The catalog file must hold a JSON object.", code="catalog_file_invalid")
    problems.unknown_keys("catalog", data, _TOP_KEYS)

    version = data.get("version")
    if not _is_whole_number(version) or version != SUPPORTED_VERSION:
        problems.add("catalog", f"version must be {SUPPORTED_VERSION}, the layout this loader reads; got {version!r}")
    currency = data.get("currency")
    if not isinstance(currency, str):
        problems.add("catalog", 'currency: a three-letter code such as "usd" is required')
        currency = ""
    else:
        try:
            Price._meta.get_field("currency").run_validators(currency)
        except ValidationError as error:
            problems.add("catalog", f"currency {currency!r}: {' '.join(error.messages)}")

    products = tuple(
        entry
        for index, raw in enumerate(_list_of_objects(data, "products", problems))
        if (entry := _product_parse(raw, index, problems)) is not None
    )
    _duplicates_report("product", [p.code for p in products], problems)
    _moves_check(products, problems)
    coupons = tuple(
        entry
        for index, raw in enumerate(_list_of_objects(data, "coupons", problems))
        if (entry := _coupon_parse(raw, index, currency, {p.code for p in products}, problems)) is not None
    )
    _duplicates_report("coupon", [c.code.lower() for c in coupons], problems)

    if problems.messages:
        raise ApplicationError(
            "The catalog file is invalid; nothing was written.\n- " + "\n- ".join(problems.messages),
            code="catalog_file_invalid",
        )
    return CatalogFile(version=version, currency=currency, products=products, coupons=coupons)


def _list_of_objects(data: dict, key: str, problems: _Problems) -> list[dict]:
    value = data.get(key, [])
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        problems.add("catalog", f"{key} must be a list of objects")
        return []
    return value


def _duplicates_report(kind: str, codes: list[str], problems: _Problems) -> None:
    for code in sorted({code for code in codes if codes.count(code) > 1}):
        problems.add(f"{kind} {code!r}", "appears more than once")


def _is_whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _optional_whole_number(raw: dict, key: str, where: str, problems: _Problems) -> int | None:
    """The value under `key`: absent or null gives None; anything but a whole number is a problem (and None)."""
    value = raw.get(key)
    if value is None:
        return None
    if not _is_whole_number(value):
        problems.add(where, f"{key} must be a whole number; got {value!r}")
        return None
    return value


def _product_parse(raw: dict, index: int, problems: _Problems) -> ProductEntry | None:
    code = raw.get("code")
    where = f"product {code!r}" if isinstance(code, str) else f"products[{index}]"
    count_before = len(problems.messages)
    problems.unknown_keys(where, raw, _PRODUCT_KEYS)

    product_type = raw.get("type")
    if product_type not in ProductType.values:
        problems.add(where, f"unknown type {product_type!r} (expected one of: {', '.join(ProductType.values)})")
    sort_order = raw.get("sort_order", 0)
    if not _is_whole_number(sort_order) or sort_order < 0:
        problems.add(where, f"sort_order must be a whole number, 0 or more; got {sort_order!r}")
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.add(where, f"active must be true or false; got {active!r}")
    # The model's own field rules (code format, required name, lengths), without touching the database.
    product = Product(code=code, name=raw.get("name"), description=raw.get("description", ""))
    try:
        product.clean_fields(exclude={"type", "sort_order", "active"})
    except ValidationError as error:
        problems.add_validation_error(where, error)

    prices = raw.get("prices")
    if not isinstance(prices, dict) or not prices:
        problems.add(where, "prices must be an object mapping billing cycles to prices, with at least one cycle")
        prices = {}
    price_entries = tuple(
        entry
        for cycle, price in prices.items()
        if (entry := _price_parse(cycle, price, f"{where}, {cycle} price", problems)) is not None
    )
    moves_to = raw.get("moves_to", [])
    if not isinstance(moves_to, list) or not all(isinstance(target, str) for target in moves_to):
        problems.add(where, "moves_to must be a list of product codes")
        moves_to = []
    if len(problems.messages) > count_before:
        return None
    return ProductEntry(
        code=product.code,
        name=product.name,
        type=product_type,
        description=product.description,
        sort_order=sort_order,
        active=active,
        prices=price_entries,
        moves_to=tuple(moves_to),
    )


def _moves_check(products: tuple[ProductEntry, ...], problems: _Problems) -> None:
    """Each move names another product of this file, of the same type (PlanMove's rules), once."""
    types = {product.code: product.type for product in products}
    for product in products:
        where = f"product {product.code!r}, moves_to"
        for target in sorted({code for code in product.moves_to if product.moves_to.count(code) > 1}):
            problems.add(where, f"{target!r} appears more than once")
        for target in dict.fromkeys(product.moves_to):
            if target == product.code:
                problems.add(where, "a product's other cycles are always allowed; list other products only")
            elif target not in types:
                problems.add(where, f"product {target!r} is not in this file's products")
            elif types[target] != product.type:
                problems.add(where, f"{target!r} is {types[target]}, not {product.type}: moves stay within one type")


def _price_parse(cycle: str, raw, where: str, problems: _Problems) -> PriceEntry | None:
    if cycle not in BillingCycle.values:
        problems.add(where, f"unknown billing cycle {cycle!r} (expected one of: {', '.join(BillingCycle.values)})")
        return None
    if not isinstance(raw, dict):
        problems.add(where, 'must be an object such as {"per_month": 799}')
        return None
    count_before = len(problems.messages)
    problems.unknown_keys(where, raw, _PRICE_KEYS)

    if ("per_month" in raw) == ("unit_amount" in raw):
        problems.add(where, "give exactly one of per_month and unit_amount")
        return None
    key = "per_month" if "per_month" in raw else "unit_amount"
    amount = raw[key]
    if not _is_whole_number(amount) or amount <= 0:
        problems.add(where, f"{key} must be a positive whole number of cents; got {amount!r}")
    trial_days = _optional_whole_number(raw, "trial_days", where, problems)
    if trial_days is not None:
        try:
            Price._meta.get_field("trial_days").run_validators(trial_days)
        except ValidationError as error:
            problems.add(where, f"trial_days {trial_days!r}: {' '.join(error.messages)}")
    if len(problems.messages) > count_before:
        return None
    months = CYCLE_TERMS[BillingCycle(cycle)].months
    unit_amount = amount * months if key == "per_month" else amount
    return PriceEntry(billing_cycle=cycle, unit_amount=unit_amount, trial_days=trial_days)


def _coupon_parse(
    raw: dict, index: int, currency: str, product_codes: set[str], problems: _Problems
) -> CouponEntry | None:
    code = raw.get("code")
    where = f"coupon {code!r}" if isinstance(code, str) else f"coupons[{index}]"
    count_before = len(problems.messages)
    problems.unknown_keys(where, raw, _COUPON_KEYS)

    percent_off = _percent_parse(raw.get("percent_off"), where, problems)
    amount_off = raw.get("amount_off")
    if amount_off is not None and not _is_whole_number(amount_off):
        problems.add(where, f"amount_off must be a whole number of cents; got {amount_off!r}")
    duration = raw.get("duration", CouponDuration.ONCE)
    duration_in_months = _optional_whole_number(raw, "duration_in_months", where, problems)
    max_redemptions = _optional_whole_number(raw, "max_redemptions", where, problems)
    valid_from = _datetime_parse(raw.get("valid_from"), f"{where}, valid_from", problems)
    valid_until = _datetime_parse(raw.get("valid_until"), f"{where}, valid_until", problems)
    active = raw.get("active", True)
    if not isinstance(active, bool):
        problems.add(where, f"active must be true or false; got {active!r}")

    restricted_to = _list_of(raw, "products", "product codes", where, problems)
    for product_code in restricted_to:
        if product_code not in product_codes:
            problems.add(where, f"product {product_code!r} is not in this file's products")
    billing_cycles = _list_of(raw, "billing_cycles", "billing cycles", where, problems)
    for cycle in billing_cycles:
        if cycle not in BillingCycle.values:
            problems.add(where, f"unknown billing cycle {cycle!r} (expected one of: {', '.join(BillingCycle.values)})")

    # The model's own field rules: code length, percent range, positive amounts, known duration.
    coupon = Coupon(
        code=code,
        name=raw.get("name", ""),
        percent_off=percent_off,
        amount_off=amount_off,
        currency=currency,
        duration=duration,
        duration_in_months=duration_in_months,
        max_redemptions=max_redemptions,
        valid_from=valid_from,
        valid_until=valid_until,
    )
    try:
        coupon.clean_fields(
            exclude={"currency", "valid_from", "valid_until", "active", "billing_cycles", "times_redeemed"}
        )
    except ValidationError as error:
        problems.add_validation_error(where, error)
    if len(problems.messages) > count_before:
        return None
    # The rules across fields (a percentage or an amount, a repeating coupon's months, the valid window) are the
    # model's constraints; the code's uniqueness is not a fault here: a coupon already stored is the file's to update.
    try:
        coupon.validate_constraints(exclude={"code"})
    except ValidationError as error:
        problems.add_validation_error(where, error)
        return None
    if percent_off is not None:
        # Two decimal places, as the database stores it, so that comparing with a stored coupon is exact.
        percent_off = percent_off.quantize(Decimal("0.01"))
    return CouponEntry(
        code=coupon.code,
        name=coupon.name,
        percent_off=percent_off,
        amount_off=amount_off,
        duration=duration,
        duration_in_months=duration_in_months,
        valid_from=valid_from,
        valid_until=valid_until,
        max_redemptions=max_redemptions,
        active=active,
        product_codes=tuple(restricted_to),
        billing_cycles=tuple(billing_cycles),
    )


def _percent_parse(value, where: str, problems: _Problems) -> Decimal | None:
    """A coupon's percent_off as a Decimal (a number, never a boolean), or None with the problem noted."""
    if value is None:
        return None
    try:
        if isinstance(value, bool):
            raise InvalidOperation
        return Decimal(str(value))
    except InvalidOperation:
        problems.add(where, f"percent_off must be a number; got {value!r}")
        return None


def _list_of(raw: dict, key: str, what: str, where: str, problems: _Problems) -> list:
    """raw[key] when it is a list (empty when absent); an empty list, with the problem noted, when it is not."""
    value = raw.get(key, [])
    if not isinstance(value, list):
        problems.add(where, f"{key} must be a list of {what}")
        return []
    return value


def _datetime_parse(value, where: str, problems: _Problems) -> datetime | None:
    if value is None:
        return None
    parsed = parse_datetime(value) if isinstance(value, str) else None
    if parsed is None:
        problems.add(where, f'must be an ISO 8601 date and time such as "2026-12-31T23:59:59Z"; got {value!r}')
        return None
    if parsed.tzinfo is None:
        problems.add(where, f"needs a time zone, such as a trailing Z for UTC; got {value!r}")
        return None
    return parsed
