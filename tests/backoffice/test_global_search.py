"""The search box at the top of every admin page (backoffice/search.py): customers, orders and services by each kind
of key, exactly and by their start; what each staff group may see of the results; the lists' own search boxes
following the same rules; and each lookup on an index (PostgreSQL's plan with sequential scans switched off)."""

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from djstripe.models import Charge, PaymentIntent

from backoffice.search import CUSTOMERS, GROUP_ROWS, ORDERS, SERVICES, global_search, search_key
from billing.models import RefundRecord, SubscriptionInvoice
from tests.accounts.factories import SubscriptionFactory, UserFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import HostingAccountFactory

pytestmark = pytest.mark.django_db

SEARCH = "/admin/backoffice/search/"


@pytest.fixture
def jane(db):
    """Jane Doe's paid order, her customer and service, with its account, invoice, payment and refunded charge; and
    Bob, who must never turn up in a search for Jane."""
    now = timezone.now()
    subscription = SubscriptionFactory(
        checkout_session__email="Jane.Doe@Shop-Example.com",
        checkout_session__customer_name="Jane Doe",
        checkout_session__stripe_session_id="cs_test_a1janeorder",
        checkout_session__status="completed",
        checkout_session__stripe_customer_id="cus_test_jane01",
        checkout_session__domain_info={"mode": "new-or-transfer", "value": "janes-bakery.example"},
        checkout_session__completed_at=now,
        stripe_subscription_id="sub_test_jane01",
        stripe_customer_id="cus_test_jane01",
    )
    customer = subscription.customer
    customer.stripe_customer_id = "cus_test_jane01"
    customer.save()
    HostingAccountFactory(subscription=subscription, username="janebake", server="web03.sim.migrahosting.test")
    invoice = SubscriptionInvoice.objects.create(
        subscription=subscription,
        stripe_invoice_id="in_test_jane01",
        status="paid",
        amount_due=799,
        amount_paid=799,
        currency="usd",
        stripe_payment_intent_id="pi_test_jane01",
        stripe_created=now,
        stripe_state_at=now,
    )
    RefundRecord.objects.create(
        subscription=subscription,
        stripe_refund_id="re_test_jane01",
        stripe_charge_id="ch_test_jane01",
        stripe_payment_intent_id="pi_test_jane01",
        amount=100,
        currency="usd",
        status="succeeded",
        stripe_created=now,
    )

    bob = SubscriptionFactory(
        checkout_session__email="bob@other.test",
        checkout_session__customer_name="Bob Other",
        checkout_session__stripe_session_id="cs_test_b2boborder",
        checkout_session__status="completed",
        checkout_session__domain_info={"mode": "new-or-transfer", "value": "bobs-garage.test"},
        stripe_subscription_id="sub_test_bob02",
    )
    HostingAccountFactory(subscription=bob, username="bobgarage")
    return {
        "subscription": subscription,
        "customer": customer,
        "session": subscription.checkout_session,
        "invoice": invoice,
        "bob": bob,
    }


def found(results) -> dict[str, set]:
    return {group.kind: {row.pk for row in group.rows} for group in results.groups if group.rows}


def expect_jane(jane, kinds) -> dict[str, set]:
    pks = {CUSTOMERS: jane["customer"].pk, ORDERS: jane["session"].pk, SERVICES: jane["subscription"].pk}
    return {kind: {pks[kind]} for kind in kinds}


ALL = (CUSTOMERS, ORDERS, SERVICES)


@pytest.mark.parametrize(
    "term, kinds",
    [
        # Names: the start of the full name, the start of the surname; any case.
        ("Jane Doe", (CUSTOMERS, ORDERS)),
        ("jane d", (CUSTOMERS, ORDERS)),
        ("DOE", (CUSTOMERS, ORDERS)),
        # E-mail: exactly in any case, its start, its domain with or without the @.
        ("jane.doe@shop-example.com", (CUSTOMERS, ORDERS, SERVICES)),
        ("JANE.DOE@SHOP-EXAMPLE.COM", (CUSTOMERS, ORDERS, SERVICES)),
        ("jane.doe@sho", (CUSTOMERS, ORDERS, SERVICES)),
        ("@shop-example.com", (CUSTOMERS, ORDERS)),
        ("shop-example.com", (CUSTOMERS, ORDERS)),
        # Domain: exact, upper case, with www., with a trailing dot, its start.
        ("janes-bakery.example", (ORDERS, SERVICES)),
        ("WWW.Janes-Bakery.Example.", (ORDERS, SERVICES)),
        ("janes-bak", (ORDERS, SERVICES)),
        # The control panel's username, exact and its start.
        ("janebake", (SERVICES,)),
        ("JANEB", (SERVICES,)),
    ],
)
def test_each_key_finds_jane_and_nobody_else(jane, term, kinds):
    assert found(global_search(term=term)) == expect_jane(jane, kinds)


