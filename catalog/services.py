"""Writes of the catalog: loading products, prices, plan moves and coupons from the catalog data file, and staff's
price edits, which never change what was already sold."""

import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial

from django.db import connection, transaction
from django.db.models.functions import Lower
from django.utils import timezone

from catalog.catalog_file import CatalogFile, CouponEntry, PriceEntry, catalog_file_parse
from catalog.models import Coupon, PlanMove, Price, Product
from core.exceptions import ApplicationError
from core.money import money_format

logger = logging.getLogger(__name__)

_PRODUCT_FIELDS = ("name", "type", "description", "sort_order", "active")
# Key of the PostgreSQL advisory lock that makes concurrent loads take turns: "catalog" in ASCII.
_LOAD_LOCK_KEY = 0x636174616C6F67


@dataclass
class CatalogLoadReport:
    version: int
    dry_run: bool = False
    products_created: int = 0
    products_updated: int = 0
    prices_created: int = 0
    prices_updated: int = 0  # changed in place: only what no checkout session copied (trial days)
    prices_replaced: int = 0  # amount changed: the old row deactivated, a new active row created
    coupons_created: int = 0
    coupons_updated: int = 0
    # Counted apart from `created` / `updated` (which count what is sold), on the report's second line.
    moves_created: int = 0
    moves_updated: int = 0  # switched back on by --overwrite
    # Where the database differs from the file and was left alone because overwrite was off (staff edits).
    kept: list[str] = field(default_factory=list)

    @property
    def created(self) -> int:
        return self.products_created + self.prices_created + self.coupons_created

    @property
    def updated(self) -> int:
        return self.products_updated + self.prices_updated + self.prices_replaced + self.coupons_updated

    def lines(self, *, verbose: bool = False) -> list[str]:
        lines = [
            f"Catalog file version {self.version}: {self.created} created, {self.updated} updated.",
            f"  products: {self.products_created} created, {self.products_updated} updated; "
            f"prices: {self.prices_created} created, {self.prices_updated} updated, {self.prices_replaced} replaced; "
            f"coupons: {self.coupons_created} created, {self.coupons_updated} updated; "
            f"plan moves: {self.moves_created} created, {self.moves_updated} updated.",
        ]
        if self.kept:
            lines.append(
                f"{len(self.kept)} entries differ from the file and were kept as they are "
                f"(run with --overwrite to replace them{'' if verbose else '; -v 2 lists them'})."
            )
            if verbose:
                lines.extend(f"  - {difference}" for difference in self.kept)
        if self.dry_run:
            lines.append("Dry run: nothing was written.")
        return lines


def catalog_load(*, data: dict, overwrite: bool = False, dry_run: bool = False) -> CatalogLoadReport:
    """Create what the file has and the database lacks; with `overwrite`, also make existing rows match the file.

    Safe to run again: rows that already match are not touched. The file is checked completely before anything is
    written (ApplicationError, code catalog_file_invalid), and the load is one transaction. Rows the file does not
    mention are left alone. With `dry_run` the report is computed and the transaction rolled back.
    """
    catalog = catalog_file_parse(data=data)
    report = CatalogLoadReport(version=catalog.version, dry_run=dry_run)
    with transaction.atomic():
        _load_lock_take()
        products = _products_load(catalog=catalog, overwrite=overwrite, report=report)
        _prices_load(catalog=catalog, products=products, overwrite=overwrite, report=report)
        _coupons_load(catalog=catalog, products=products, overwrite=overwrite, report=report)
        _moves_load(catalog=catalog, products=products, overwrite=overwrite, report=report)
        if dry_run:
            transaction.set_rollback(True)
    return report


