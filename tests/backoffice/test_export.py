"""CSV export of the order, customer and subscription lists: exactly the rows the list's filters and search select
(all pages), readable columns with money as money, formula cells escaped, streamed from a server-side cursor with
bounded memory, for staff holding backoffice.export_csv, each export in the admin log."""

import csv
import io
import re
import tracemalloc
from datetime import UTC, datetime, timedelta

import pytest
from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core.signals import request_finished
from django.db import close_old_connections, connection
from django.http import StreamingHttpResponse
from django.urls import reverse
from django.utils import timezone

from accounts.models import Customer
from backoffice.export import (
    EXPORT_ACTION_FLAG,
    EXPORT_CHUNK_ROWS,
    ORDERS_EXPORT,
    csv_lines,
    csv_stream,
)
from checkout.models import CheckoutSession
from tests.accounts.factories import CustomerFactory, SubscriptionFactory, UserFactory
from tests.catalog.factories import PriceFactory
from tests.checkout.factories import CheckoutSessionFactory

pytestmark = pytest.mark.django_db

ORDERS = "admin:checkout_checkoutsession"
CUSTOMERS = "admin:accounts_customer"
SUBSCRIPTIONS = "admin:accounts_subscription"


def export(client, name: str, params: dict | None = None) -> list[dict]:
    response = client.get(reverse(f"{name}_export"), params or {})
    assert response.status_code == 200, response
    body = b"".join(response.streaming_content)
    assert body.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM, for Excel
    return list(csv.DictReader(io.StringIO(body.decode("utf-8-sig"), newline="")))


def listed_ids(client, name: str, params: dict | None = None) -> set[str]:
    """Every row the changelist selects (all its pages), read from the page's own ChangeList."""
    response = client.get(reverse(f"{name}_changelist"), params or {})
    assert response.status_code == 200
    return {str(pk) for pk in response.context["cl"].queryset.values_list("pk", flat=True)}


# --- Which rows ---------------------------------------------------------------------------------------------------------


def test_orders_export_has_every_page_of_the_filtered_list_and_nothing_else(support_client):
    price = PriceFactory(billing_cycle="yearly")
    CheckoutSessionFactory.create_batch(55, status="completed", price=price)
    CheckoutSessionFactory.create_batch(3, status="pending", price=price)
    CheckoutSessionFactory.create_batch(4, status="completed")  # another product (and cycle)
    params = {"status": "completed", "product": price.product.code}

    rows = export(support_client, ORDERS, params)

    assert len(rows) == 55  # more than one page of 50
    assert {row["Order ID"] for row in rows} == listed_ids(support_client, ORDERS, params)
    assert {row["Status"] for row in rows} == {"Completed"}


def test_orders_export_follows_the_search_and_the_sort_order(support_client):
    wanted = [CheckoutSessionFactory(email=f"zed{n}@shop.example", customer_name="Zed") for n in range(3)]
    for days, session in zip((2, 0, 1), wanted, strict=True):  # created out of order
        CheckoutSession.objects.filter(pk=session.pk).update(created_at=timezone.now() - timedelta(days=days))
    CheckoutSessionFactory(email="other@example.com", customer_name="Other")
    listed = support_client.get(reverse(f"{ORDERS}_changelist")).context["cl"].list_display
    oldest_first = str(list(listed).index("created_at"))  # the list's "sort by this column, ascending" parameter

    rows = export(support_client, ORDERS, {"q": "zed", "o": oldest_first})

    assert [row["E-mail"] for row in rows] == ["zed0@shop.example", "zed2@shop.example", "zed1@shop.example"]
    assert {row["Order ID"] for row in rows} == listed_ids(support_client, ORDERS, {"q": "zed"})


def test_customers_export_follows_the_search(billing_client):
    CustomerFactory(email="ann@acme.example", name="Ann")
    CustomerFactory(email="bob@acme.example", name="Bob")
    CustomerFactory(email="eve@else.example", name="Eve")

    rows = export(billing_client, CUSTOMERS, {"q": "ann@acme.example"})

    assert [row["Name"] for row in rows] == ["Ann"]
    assert {row["Customer ID"] for row in rows} == listed_ids(billing_client, CUSTOMERS, {"q": "ann@acme.example"})