@pytest.mark.parametrize(
    "term, kinds",
    [
        ("cs_test_a1janeorder", (ORDERS, SERVICES, CUSTOMERS)),
        ("cus_test_jane01", (CUSTOMERS, ORDERS, SERVICES)),
        ("sub_test_jane01", (CUSTOMERS, ORDERS, SERVICES)),
        ("pi_test_jane01", (CUSTOMERS, ORDERS, SERVICES)),
        ("in_test_jane01", (CUSTOMERS, ORDERS, SERVICES)),
        ("ch_test_jane01", (CUSTOMERS, ORDERS, SERVICES)),
    ],
)
def test_each_stripe_id_is_found_exactly_and_by_its_start(jane, term, kinds):
    exact = global_search(term=term)
    prefix = global_search(term=term[:-3])

    assert found(exact) == expect_jane(jane, kinds) and exact.exact
    assert found(prefix) == expect_jane(jane, kinds) and not prefix.exact


def test_a_charge_never_refunded_is_found_through_djstripes_charge_and_the_invoice_it_paid(jane):
    intent = PaymentIntent.objects.create(id="pi_test_jane01", livemode=False, stripe_data={})
    Charge.objects.create(
        id="ch_test_unrefunded",
        livemode=False,
        payment_intent=intent,
        amount=7.99,
        currency="usd",
        status="succeeded",
        stripe_data={},
    )

    assert found(global_search(term="ch_test_unrefunded")) == expect_jane(jane, ALL)


def test_our_order_id_is_found(jane):
    assert found(global_search(term=str(jane["session"].pk).upper())) == expect_jane(jane, (ORDERS, SERVICES))


def test_a_term_that_matches_nothing_finds_nothing_and_says_so(jane, support_client):
    page = support_client.get(SEARCH, {"q": "zzz-nobody"}).content.decode()

    assert found(global_search(term="zzz-nobody")) == {}
    assert "Nothing found for “zzz-nobody”" in page


@pytest.mark.parametrize("term", ["ja", " j ", "@x"])
def test_a_term_too_short_searches_nothing(jane, support_client, term, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):  # the session and user only: no search query
        page = support_client.get(SEARCH, {"q": term}).content.decode()

    assert "too short to search for" in page
    assert search_key(term) is None


def test_the_lists_too_short_term_finds_nothing_instead_of_everything(jane, support_client):
    page = support_client.get(reverse("admin:accounts_customer_changelist"), {"q": "ja"})

    assert list(page.context["cl"].result_list) == []


def test_one_exact_hit_of_an_id_opens_its_page(jane, support_client):
    to_order = support_client.get(SEARCH, {"q": "cs_test_a1janeorder"})
    to_customer = support_client.get(SEARCH, {"q": "cus_test_jane01"})
    to_service = support_client.get(SEARCH, {"q": "in_test_jane01"})
    a_prefix = support_client.get(SEARCH, {"q": "cs_test_a1jane"})

    assert to_order.status_code == 302
    assert to_order["Location"] == reverse("admin:checkout_checkoutsession_change", args=[jane["session"].pk])
    assert to_customer["Location"] == reverse("admin:accounts_customer_change", args=[jane["customer"].pk])
    assert to_service["Location"] == reverse("admin:accounts_subscription_change", args=[jane["subscription"].pk])
    assert a_prefix.status_code == 200


def test_the_results_page_groups_by_kind_with_links(jane, support_client):
    page = support_client.get(SEARCH, {"q": "jane"}).content.decode()

    assert 'id="search-customers"' in page and 'id="search-orders"' in page
    assert reverse("admin:accounts_customer_change", args=[jane["customer"].pk]) in page
    assert reverse("admin:checkout_checkoutsession_change", args=[jane["session"].pk]) in page
    assert "/admin/accounts/customer/?q=jane" in page
    assert "Bob Other" not in page and "bob@other.test" not in page


