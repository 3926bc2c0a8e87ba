"""CSV export of an admin list exactly as filtered and searched: the generic streaming writer, the admin mixin that
adds the "Export CSV" button and view to a changelist, and the columns of the three exported lists (orders,
customers, subscriptions).

Choices made once for every export:

- Rows come from the changelist's own queryset (filters, search, date drill-down and sort order of the page the
  button was on), so the file and the list cannot disagree.
- They are read with `.values().iterator(chunk_size=EXPORT_CHUNK_ROWS)`, on PostgreSQL a server-side cursor inside a
  transaction, and written as they come: a million rows never sit in memory, and the first bytes leave before the
  query has read the whole table.
- Money is a plain number with two decimals ("12.99") and the currency in a column of its own ("USD"): a
  spreadsheet reads "12.99" as a number it can sum or pivot, where "$12.99 USD" is text, and one column mixing
  currencies could never be summed anyway.
- Dates are ISO 8601 in UTC ("2026-11-30T16:09:05Z"), whatever the staff member's time zone.
- UTF-8 with a byte order mark: Excel (Windows and Mac) opens a double-clicked CSV in the machine's legacy code page
  unless the file starts with a BOM, which turns "Müller" into "MÃ¼ller"; LibreOffice, Numbers, Google Sheets and
  pandas (`encoding="utf-8-sig"`) all skip it.
- A text cell that starts with = + - @ tab or carriage return gets a leading apostrophe (OWASP, "CSV Injection"):
  a customer's name cannot become a formula on a staff member's machine. Numbers and dates we format ourselves are
  never touched.
"""

import csv
import logging
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal

from django.contrib.admin.models import LogEntry
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.contenttypes.models import ContentType
from django.contrib.postgres.aggregates import StringAgg
from django.core.exceptions import PermissionDenied
from django.db import connection, transaction
from django.db.models import F, Func, OuterRef, QuerySet, Subquery, TextField, Value
from django.http import HttpResponseNotAllowed, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse
from django.utils import timezone

logger = logging.getLogger(__name__)

EXPORT_PERMISSION = "backoffice.export_csv"
# LogEntry's own flags are 1 (added), 2 (changed), 3 (deleted); an export changes nothing, so it gets a flag of its
# own: the audit log names it "CSV export", and Django's history pages, which list one object's entries, never see it
# (an export has no object id).
EXPORT_ACTION_FLAG = 4
EXPORT_LOG_LABEL = "Export CSV"
# Rows per FETCH from the server-side cursor: what is in memory at once (a few hundred kilobytes).
EXPORT_CHUNK_ROWS = 2000
# Bytes gathered before a piece of the response is handed to the server: one write per ~64 KB, not per row.
EXPORT_WRITE_BYTES = 64 * 1024
BOM = "\ufeff"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


# --- Columns ----------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Money:
    """Cents and a currency; written as "12.99" (the currency goes in its own column)."""

    cents: int | None


@dataclass(frozen=True)
class Column:
    header: str
    fields: tuple[str, ...]  # the `.values()` keys this column reads
    value: Callable[[dict], object] | None = None  # default: the first field's value as it is

    def read(self, row: dict) -> object:
        return self.value(row) if self.value else row[self.fields[0]]


@dataclass(frozen=True)
class ExportSpec:
    """One list's file: its name (in the filename and the log), its columns, and annotations the columns read."""

    name: str
    columns: tuple[Column, ...]
    annotations: dict[str, Callable[[], object]] = field(default_factory=dict)

    @property
    def fields(self) -> list[str]:
        seen: dict[str, None] = {}
        for column in self.columns:
            seen.update(dict.fromkeys(column.fields))
        return list(seen)


def text(header: str, name: str) -> Column:
    return Column(header, (name,))


def money(header: str, name: str) -> Column:
    return Column(header, (name,), lambda row: Money(row[name]))


def currency(header: str, name: str) -> Column:
    return Column(header, (name,), lambda row: (row[name] or "").upper())