def test_subscriptions_export_follows_filters_and_search(support_client):
    kept = SubscriptionFactory(status="past_due", domain="kept.example")
    SubscriptionFactory(status="active", domain="active.example")
    SubscriptionFactory(status="past_due", domain="other.example")

    rows = export(support_client, SUBSCRIPTIONS, {"status__exact": "past_due", "q": "kept.example"})

    assert [row["Subscription ID"] for row in rows] == [str(kept.pk)]
    assert rows[0]["Status"] == "Past due"
    assert len(export(support_client, SUBSCRIPTIONS, {"status__exact": "past_due"})) == 2


def test_a_filter_the_list_does_not_know_goes_back_to_the_list_as_the_list_would(support_client):
    response = support_client.get(reverse(f"{ORDERS}_export"), {"nonsense__in": "1"})
    assert response.status_code == 302
    assert response["Location"].endswith("?e=1")


# --- Columns ------------------------------------------------------------------------------------------------------------


def test_order_columns_are_readable_with_money_as_money_and_dates_in_utc(support_client):
    price = PriceFactory(
        product__name="Business Hosting", product__code="business", billing_cycle="biennial", unit_amount=129_999
    )
    session = CheckoutSessionFactory(
        price=price,
        email="ann@acme.example",
        customer_name="Ann Müller",
        amount=129_999,
        amount_discount=1_000,
        currency="eur",
        coupon_code="WELCOME10",
        status="completed",
        stripe_customer_id="cus_test_ann",
        domain_info={"mode": "new-or-transfer", "value": "acme.example"},
        completed_at=datetime(2026, 11, 30, 16, 9, 5, tzinfo=UTC),
    )
    SubscriptionFactory(checkout_session=session, stripe_subscription_id="sub_test_ann")

    (row,) = export(support_client, ORDERS)

    assert list(row) == [
        "Order ID",
        "Created (UTC)",
        "Status",
        "E-mail",
        "Name",
        "Domain",
        "Plan",
        "Billing cycle",
        "Amount",
        "Discount",
        "Currency",
        "Coupon",
        "Trial days",
        "Completed (UTC)",
        "Stripe session ID",
        "Stripe customer ID",
        "Stripe subscription ID",
    ]
    assert row["Order ID"] == str(session.pk)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", row["Created (UTC)"])
    assert row | {"Order ID": "", "Created (UTC)": ""} == {
        "Order ID": "",
        "Created (UTC)": "",
        "Status": "Completed",
        "E-mail": "ann@acme.example",
        "Name": "Ann Müller",
        "Domain": "acme.example",
        "Plan": "Business Hosting",
        "Billing cycle": "Biennial (2 years)",
        "Amount": "1299.99",
        "Discount": "10.00",
        "Currency": "EUR",
        "Coupon": "WELCOME10",
        "Trial days": "",
        "Completed (UTC)": "2026-11-30T16:09:05Z",
        "Stripe session ID": session.stripe_session_id,
        "Stripe customer ID": "cus_test_ann",
        "Stripe subscription ID": "sub_test_ann",
    }


def test_customer_and_subscription_columns(support_client):
    subscription = SubscriptionFactory(
        checkout_session__email="ann@acme.example",
        checkout_session__customer_name="Ann",
        domain="acme.example",
        amount=799,
        currency="usd",
        stripe_subscription_id="sub_test_c1",
        stripe_customer_id="cus_test_c1",
        cancel_at_period_end=True,
        billing_cycle="monthly",
        current_period_end=datetime(2027, 1, 1, tzinfo=UTC),
    )
    SubscriptionFactory(
        checkout_session__email="ann2@acme.example", customer=subscription.customer, domain="shop.acme.example"
    )
    Customer.objects.filter(pk=subscription.customer_id).update(stripe_customer_id="cus_test_c1")

    (customer,) = export(support_client, CUSTOMERS)
    subscriptions = export(support_client, SUBSCRIPTIONS, {"q": "sub_test_c1"})

    assert customer == {
        "Customer ID": str(subscription.customer_id),
        "Name": "Ann",
        "E-mail": "ann@acme.example",
        "E-mail domain": "acme.example",
        "Domains": "acme.example, shop.acme.example",
        "Stripe customer ID": "cus_test_c1",
        "Created (UTC)": customer["Created (UTC)"],
    }
    (row,) = subscriptions
    assert {
        key: row[key]
        for key in (
            "Status",
            "Plan",
            "Billing cycle",
            "Amount",
            "Currency",
            "Domain",
            "Customer e-mail",
            "Current period end (UTC)",
            "Cancels at period end",
            "Stripe subscription ID",
            "Order ID",
        )
    } == {
        "Status": "Active",
        "Plan": subscription.product.name,
        "Billing cycle": "Monthly",
        "Amount": "7.99",
        "Currency": "USD",
        "Domain": "acme.example",
        "Customer e-mail": "ann@acme.example",
        "Current period end (UTC)": "2027-01-01T00:00:00Z",
        "Cancels at period end": "yes",
        "Stripe subscription ID": "sub_test_c1",
        "Order ID": str(subscription.checkout_session_id),
    }
    assert subscription.product.name != subscription.product.code  # names, not product codes


