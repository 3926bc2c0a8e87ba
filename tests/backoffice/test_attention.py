"""Needs attention (backoffice/attention.py): the banner on an order and a customer for each kind of trouble (a setup
that failed or is overdue, a payment held for review, a suspended service), the "needs attention" filter of the order
and customer lists for each kind, the dashboard's counts, and an order whose setup failed never reading "Completed"."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from backoffice.attention import (
    PAYMENT_REVIEW,
    SETUP_FAILED,
    SETUP_OVERDUE,
    SUSPENDED,
    attention_counts,
    customer_attention,
    session_attention,
)
from provisioning.models import ProvisioningJobStatus
from tests.accounts.factories import SubscriptionFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import HostingAccountFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db

ORDERS = "admin:checkout_checkoutsession_changelist"
CUSTOMERS = "admin:accounts_customer_changelist"


def paid_order(name: str, **kwargs):
    return SubscriptionFactory(
        checkout_session__email=f"{name}@example.com",
        checkout_session__customer_name=name.title(),
        checkout_session__status="completed",
        checkout_session__completed_at=timezone.now(),
        checkout_session__domain_info={"mode": "new-or-transfer", "value": f"{name}.example"},
        stripe_subscription_id=f"sub_test_{name}",
        **kwargs,
    )


@pytest.fixture
def troubles(db):
    """One order of each kind of trouble, and one that is fine."""
    now = timezone.now()
    failed = paid_order("failed")
    ProvisioningJobFactory(
        subscription=failed,
        status=ProvisioningJobStatus.FAILED,
        attempts=5,
        last_error="panel said no",
        finished_at=now,
    )
    overdue = paid_order("overdue")
    ProvisioningJobFactory(
        subscription=overdue,
        status=ProvisioningJobStatus.RETRYING,
        attempts=2,
        next_attempt_at=now - timedelta(hours=2),
    )
    review = CheckoutSessionFactory(
        email="review@example.com",
        customer_name="Review",
        status="needs_review",
        stripe_customer_id="cus_test_review",
        metadata={"review_reason": "Stripe charged 100 usd; we expected 799 usd"},
    )
    review_customer = paid_order("review").customer  # an earlier order made the customer; this one is held
    review_customer.email = "review@example.com"
    review_customer.save()
    suspended = paid_order("suspended")
    ProvisioningJobFactory(subscription=suspended, status=ProvisioningJobStatus.SUCCEEDED)
    HostingAccountFactory(subscription=suspended, status="suspended", username="suspendd", status_changed_at=now)
    fine = paid_order("fine")
    ProvisioningJobFactory(subscription=fine, status=ProvisioningJobStatus.SUCCEEDED)
    HostingAccountFactory(subscription=fine, username="fineacct")
    return {
        SETUP_FAILED: failed.checkout_session,
        SETUP_OVERDUE: overdue.checkout_session,
        PAYMENT_REVIEW: review,
        SUSPENDED: suspended.checkout_session,
        "fine": fine.checkout_session,
        "customers": {
            SETUP_FAILED: failed.customer,
            SETUP_OVERDUE: overdue.customer,
            PAYMENT_REVIEW: review_customer,
            SUSPENDED: suspended.customer,
            "fine": fine.customer,
        },
    }


BANNERS = {
    SETUP_FAILED: ("error", "Paid, but the setup failed"),
    SETUP_OVERDUE: ("warning", "Setup overdue"),
    PAYMENT_REVIEW: ("error", "Payment held for review"),
    SUSPENDED: ("warning", "Service suspended"),
}


@pytest.mark.parametrize("kind", list(BANNERS))
def test_each_kind_of_trouble_gives_the_order_and_its_customer_a_banner(troubles, kind):
    level, words = BANNERS[kind]

    on_order = session_attention(session=troubles[kind])
    on_customer = customer_attention(customer=troubles["customers"][kind])

    assert [(item.kind, item.level) for item in on_order] == [(kind, level)]
    assert words in on_order[0].message
    assert [(item.kind, item.level) for item in on_customer] == [(kind, level)]


def test_an_order_and_a_customer_without_trouble_get_no_banner(troubles):
    assert session_attention(session=troubles["fine"]) == []
    assert customer_attention(customer=troubles["customers"]["fine"]) == []


def test_the_order_page_shows_the_banner_with_a_link_to_the_setup_tools(troubles, support_client):
    session = troubles[SETUP_FAILED]
    job = session.subscription.provisioning_jobs.get()

    page = support_client.get(reverse("admin:checkout_checkoutsession_change", args=[session.pk])).content.decode()
    fine = support_client.get(reverse("admin:checkout_checkoutsession_change", args=[troubles["fine"].pk]))

    assert 'id="needs-attention"' in page and "Paid, but the setup failed" in page and "panel said no" in page
    assert "<strong>Paid — setup failed</strong>" in page and "<strong>Completed</strong>" not in page
    assert reverse("admin:provisioning_provisioningjob_change", args=[job.pk]) + "#setup-tools" in page
    assert 'id="needs-attention"' not in fine.content.decode()


def test_the_review_banner_says_why_the_payment_was_held(troubles, support_client):
    session = troubles[PAYMENT_REVIEW]

    page = support_client.get(reverse("admin:checkout_checkoutsession_change", args=[session.pk])).content.decode()

    assert "Payment held for review" in page and "we expected 799 usd" in page


@pytest.mark.parametrize("kind", list(BANNERS))
def test_the_order_lists_filter_shows_each_kind_and_nothing_else(troubles, support_client, kind):
    response = support_client.get(reverse(ORDERS), {"attention": kind})

    assert list(response.context["cl"].result_list) == [troubles[kind]]


@pytest.mark.parametrize("kind", list(BANNERS))
def test_the_customer_lists_filter_shows_each_kind_and_nothing_else(troubles, support_client, kind):
    response = support_client.get(reverse(CUSTOMERS), {"attention": kind})

    assert list(response.context["cl"].result_list) == [troubles["customers"][kind]]


def test_the_filters_are_offered_to_who_sees_the_lists(troubles, support_client, catalog_client):
    orders = support_client.get(reverse(ORDERS)).content.decode()

    assert "By needs attention" in orders and "?attention=setup_failed" in orders
    assert "?attention=setup_failed" in catalog_client.get(reverse(ORDERS)).content.decode()
    assert catalog_client.get(reverse(CUSTOMERS), {"attention": SETUP_FAILED}).status_code == 403


def test_a_failed_setup_never_reads_completed_in_the_order_list(troubles, support_client):
    page = support_client.get(reverse(ORDERS)).content.decode()
    rows = {kind: _row_of(page, troubles[kind]) for kind in (SETUP_FAILED, SETUP_OVERDUE, SUSPENDED, "fine")}

    assert "Paid — setup failed" in rows[SETUP_FAILED] and ">Completed<" not in rows[SETUP_FAILED]
    assert "Paid — setup retrying" in rows[SETUP_OVERDUE]
    assert "Completed — suspended" in rows[SUSPENDED]
    assert ">Completed<" in rows["fine"]
    assert "Payment held for review" in _row_of(page, troubles[PAYMENT_REVIEW])


def _row_of(page: str, session) -> str:
    link = reverse("admin:checkout_checkoutsession_change", args=[session.pk])
    start = page.index(link)
    return page[page.rindex("<tr", 0, start) : page.index("</tr>", start)]


def test_the_order_list_shows_name_and_domain_and_its_queries_do_not_grow_with_rows(
    troubles, support_client, django_assert_max_num_queries
):
    for number in range(30):
        order = paid_order(f"many{number}")
        ProvisioningJobFactory(subscription=order, status=ProvisioningJobStatus.FAILED)

    with django_assert_max_num_queries(12):
        page = support_client.get(reverse(ORDERS)).content.decode()

    assert "Failed" in page and "failed.example" in page and "Paid — setup failed" in page


def test_the_dashboard_counts_each_kind_with_a_link_to_the_filtered_list(troubles, support_client):
    page = support_client.get(reverse("admin:index")).content.decode()

    assert attention_counts() == {SETUP_FAILED: 1, SETUP_OVERDUE: 1, PAYMENT_REVIEW: 1, SUSPENDED: 1}
    for kind, label in (
        (SETUP_FAILED, "setup failed"),
        (SETUP_OVERDUE, "setup overdue"),
        (PAYMENT_REVIEW, "payment held for review"),
        (SUSPENDED, "service suspended"),
    ):
        assert f'href="{reverse(ORDERS)}?attention={kind}"><span class="bo-count">1</span> {label}</a>' in page
        assert f'href="{reverse(CUSTOMERS)}?attention={kind}"' in page


def test_the_dashboards_counts_are_bounded(troubles, monkeypatch):
    monkeypatch.setattr("backoffice.attention.COUNT_MAX", 0)

    assert attention_counts()[SETUP_FAILED] == 1  # counted up to COUNT_MAX + 1, then "0+" on the page


def test_a_flood_of_one_kind_lists_the_newest_ones_up_to_the_bound(troubles, support_client, monkeypatch):
    newer = paid_order("newer")
    ProvisioningJobFactory(subscription=newer, status=ProvisioningJobStatus.FAILED)
    monkeypatch.setattr("backoffice.attention.FILTER_IDS_MAX", 1)

    orders = support_client.get(reverse(ORDERS), {"attention": SETUP_FAILED})
    customers = support_client.get(reverse(CUSTOMERS), {"attention": SETUP_FAILED})

    assert list(orders.context["cl"].result_list) == [newer.checkout_session]
    assert list(customers.context["cl"].result_list) == [newer.customer]


def test_the_overdue_filter_finds_each_way_a_setup_can_be_overdue(troubles, support_client):
    """Waiting for a retry long past due (the fixture's), never sent (pending, no due time, recorded long ago), and
    held by a worker whose lease ran out; a job waiting a moment only is not overdue."""
    now = timezone.now()
    never_sent, stuck, just_now = paid_order("neversent"), paid_order("stuck"), paid_order("justnow")
    old_job = ProvisioningJobFactory(subscription=never_sent, status=ProvisioningJobStatus.PENDING)
    old_job.__class__.objects.filter(pk=old_job.pk).update(created_at=now - timedelta(hours=3))
    ProvisioningJobFactory(
        subscription=stuck, status=ProvisioningJobStatus.RUNNING, lease_expires_at=now - timedelta(minutes=1)
    )
    ProvisioningJobFactory(subscription=just_now, status=ProvisioningJobStatus.PENDING)

    listed = set(support_client.get(reverse(ORDERS), {"attention": SETUP_OVERDUE}).context["cl"].result_list)

    assert listed == {troubles[SETUP_OVERDUE], never_sent.checkout_session, stuck.checkout_session}
    assert [item.kind for item in session_attention(session=stuck.checkout_session)] == [SETUP_OVERDUE]
    assert session_attention(session=just_now.checkout_session) == []