def label(header: str, name: str, choices) -> Column:
    """A status or cycle as the pages show it ("Pending payment"), not the stored code ("pending")."""
    labels = dict(choices)
    return Column(header, (name,), lambda row: labels.get(row[name], row[name]))


def cell(value: object) -> str:
    """One value as written in the file."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, Money):
        return "" if value.cents is None else str((Decimal(value.cents) / 100).quantize(Decimal("0.01")))
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (int, Decimal)):
        return str(value)
    value = str(value)
    return "'" + value if value.startswith(FORMULA_STARTS) else value


# --- Writing ------------------------------------------------------------------------------------------------------------


class _Line:
    """csv.writer's file: hands back the line it was asked to write."""

    def write(self, line: str) -> str:
        return line


def export_rows(queryset: QuerySet, *, spec: ExportSpec, chunk_size: int = EXPORT_CHUNK_ROWS) -> Iterator[dict]:
    """The queryset's rows as dicts of the spec's fields, read in chunks from a server-side cursor.

    Inside a transaction on purpose: outside one (autocommit), Django declares the PostgreSQL cursor WITH HOLD, and
    PostgreSQL then runs the whole query to its end and keeps the result before the first row comes back.
    """
    queryset = queryset.annotate(**{name: make() for name, make in spec.annotations.items()})
    with transaction.atomic(using=queryset.db):
        yield from queryset.values(*spec.fields).iterator(chunk_size=chunk_size)


def csv_lines(queryset: QuerySet, *, spec: ExportSpec, chunk_size: int = EXPORT_CHUNK_ROWS) -> Iterator[str]:
    """The file line by line (header first, no BOM): what the benchmark times to the first megabyte."""
    writer = csv.writer(_Line(), lineterminator="\r\n")  # RFC 4180's line end, which Excel expects
    yield writer.writerow([column.header for column in spec.columns])
    rows = export_rows(queryset, spec=spec, chunk_size=chunk_size)
    try:
        for row in rows:
            yield writer.writerow([cell(column.read(row)) for column in spec.columns])
    finally:
        rows.close()  # ends the cursor's transaction at once when the reader stops early


def csv_stream(lines: Iterable[str], *, on_done: Callable[[int, bool], None] | None = None) -> Iterator[bytes]:
    """UTF-8 bytes with a BOM, in pieces of about EXPORT_WRITE_BYTES. `on_done(rows, complete)` runs at the end, or
    when the download stops early (the client went away)."""
    rows, complete = -1, False  # the header is not a row
    buffer, size = [BOM], 0
    try:
        for line in lines:
            rows += 1
            buffer.append(line)
            size += len(line)
            if size >= EXPORT_WRITE_BYTES:
                yield "".join(buffer).encode()
                buffer, size = [], 0
        if buffer:
            yield "".join(buffer).encode()
        complete = True
    finally:
        # The rows' generator first: its transaction (and cursor) ends now, not whenever it is garbage-collected,
        # so the log written next is not inside it (nor rolled back with it).
        if hasattr(lines, "close"):
            lines.close()
        if on_done is not None:
            on_done(max(rows, 0), complete)


def export_filename(spec: ExportSpec, *, now: datetime | None = None) -> str:
    """ "orders-20261130T160905Z.csv": the list and the moment, with nothing a file system refuses."""
    return f"{spec.name}-{(now or timezone.now()).astimezone(UTC):%Y%m%dT%H%M%SZ}.csv"


# --- The log --------------------------------------------------------------------------------------------------------------


def export_log_message(*, spec: ExportSpec, filters: str, rows: int | None = None, complete: bool = True) -> str:
    """ "Export CSV: orders; filters: ?status=completed&q=example.com; 120 rows". `filters` is the list's query string,
    so the audit log can link back to exactly that list."""
    message = f"{EXPORT_LOG_LABEL}: {spec.name}; filters: {filters or '(none)'}"
    if rows is not None:
        counted = f"{rows:,} row{'' if rows == 1 else 's'}"
        message += f"; {counted}" if complete else f"; stopped after {counted} (download interrupted)"
    return message