def test_each_group_is_bounded_and_links_to_the_whole_list(db, support_client, django_assert_max_num_queries):
    for number in range(GROUP_ROWS + 3):
        CheckoutSessionFactory(email=f"many{number}@crowd.test", customer_name=f"Crowd Person{number}")

    with django_assert_max_num_queries(20):
        response = support_client.get(SEARCH, {"q": "@crowd.test"})

    orders = next(group for group in response.context["results"].groups if group.kind == ORDERS)
    assert len(orders.rows) == GROUP_ROWS and orders.more
    assert "All orders found" in response.content.decode()
    whole = support_client.get(orders.see_all_url)
    assert whole.context["cl"].result_count == GROUP_ROWS + 3


def test_html_in_the_term_is_escaped(jane, support_client):
    page = support_client.get(SEARCH, {"q": "<script>alert(1)</script>"}).content.decode()

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- Who sees what --------------------------------------------------------------------------------------------------


def kinds_shown(client, term="jane") -> set[str]:
    response = client.get(SEARCH, {"q": term})
    assert response.status_code == 200
    return {group.kind for group in response.context["results"].groups}


def test_catalog_managers_see_orders_but_not_customers_or_services(jane, catalog_client):
    page = catalog_client.get(SEARCH, {"q": "jane"}).content.decode()

    assert kinds_shown(catalog_client) == {ORDERS}
    assert reverse("admin:accounts_customer_change", args=[jane["customer"].pk]) not in page
    # A Stripe customer id does not open a customer page they may not see.
    assert catalog_client.get(SEARCH, {"q": "cus_test_jane01"}).status_code == 200


def test_support_billing_and_superusers_see_every_kind(jane, support_client, billing_agent, superuser):
    billing, root = Client(), Client()
    billing.force_login(billing_agent)
    root.force_login(superuser)

    assert kinds_shown(support_client) == kinds_shown(billing) == kinds_shown(root) == {CUSTOMERS, ORDERS, SERVICES}


def test_staff_who_may_see_none_of_the_kinds_are_refused(db, staff_groups):
    user = UserFactory(email="nobody@migrahosting.test", is_staff=True)
    client = Client()
    client.force_login(user)

    assert client.get(SEARCH, {"q": "jane"}).status_code == 403