@pytest.mark.parametrize(
    "typed", ['=HYPERLINK("http://evil.example","x")', "+1+1", "-2+3", "@SUM(A1)", "\tcmd", "\rcmd"]
)
def test_a_cell_that_would_start_a_formula_gets_an_apostrophe(support_client, typed):
    CheckoutSessionFactory(customer_name=typed, email="f@example.com")

    (row,) = export(support_client, ORDERS)

    assert row["Name"] == "'" + typed
    assert row["E-mail"] == "f@example.com"


def test_quotes_commas_and_line_breaks_stay_in_their_cell(support_client):
    CheckoutSessionFactory(customer_name='Smith, "Jr"\nSecond line')
    (row,) = export(support_client, ORDERS)
    assert row["Name"] == 'Smith, "Jr"\nSecond line'


def test_the_file_is_named_after_the_list_and_the_moment(support_client):
    response = support_client.get(reverse(f"{SUBSCRIPTIONS}_export"))
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert re.fullmatch(r'attachment; filename="subscriptions-\d{8}T\d{6}Z\.csv"', response["Content-Disposition"])


# --- Streaming ---------------------------------------------------------------------------------------------------------


def _bulk_orders(count: int) -> None:
    price = PriceFactory()
    template = CheckoutSessionFactory.build(price=price)
    fields = {
        f.attname: getattr(template, f.attname)
        for f in CheckoutSession._meta.concrete_fields
        if f.attname not in ("id", "stripe_session_id", "request_fingerprint", "email")
    }
    CheckoutSession.objects.bulk_create(
        [
            CheckoutSession(
                **fields,
                stripe_session_id=f"cs_test_bulk{n:07d}",
                request_fingerprint=f"bulk{n:060d}",
                email=f"bulk{n}@example.com",
            )
            for n in range(count)
        ],
        batch_size=2000,
    )


@pytest.mark.postgres
def test_the_export_streams_from_a_server_side_cursor_before_the_query_has_been_read(support_client):
    """After the first piece of the file, PostgreSQL still holds an open cursor (not WITH HOLD, which would have
    run the query to its end first): the rest is read chunk by chunk while the file is written."""
    if connection.vendor != "postgresql":
        pytest.skip("server-side cursors are PostgreSQL's")
    _bulk_orders(EXPORT_CHUNK_ROWS + 500)

    response = support_client.get(reverse(f"{ORDERS}_export"))
    assert isinstance(response, StreamingHttpResponse)
    pieces = iter(response.streaming_content)
    first = next(pieces)
    with connection.cursor() as cursor:
        cursor.execute("SELECT is_holdable, statement FROM pg_cursors")
        open_cursors = cursor.fetchall()
    rest = b"".join(pieces)

    assert len(first) < len(first + rest) / 4  # the first piece left long before the last row
    assert len(open_cursors) == 1
    holdable, statement = open_cursors[0]
    assert holdable is False
    assert "checkout_sessions" in statement
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_cursors")
        assert cursor.fetchone()[0] == 0  # closed at the end
    assert (first + rest).decode("utf-8-sig").count("\r\n") == EXPORT_CHUNK_ROWS + 500 + 1