def _load_lock_take() -> None:
    """Two loads at once (two deploys) run one after the other, so the second finds the rows the first created
    instead of failing on a unique index. Released at the end of the transaction. SQLite serialises writers itself."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOAD_LOCK_KEY])


def _products_load(*, catalog: CatalogFile, overwrite: bool, report: CatalogLoadReport) -> dict[str, Product]:
    existing = Product.objects.in_bulk([entry.code for entry in catalog.products], field_name="code")
    products = {}
    for entry in catalog.products:
        wanted = {name: getattr(entry, name) for name in _PRODUCT_FIELDS}
        product = existing.get(entry.code)
        if product is None:
            product = Product.objects.create(code=entry.code, **wanted)
            report.products_created += 1
        else:
            changed = [name for name, value in wanted.items() if getattr(product, name) != value]
            if changed and overwrite:
                for name in changed:
                    setattr(product, name, wanted[name])
                product.save(update_fields=[*changed, "updated_at"])
                report.products_updated += 1
            elif changed:
                report.kept.append(f"product {entry.code}: differs from the file in {', '.join(changed)}")
        products[entry.code] = product
    return products


def _prices_load(
    *, catalog: CatalogFile, products: dict[str, Product], overwrite: bool, report: CatalogLoadReport
) -> None:
    rows_by_key: dict[tuple[int, str], list[Price]] = defaultdict(list)
    for row in Price.objects.filter(product__in=products.values(), currency=catalog.currency).order_by("pk"):
        rows_by_key[(row.product_id, row.billing_cycle)].append(row)

    for product_entry in catalog.products:
        product = products[product_entry.code]
        for entry in product_entry.prices:
            rows = rows_by_key[(product.pk, entry.billing_cycle)]
            _price_load(
                product=product, entry=entry, rows=rows, currency=catalog.currency, overwrite=overwrite, report=report
            )


def _price_load(
    *, product: Product, entry: PriceEntry, rows: list[Price], currency: str, overwrite: bool, report: CatalogLoadReport
) -> None:
    where = f"price {product.code} {entry.billing_cycle} {currency}"
    active = next((row for row in rows if row.active), None)
    if not rows:
        _price_create(product=product, entry=entry, currency=currency)
        report.prices_created += 1
    elif active is None:
        # Staff switched this cycle off; only --overwrite brings it back.
        if overwrite:
            _price_create(product=product, entry=entry, currency=currency)
            report.prices_created += 1
        else:
            report.kept.append(f"{where}: no active price in the database (deactivated)")
    elif active.unit_amount != entry.unit_amount:
        if overwrite:
            # Checkout sessions point at the old row, so it is retired rather than edited. It is switched off
            # before the new one is inserted: the "one active price" unique index never sees two at once.
            active.active = False
            active.save(update_fields=["active", "updated_at"])
            _price_create(product=product, entry=entry, currency=currency)
            report.prices_replaced += 1
        else:
            report.kept.append(f"{where}: {active.unit_amount} cents in the database, {entry.unit_amount} in the file")
    elif active.trial_days != entry.trial_days:
        if overwrite:
            active.trial_days = entry.trial_days
            active.save(update_fields=["trial_days", "updated_at"])
            report.prices_updated += 1
        else:
            report.kept.append(
                f"{where}: trial_days {active.trial_days} in the database, {entry.trial_days} in the file"
            )


def _price_create(*, product: Product, entry: PriceEntry, currency: str) -> Price:
    return Price.objects.create(
        product=product,
        billing_cycle=entry.billing_cycle,
        currency=currency,
        unit_amount=entry.unit_amount,
        trial_days=entry.trial_days,
        active=True,
    )


def _moves_load(
    *, catalog: CatalogFile, products: dict[str, Product], overwrite: bool, report: CatalogLoadReport
) -> None:
    """The file's plan moves that the database lacks; a move staff switched off stays off unless `overwrite`. Moves
    the file does not list (added by staff) are left alone."""
    existing = {
        (move.from_product_id, move.to_product_id): move
        for move in PlanMove.objects.filter(from_product__in=products.values())
    }
    for entry in catalog.products:
        for target in dict.fromkeys(entry.moves_to):
            source, destination = products[entry.code], products[target]
            move = existing.get((source.pk, destination.pk))
            if move is None:
                PlanMove.objects.create(from_product=source, to_product=destination, active=True)
                report.moves_created += 1
            elif not move.active and overwrite:
                move.active = True
                move.save(update_fields=["active", "updated_at"])
                report.moves_updated += 1
            elif not move.active:
                report.kept.append(f"plan move {entry.code} -> {target}: switched off in the database")


def _coupons_load(
    *, catalog: CatalogFile, products: dict[str, Product], overwrite: bool, report: CatalogLoadReport
) -> None:
    # Codes are unique without regard to case, so a staff-made "welcome10" is the file's WELCOME10.
    existing = {
        coupon.code.lower(): coupon
        for coupon in Coupon.objects.alias(code_lower=Lower("code"))
        .filter(code_lower__in=[entry.code.lower() for entry in catalog.coupons])
        .prefetch_related("products")
    }
    for entry in catalog.coupons:
        wanted = _coupon_values(entry=entry, currency=catalog.currency)
        wanted_product_ids = {products[code].pk for code in entry.product_codes}
        coupon = existing.get(entry.code.lower())
        if coupon is None:
            coupon = Coupon.objects.create(code=entry.code, **wanted)
            coupon.products.set(wanted_product_ids)
            report.coupons_created += 1
            continue
        changed = [name for name, value in wanted.items() if getattr(coupon, name) != value]
        products_changed = {product.pk for product in coupon.products.all()} != wanted_product_ids
        if not (changed or products_changed):
            continue
        if overwrite:
            for name in changed:
                setattr(coupon, name, wanted[name])
            if changed:
                coupon.save(update_fields=[*changed, "updated_at"])
            if products_changed:
                coupon.products.set(wanted_product_ids)
            report.coupons_updated += 1
        else:
            differing = [*changed, "products"] if products_changed else changed
            report.kept.append(f"coupon {coupon.code}: differs from the file in {', '.join(differing)}")


def _coupon_values(*, entry: CouponEntry, currency: str) -> dict:
    """The coupon's fields as the file sets them; times_redeemed is the checkout's counter and never loaded."""
    return {
        "name": entry.name,
        "percent_off": entry.percent_off,
        "amount_off": entry.amount_off,
        "currency": currency,
        "duration": entry.duration,
        "duration_in_months": entry.duration_in_months,
        "valid_from": entry.valid_from,
        "valid_until": entry.valid_until,
        "max_redemptions": entry.max_redemptions,
        "active": entry.active,
        "billing_cycles": list(entry.billing_cycles),
    }


# What a checkout session copies from its price: changing one of these on a used price makes a new price row.
PRICE_SOLD_TERMS = ("unit_amount", "trial_days")


# --- Prices edited by staff: what was sold never changes ----------------------------------------------------------------------------------------------------------


def price_is_used(*, price: Price) -> bool:
    """True when any row refers to the price: an order, a subscription, a plan change (each one indexed lookup). Every
    such reference protects the price from deletion (PROTECT), and the catalog need not know who makes them."""
    for relation in Price._meta.get_fields(include_hidden=True):
        if (
            relation.one_to_many
            and relation.auto_created
            and not relation.concrete
            and relation.related_model._default_manager.filter(**{relation.field.name: price.pk}).exists()
        ):
            return True
    return False


@dataclass
class PriceSaveOutcome:
    """What a price save did, for the banner and the log: every sentence is read from the rows as saved."""

    on_sale: Price | None  # the row now on sale for this product, cycle and currency (None: none)
    saved: Price  # the row staff's terms went to: the edited row, or the new row that replaced it
    retired: Price | None  # the used row switched off to keep what was sold, when there was one
    amount_before: int | None  # None for a new price

    @property
    def message(self) -> str:
        price = self.saved
        money = partial(money_format, currency=price.currency)
        head = f"{price.product.name} {price.billing_cycle} {price.currency.upper()}: "
        if self.amount_before is None:
            head += f"new price #{price.pk} at {money(price.unit_amount)}."
        elif self.amount_before != price.unit_amount:
            head += f"{money(self.amount_before)} → {money(price.unit_amount)}."
        else:
            head += f"amount {money(price.unit_amount)} unchanged."
        if self.retired is not None:
            return (
                f"{head} Price #{self.retired.pk} was used by orders: retired and kept as sold. "
                f"Price #{price.pk} is now on sale at {money(price.unit_amount)}."
            )
        if self.amount_before is not None and self.amount_before != price.unit_amount:
            head += f" Price #{price.pk} was not used by orders yet: changed in place;"
        else:
            head += f" Price #{price.pk}"
        if price.active:
            return f"{head} it is on sale."
        on_sale = (
            f" Price #{self.on_sale.pk} is on sale at {money(self.on_sale.unit_amount)}."
            if self.on_sale
            else " No price is on sale for this cycle and currency."
        )
        return f"{head} it is not on sale (retired).{on_sale}"


def price_change_is_large(*, before: int, after: int) -> bool:
    """More than 50 % either way: 7.99 -> 1,000.00 (a typo) or 7.99 -> 0.79."""
    return abs(after - before) * 2 > before


def price_save(*, price: Price, changed_fields: list[str]) -> PriceSaveOutcome:
    """Save a staff edit of a price. When the edit changes what a checkout copies (amount, trial) of a price that
    sessions or subscriptions already used, the old row is switched off and kept as it was, and a new active row
    carries the new terms: the next checkout uses it, and nothing already sold changes.

    Changing the terms of a used price while leaving it off sale is refused (ApplicationError): it could only make
    a new price that is not on sale either, a row nobody asked for. Tick Active to put the new terms on sale.
    """
    amount_before = None
    retired = None
    with transaction.atomic():
        if price.pk:
            old = Price.objects.select_for_update().get(pk=price.pk)
            amount_before = old.unit_amount
            if set(changed_fields) & set(PRICE_SOLD_TERMS) and price_is_used(price=old):
                if not price.active:
                    raise ApplicationError(
                        f"Price #{old.pk} is not on sale and orders used it: its amount and trial stay as sold. "
                        "Edit the price on sale instead, or tick Active to put these terms on sale as a new price.",
                        code="price_retired_and_used",
                        field="unit_amount",
                    )
                # The old row first: the "one active price per product, cycle and currency" index never sees two.
                Price.objects.filter(pk=old.pk).update(active=False, updated_at=timezone.now())
                retired = Price.objects.select_related("product").get(pk=old.pk)
                price = Price.objects.create(
                    product_id=old.product_id,
                    billing_cycle=old.billing_cycle,
                    currency=old.currency,
                    unit_amount=price.unit_amount,
                    trial_days=price.trial_days,
                    active=True,
                )
                logger.info("Price %s replaced by %s (%s)", old.pk, price.pk, ", ".join(changed_fields))
            else:
                price.save()
        else:
            price.save()
        saved = Price.objects.select_related("product").get(pk=price.pk)
        on_sale = Price.objects.filter(
            product_id=saved.product_id, billing_cycle=saved.billing_cycle, currency=saved.currency, active=True
        ).first()
    return PriceSaveOutcome(on_sale=on_sale, saved=saved, retired=retired, amount_before=amount_before)