def test_one_permission_shows_one_kind(jane, db, staff_groups):
    user = UserFactory(email="subs@migrahosting.test", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_subscription", content_type__app_label="accounts"))
    client = Client()
    client.force_login(user)

    assert kinds_shown(client, "janebake") == {SERVICES}


def test_people_not_signed_in_as_staff_are_sent_to_the_login(jane, client):
    customer = UserFactory(email="customer.user@example.com", password="correct horse battery")
    anonymous = client.get(SEARCH, {"q": "jane"})
    client.force_login(customer)
    not_staff = client.get(SEARCH, {"q": "jane"})

    for response in (anonymous, not_staff):
        assert response.status_code == 302 and "/login/" in response["Location"]


def test_the_search_box_is_at_the_top_of_admin_pages_for_staff_who_can_search(jane, support_client, catalog_client):
    index = support_client.get(reverse("admin:index")).content.decode()
    order = support_client.get(reverse("admin:checkout_checkoutsession_change", args=[jane["session"].pk])).content
    catalog = catalog_client.get(reverse("admin:index")).content.decode()

    assert 'id="bo-global-search"' in index and 'action="/admin/backoffice/search/"' in index
    assert b'id="bo-global-search"' in order
    assert 'id="bo-global-search"' in catalog  # orders are theirs to search


# --- The lists' search boxes follow the same rules ----------------------------------------------------------------


@pytest.mark.parametrize(
    "url_name, term",
    [
        ("admin:accounts_customer_changelist", "Jane Doe"),
        ("admin:accounts_customer_changelist", "doe"),
        ("admin:accounts_customer_changelist", "@shop-example.com"),
        ("admin:accounts_customer_changelist", "sub_test_jane01"),
        ("admin:checkout_checkoutsession_changelist", "Jane Doe"),
        ("admin:checkout_checkoutsession_changelist", "shop-example.com"),
        ("admin:checkout_checkoutsession_changelist", "www.janes-bakery.example"),
        ("admin:checkout_checkoutsession_changelist", "pi_test_jane01"),
        ("admin:checkout_checkoutsession_changelist", "in_test_jane01"),
        ("admin:accounts_subscription_changelist", "janebake"),
        ("admin:accounts_subscription_changelist", "JANES-BAKERY.EXAMPLE."),
        ("admin:accounts_subscription_changelist", "ch_test_jane01"),
    ],
)
def test_the_lists_search_boxes_find_what_the_global_search_finds(jane, support_client, url_name, term):
    response = support_client.get(reverse(url_name), {"q": term})

    rows = list(response.context["cl"].result_list)
    expected = {
        "accounts_customer": jane["customer"],
        "checkout_checkoutsession": jane["session"],
        "accounts_subscription": jane["subscription"],
    }[url_name.split(":")[1].rsplit("_", 1)[0]]
    assert rows == [expected]


# --- Every lookup on an index -------------------------------------------------------------------------------------


TERMS_BY_KEY = [
    "Jane Doe",
    "doe",
    "jane.doe@shop-example.com",
    "jane.doe@sho",
    "@shop-example.com",
    "www.janes-bakery.example",
    "janes-bak",
    "janebake",
    "cs_test_a1janeorder",
    "cs_test_a1",
    "cus_test_jane01",
    "cus_test_j",
    "sub_test_jane01",
    "sub_test",
    "pi_test_jane01",
    "pi_test",
    "in_test_jane01",
    "in_test",
    "ch_test_jane01",
    "ch_test",
    "ch_test_nothere",
    "JANEB",
    "3f2a1b4c-0000-4000-8000-000000000000",
]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL's plans")
@pytest.mark.parametrize("term", TERMS_BY_KEY)
def test_each_query_of_each_key_uses_an_index(jane, term):
    """Every query the search runs, explained with sequential scans made prohibitively expensive: a plan that still
    reads a table (or a whole index) has no index to use for that lookup."""
    tables = {
        "accounts_customer",
        "accounts_user",
        "accounts_customermembership",
        "accounts_subscription",
        "checkout_sessions",
        "billing_subscriptioninvoice",
        "billing_refundrecord",
        "provisioning_hostingaccount",
        "provisioning_provisioningjob",
        "djstripe_charge",
    }
    with CaptureQueriesContext(connection) as run:
        global_search(term=term)
    # Not the status of the orders shown (backoffice.attention.checkout_sessions_setup_attach): keyed by the page's own
    # ids, on tables of a few rows here the planner walks the small partial index of provision jobs whole; with real
    # sizes it is a nested loop from the subscriptions' unique checkout_session_id index.
    queries = [
        query["sql"]
        for query in run.captured_queries
        if query["sql"].startswith("SELECT")
        and '"accounts_subscription"."checkout_session_id" IN (' not in query["sql"]
    ]
    assert queries
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for sql in queries:
                cursor.execute(f"EXPLAIN {sql}")
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert not _scanned(plan, tables), (term, sql, plan)
        finally:
            cursor.execute("SET enable_seqscan = on")


def _scanned(plan: str, tables: set[str]) -> list[str]:
    """The tables the plan reads whole: a sequential scan, or an index scan with no condition on the index (with
    sequential scans off, the planner walks a whole index rather than the table when no index serves the lookup)."""
    whole = []
    for node in re.split(r"\n\s*->\s*", plan):
        match = re.match(
            r"\s*(Seq Scan|Index Scan|Index Only Scan|Bitmap Index Scan)(?: Backward)?(?: using \w+)? on (\w+)", node
        )
        if match and match.group(2) in tables and (match.group(1) == "Seq Scan" or "Index Cond" not in node):
            whole.append(match.group(2))
    return whole


def test_a_domain_typed_in_unicode_finds_the_order_stored_in_a_labels(db):
    session = CheckoutSessionFactory(domain_info={"mode": "new-or-transfer", "value": "xn--bcher-kva.example"})

    assert found(global_search(term="www.Bücher.example")) == {ORDERS: {session.pk}}
