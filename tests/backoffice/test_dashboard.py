"""The admin's first page: the last 30 days as charts, each bar a link to the sessions behind it."""

from datetime import timedelta

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from backoffice.selectors import dashboard_figures, dashboard_figures_cached, dashboard_revenue_named
from checkout.models import CheckoutSession
from provisioning.models import ProvisioningJob, ProvisioningJobStatus
from tests.catalog.factories import ProductFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import ProvisioningJobFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def month_of_orders(db):
    now = timezone.now()
    rows = [
        (0, "completed", "starter", 799, 0),
        (0, "completed", "starter", 799, 100),
        (0, "expired", "pro", 1299, 0),
        (2, "completed", "pro", 1299, 0),
        (2, "payment_failed", "pro", 1299, 0),
        (2, "pending", "pro", 1299, 0),
        (40, "completed", "starter", 799, 0),
    ]  # outside the 30 days
    for days_ago, status, code, amount, discount in rows:
        session = CheckoutSessionFactory(status=status, product_code=code, amount=amount, amount_discount=discount)
        CheckoutSession.objects.filter(pk=session.pk).update(created_at=now - timedelta(days=days_ago))
    ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED)
    waiting = ProvisioningJobFactory(status=ProvisioningJobStatus.PENDING)
    ProvisioningJob.objects.filter(pk=waiting.pk).update(created_at=now - timedelta(hours=2))
    ProvisioningJobFactory(status=ProvisioningJobStatus.PENDING)  # just made: not waiting too long
    return now


def test_the_figures(month_of_orders, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        figures = dashboard_figures(now=month_of_orders)

    assert len(figures.days) == 30 and figures.days[-1] == month_of_orders.date()
    # Today: three orders, and the pending sessions behind the three jobs.
    assert figures.funnel["created"][-1] == 6 and figures.funnel["created"][-3] == 3
    assert figures.funnel["completed"][-1] == 2 and figures.funnel["expired"][-1] == 1
    assert figures.funnel["failed"][-3] == 1
    assert sum(figures.funnel["created"]) == 9
    assert [(row["product_code"], row["amount"], row["orders"]) for row in figures.revenue] == [
        ("starter", 1498, 2),
        ("pro", 1299, 1),
    ]
    assert (figures.jobs_failed, figures.jobs_waiting) == (1, 1)


def test_the_index_page_draws_charts_with_links(support_client, month_of_orders):
    page = support_client.get(reverse("admin:index")).content.decode()

    # Groups of links, not images: an image may not hold links (axe: nested-interactive).
    assert page.count('role="group"') == 6  # four funnel series, revenue, jobs
    assert "$14.98 USD" in page and "$12.99 USD" in page
    assert "attention=failed" in page and "attention=waiting" in page
    assert "status__exact=completed" in page
    assert "<script src=" not in page.split('id="dashboard"')[1].split("</div>")[0]


def test_dashboard_links_lead_to_the_filtered_lists(support_client, month_of_orders):
    failed = support_client.get(reverse("admin:provisioning_provisioningjob_changelist"), {"attention": "failed"})
    waiting = support_client.get(reverse("admin:provisioning_provisioningjob_changelist"), {"attention": "waiting"})
    day = month_of_orders.date()
    sessions = support_client.get(
        reverse("admin:checkout_checkoutsession_changelist"),
        {
            "created_at__gte": f"{day} 00:00:00+00:00",
            "created_at__lt": f"{day + timedelta(days=1)} 00:00:00+00:00",
            "status__exact": "completed",
        },
    )

    assert failed.status_code == waiting.status_code == sessions.status_code == 200
    assert "2 checkout sessions" in sessions.content.decode()
    assert "1 provisioning job" in failed.content.decode() and "1 provisioning job" in waiting.content.decode()


def test_revenue_names_products_by_name(support_client, month_of_orders):
    ProductFactory(code="starter", name="Hosting Starter")
    figures = dashboard_figures_cached(now=month_of_orders)
    assert [(row["product_code"], row["product_name"]) for row in figures.revenue] == [
        ("starter", "Hosting Starter"),
        ("pro", "pro"),
    ]  # a code no longer in the catalog shows as it is

    page = support_client.get(reverse("admin:index")).content.decode()
    revenue = page.split('aria-label="Revenue by product"')[1].split("</svg>")[0]
    assert 'dy="14">Hosting Starter<title>' in revenue


def test_the_figures_are_kept_for_a_minute_and_the_page_says_when(
    support_client, month_of_orders, django_assert_max_num_queries
):
    first = dashboard_figures_cached(now=month_of_orders)
    # What the cache serves is exactly what counting gives.
    counted = dashboard_figures(now=month_of_orders)
    dashboard_revenue_named(revenue=counted.revenue)
    assert first == counted
    CheckoutSessionFactory(status="completed", product_code="starter", amount=799, amount_discount=0)
    with django_assert_max_num_queries(0):
        again = dashboard_figures_cached(now=month_of_orders + timedelta(seconds=30))
    assert again == first and again.as_of == month_of_orders and again.funnel["created"][-1] == 6

    cache.clear()
    fresh = dashboard_figures_cached(now=month_of_orders)
    assert fresh.funnel["created"][-1] == 7 and fresh.revenue[0]["amount"] == 1498 + 799

    page = support_client.get(reverse("admin:index")).content.decode()
    assert f"counted at {timezone.now():%H:}" in page


def test_a_new_day_starts_a_new_window_at_once(month_of_orders):
    today = dashboard_figures_cached(now=month_of_orders)
    tomorrow = dashboard_figures_cached(now=month_of_orders + timedelta(days=1))
    assert tomorrow.days[0] == today.days[1] and tomorrow.funnel["created"][-2] == 6