def export_log_filters(message: str) -> str | None:
    """The query string an export entry recorded ("?status=completed"), or None."""
    _, found, rest = message.partition("; filters: ")
    if not found:
        return None
    filters = rest.split("; ", 1)[0]
    return filters if filters.startswith("?") else ""


def export_log_create(*, user, model, spec: ExportSpec, filters: str) -> LogEntry:
    """Written when the download starts (an export stopped half-way was still made), completed with the row count at
    the end."""
    return LogEntry.objects.create(
        user_id=user.pk,
        content_type=ContentType.objects.get_for_model(model, for_concrete_model=False),
        object_id=None,
        object_repr=f"{spec.name} CSV export"[:200],
        action_flag=EXPORT_ACTION_FLAG,
        change_message=export_log_message(spec=spec, filters=filters),
    )


# --- The admin hook -------------------------------------------------------------------------------------------------------


class CsvExportMixin:
    """Put before `admin.ModelAdmin` and set `export_spec`: the changelist gets an "Export CSV" button (for staff
    with backoffice.export_csv and view permission on the model) that downloads the rows the list shows, all pages.

    The rows are the changelist's queryset itself: Django's ChangeList is built from the same request parameters, only
    without its page and counts (ExportChangeList), so every filter and search the list knows applies.
    """

    export_spec: ExportSpec

    def has_export_permission(self, request) -> bool:
        return request.user.has_perm(EXPORT_PERMISSION) and self.has_view_permission(request)

    def get_urls(self):
        opts = self.model._meta
        return [
            path(
                "export/",
                self.admin_site.admin_view(self.export_csv_view),
                name=f"{opts.app_label}_{opts.model_name}_export",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        extra_context = extra_context or {}
        if self.has_export_permission(request):
            opts = self.model._meta
            query = request.GET.copy()
            for ignored in ("p", "e"):  # the page and the error flag say nothing about which rows
                query.pop(ignored, None)
            extra_context["export_csv_url"] = reverse(f"admin:{opts.app_label}_{opts.model_name}_export") + (
                f"?{query.urlencode()}" if query else ""
            )
        return super().changelist_view(request, extra_context)

    def get_changelist(self, request, **kwargs):
        changelist = super().get_changelist(request, **kwargs)
        if getattr(request, "_csv_export", False):
            return type("Export" + changelist.__name__, (changelist,), {"get_results": _no_results})
        return changelist

    def export_queryset(self, request) -> QuerySet:
        """The rows of the list the request's parameters select, in the list's order. May raise
        IncorrectLookupParameters (a filter the list does not know)."""
        request._csv_export = True
        try:
            return self.get_changelist_instance(request).queryset
        finally:
            request._csv_export = False

    def export_csv_view(self, request):
        if request.method != "GET":  # not HEAD either: it would log an export nobody downloaded
            return HttpResponseNotAllowed(["GET"])
        if not self.has_export_permission(request):
            raise PermissionDenied
        opts = self.model._meta
        try:
            queryset = self.export_queryset(request)
        except IncorrectLookupParameters:
            # As the list itself does: back to the unfiltered list with Django's "?e=1" error flag.
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist") + "?e=1")
        spec = self.export_spec
        query = request.GET.copy()
        for ignored in ("p", "e"):
            query.pop(ignored, None)
        filters = f"?{query.urlencode()}" if query else ""
        entry = export_log_create(user=request.user, model=self.model, spec=spec, filters=filters)
        logger.info("CSV export %s by user %s (%s)", spec.name, request.user.pk, filters or "no filters")

        def finish(rows: int, complete: bool) -> None:
            LogEntry.objects.filter(pk=entry.pk).update(
                change_message=export_log_message(spec=spec, filters=filters, rows=rows, complete=complete)
            )

        response = StreamingHttpResponse(
            csv_stream(csv_lines(queryset, spec=spec), on_done=finish), content_type="text/csv; charset=utf-8"
        )
        response["Content-Disposition"] = f'attachment; filename="{export_filename(spec)}"'
        return response


def _no_results(self, request) -> None:
    """The export needs the changelist's queryset, not its page of 50 rows nor its counts."""
    self.result_count = self.full_result_count = 0
    self.result_list, self.can_show_all, self.multi_page = [], False, False


# --- The three lists --------------------------------------------------------------------------------------------------------


def _orders_spec() -> ExportSpec:
    from catalog.models import BillingCycle
    from checkout.models import CheckoutSessionStatus

    return ExportSpec(
        name="orders",
        columns=(
            text("Order ID", "id"),
            text("Created (UTC)", "created_at"),
            label("Status", "status", CheckoutSessionStatus.choices),
            text("E-mail", "email"),
            text("Name", "customer_name"),
            Column(
                "Domain",
                ("domain_info",),
                lambda row: (row["domain_info"] or {}).get("value") if isinstance(row["domain_info"], dict) else None,
            ),
            Column(
                "Plan",
                ("price__product__name", "product_code"),
                lambda row: row["price__product__name"] or row["product_code"],
            ),
            label("Billing cycle", "billing_cycle", BillingCycle.choices),
            money("Amount", "amount"),
            money("Discount", "amount_discount"),
            currency("Currency", "currency"),
            text("Coupon", "coupon_code"),
            text("Trial days", "trial_days"),
            text("Completed (UTC)", "completed_at"),
            text("Stripe session ID", "stripe_session_id"),
            text("Stripe customer ID", "stripe_customer_id"),
            text("Stripe subscription ID", "subscription__stripe_subscription_id"),
        ),
    )


def _customer_domains():
    from accounts.models import Subscription

    if connection.vendor == "postgresql":
        domains = StringAgg("domain", ", ", distinct=True, order_by="domain")
    else:  # SQLite (make run): its GROUP_CONCAT, in no promised order
        domains = Func(F("domain"), Value(", "), function="GROUP_CONCAT", output_field=TextField())
    # One indexed lookup per customer (subscriptions by customer_id), inside the same streamed query.
    return Subquery(
        Subscription.objects.filter(customer_id=OuterRef("pk"), domain__gt="")
        .order_by()
        .values("customer_id")
        .annotate(domains=domains)
        .values("domains")[:1]
    )


def _customers_spec() -> ExportSpec:
    return ExportSpec(
        name="customers",
        columns=(
            text("Customer ID", "id"),
            text("Name", "name"),
            text("E-mail", "email"),
            Column("E-mail domain", ("email",), lambda row: row["email"].rpartition("@")[2].lower() or None),
            text("Domains", "export_domains"),
            text("Stripe customer ID", "stripe_customer_id"),
            text("Created (UTC)", "created_at"),
        ),
        annotations={"export_domains": _customer_domains},
    )


def _subscriptions_spec() -> ExportSpec:
    from accounts.models import SubscriptionStatus
    from catalog.models import BillingCycle

    return ExportSpec(
        name="subscriptions",
        columns=(
            text("Subscription ID", "id"),
            label("Status", "status", SubscriptionStatus.choices),
            text("Plan", "product__name"),
            label("Billing cycle", "billing_cycle", BillingCycle.choices),
            money("Amount", "amount"),
            currency("Currency", "currency"),
            text("Domain", "domain"),
            text("Customer ID", "customer_id"),
            text("Customer name", "customer__name"),
            text("Customer e-mail", "customer__email"),
            text("Current period start (UTC)", "current_period_start"),
            text("Current period end (UTC)", "current_period_end"),
            text("Cancels at period end", "cancel_at_period_end"),
            text("Canceled (UTC)", "canceled_at"),
            text("Ended (UTC)", "ended_at"),
            text("Created (UTC)", "created_at"),
            text("Order ID", "checkout_session_id"),
            text("Stripe subscription ID", "stripe_subscription_id"),
            text("Stripe customer ID", "stripe_customer_id"),
        ),
    )


ORDERS_EXPORT = _orders_spec()
CUSTOMERS_EXPORT = _customers_spec()
SUBSCRIPTIONS_EXPORT = _subscriptions_spec()