@pytest.mark.postgres
def test_memory_stays_bounded_as_the_rows_grow(db):
    """Ten times the rows, about the same peak: what is held at once is one chunk of rows and one piece of the file,
    not the result."""
    if connection.vendor != "postgresql":
        pytest.skip("server-side cursors are PostgreSQL's")

    def peak(rows: int) -> int:
        CheckoutSession.objects.all().delete()
        _bulk_orders(rows)
        queryset = CheckoutSession.objects.select_related("price__product").order_by("-created_at", "-pk")
        tracemalloc.start()
        written = sum(len(piece) for piece in csv_stream(csv_lines(queryset, spec=ORDERS_EXPORT, chunk_size=200)))
        top = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert written > rows * 100
        return top

    small, large = peak(600), peak(6000)
    tracemalloc.start()
    everything = list(CheckoutSession.objects.values(*ORDERS_EXPORT.fields))
    materialised = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert len(everything) == 6000

    print(f"peak traced memory: 600 rows {small:,} B, 6000 rows {large:,} B, 6000 rows as a list {materialised:,} B")
    assert large < small * 1.5, (small, large)
    assert large < materialised / 3, (large, materialised)


# --- Who may export, and the log ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("staff", ["support_agent", "billing_agent", "superuser"])
@pytest.mark.parametrize("name", [ORDERS, CUSTOMERS, SUBSCRIPTIONS])
def test_support_billing_and_superusers_see_the_button_and_export(client, request, staff, name):
    client.force_login(request.getfixturevalue(staff))
    page = client.get(reverse(f"{name}_changelist"), {"q": "x", "p": "2"})
    assert 'id="export-csv"' in page.content.decode()
    assert f'href="{reverse(f"{name}_export")}?q=x"' in page.content.decode()  # the filters, not the page
    assert client.get(reverse(f"{name}_export")).status_code == 200


def test_catalog_managers_see_no_button_and_get_403(catalog_client):
    page = catalog_client.get(reverse(f"{ORDERS}_changelist"))
    assert page.status_code == 200
    assert 'id="export-csv"' not in page.content.decode()
    for name in (ORDERS, CUSTOMERS, SUBSCRIPTIONS):
        assert catalog_client.get(reverse(f"{name}_export")).status_code == 403
    assert not LogEntry.objects.filter(action_flag=EXPORT_ACTION_FLAG).exists()


def test_non_staff_and_anonymous_go_to_the_login_page(client):
    for name in (ORDERS, CUSTOMERS):
        response = client.get(reverse(f"{name}_export"))
        assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory(email="customer@example.com"))
    response = client.get(reverse(f"{ORDERS}_export"))
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_the_export_is_get_only(support_client):
    assert support_client.post(reverse(f"{ORDERS}_export")).status_code == 405


def test_each_export_is_logged_with_its_filters_and_row_count(support_client, support_agent):
    CheckoutSessionFactory.create_batch(2, status="completed")
    CheckoutSessionFactory(status="pending")

    response = support_client.get(reverse(f"{ORDERS}_export"), {"status": "completed", "p": "3"})
    entry = LogEntry.objects.get(action_flag=EXPORT_ACTION_FLAG)
    assert entry.change_message == "Export CSV: orders; filters: ?status=completed"  # logged before streaming
    b"".join(response.streaming_content)

    entry.refresh_from_db()
    assert entry.user == support_agent
    assert entry.content_type == ContentType.objects.get_for_model(CheckoutSession)
    assert entry.object_id is None
    assert entry.change_message == "Export CSV: orders; filters: ?status=completed; 2 rows"


def test_a_download_stopped_half_way_says_so_in_the_log(rf, support_agent):
    _bulk_orders(1500)
    request = rf.get(reverse(f"{ORDERS}_export"))
    request.user = support_agent
    response = admin.site._registry[CheckoutSession].export_csv_view(request)
    next(iter(response.streaming_content))
    # The client went away: the server stops iterating and closes the response (the signal that would close the
    # test's database connection held back, as Django's test client does).
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)

    entry = LogEntry.objects.get(action_flag=EXPORT_ACTION_FLAG)
    assert re.search(r"; stopped after [\d,]+ rows \(download interrupted\)$", entry.change_message)
    assert "1,500 rows" not in entry.change_message
