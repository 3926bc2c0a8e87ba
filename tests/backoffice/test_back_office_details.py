"""The smaller traps of issue 9 (point 6), each as staff met it, and who may see each page that changed."""

import re
from datetime import timedelta

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.urls import reverse
from django.utils import timezone

from backoffice.roles import BILLING, CATALOG_MANAGERS, SUPPORT
from backoffice.selectors import checkout_session_timeline
from catalog.models import Price
from checkout.models import CheckoutSession
from provisioning.models import ProvisioningAttempt, ProvisioningJobStatus
from tests.catalog.factories import CouponFactory, PriceFactory, ProductFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.provisioning.factories import HostingAccountFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db


def _client_for(client, user):
    client.force_login(user)
    return client


# --- "Set password" leads support to a 403 ----------------------------------------------------------------------------


def test_support_sees_whether_a_password_is_set_but_no_set_password_button(support_client):
    from accounts.models import User

    customer = User.objects.create_user(email="customer@example.com")  # no password yet

    page = support_client.get(reverse("admin:accounts_user_change", args=[customer.pk])).content.decode()

    assert "Set password" not in page and "../password/" not in page
    assert "Not set yet: the user has not chosen one" in page
    assert support_client.get(reverse("admin:auth_user_password_change", args=[customer.pk])).status_code == 403


def test_a_superuser_still_gets_the_set_password_button(client, superuser):
    from accounts.models import User

    customer = User.objects.create_user(email="customer@example.com")

    page = _client_for(client, superuser).get(reverse("admin:accounts_user_change", args=[customer.pk]))

    assert "Set password" in page.content.decode()


# --- Attempt rows read "ProvisioningAttempt object (6)" -------------------------------------------------------------


def test_a_jobs_attempt_rows_say_which_attempt_and_how_it_ended(support_client):
    job = ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED, attempts=2)
    now = timezone.now()
    ProvisioningAttempt.objects.create(job=job, number=1, started_at=now, finished_at=now, error="timeout")
    ProvisioningAttempt.objects.create(job=job, number=2, started_at=now, finished_at=now, succeeded=True)

    page = support_client.get(reverse("admin:provisioning_provisioningjob_change", args=[job.pk])).content.decode()

    assert "ProvisioningAttempt object" not in page
    assert f"Attempt 1 of job #{job.pk}: failed" in page and f"Attempt 2 of job #{job.pk}: succeeded" in page


# --- The timeline repeats "Re-read from Stripe: Re-read from Stripe:" -------------------------------------------------


def test_a_staff_line_on_the_timeline_names_its_action_once(support_agent):
    session = CheckoutSessionFactory()
    LogEntry.objects.log_actions(
        user_id=support_agent.pk,
        queryset=[session],
        action_flag=CHANGE,
        change_message="Re-read from Stripe: Re-read from Stripe: still not paid, nothing changed.",
        single_object=True,
    )

    titles = [entry.title for entry in checkout_session_timeline(session=session).entries if entry.kind == "staff"]

    assert titles == ["Staff: Re-read from Stripe: still not paid, nothing changed."]


# --- Dates in two formats ---------------------------------------------------------------------------------------------


def test_the_order_list_the_order_page_and_its_timeline_write_a_moment_the_same_way(support_client):
    moment = timezone.now().replace(year=2026, month=11, day=30, hour=16, minute=9, second=0, microsecond=0)
    session = CheckoutSessionFactory(email="dates@example.com", expires_at=moment + timedelta(days=1))
    CheckoutSession.objects.filter(pk=session.pk).update(created_at=moment)

    listing = support_client.get(reverse("admin:checkout_checkoutsession_changelist")).content.decode()
    page = support_client.get(reverse("admin:checkout_checkoutsession_change", args=[session.pk])).content.decode()

    assert "2026-11-30 16:09 UTC" in listing and "2026-11-30 16:09 UTC" in page
    assert "expires 2026-12-01 16:09 UTC" in page
    assert "Nov. 30, 2026" not in listing + page and "4:09 p.m." not in listing + page


# --- Lists show codes where pages show names ----------------------------------------------------------------------------


def test_lists_name_the_product_as_the_pages_do(support_client):
    job = ProvisioningJobFactory(subscription__checkout_session__price__product__name="Starter Hosting")
    subscription = job.subscription
    HostingAccountFactory(subscription=subscription)
    code = subscription.product.code

    pages = {
        name: support_client.get(reverse(f"admin:{name}_changelist")).content.decode()
        for name in (
            "checkout_checkoutsession",
            "accounts_subscription",
            "provisioning_provisioningjob",
            "provisioning_hostingaccount",
        )
    }

    for name, page in pages.items():
        cells = [
            re.sub(r"<[^>]+>", "", cell)
            for cell in re.findall(r'<t[dh] class="field-[^"]*"[^>]*>(.*?)</t[dh]>', page, re.S)
        ]
        assert any("Starter Hosting" in cell for cell in cells), (name, cells)
        assert not any(code in cell for cell in cells), (name, cells)


# --- The price list ---------------------------------------------------------------------------------------------------


def test_the_price_list_shows_prices_on_sale_by_product_then_cycle_length(catalog_client):
    first = ProductFactory(name="Alpha", sort_order=1)
    second = ProductFactory(name="Beta", sort_order=2)
    for product in (second, first):
        for cycle in ("triennial", "biennial", "yearly", "monthly"):
            PriceFactory(product=product, billing_cycle=cycle)
    retired = PriceFactory(product=first, billing_cycle="monthly", active=False, unit_amount=111)

    on_sale = catalog_client.get(reverse("admin:catalog_price_changelist"))
    everything = catalog_client.get(reverse("admin:catalog_price_changelist"), {"status": "all"})
    only_retired = catalog_client.get(reverse("admin:catalog_price_changelist"), {"status": "retired"})

    rows = [(price.product.name, price.billing_cycle) for price in on_sale.context["cl"].result_list]
    assert rows == [
        (name, cycle) for name in ("Alpha", "Beta") for cycle in ("monthly", "yearly", "biennial", "triennial")
    ]
    assert retired not in on_sale.context["cl"].result_list
    assert retired in everything.context["cl"].result_list
    assert list(only_retired.context["cl"].result_list) == [retired]
    assert re.search(r'<li class="selected">\s*<a href="\?"[^>]*>On sale</a>', on_sale.content.decode())


# --- The coupon list's limits -------------------------------------------------------------------------------------------


def test_the_coupon_list_shows_limits_validity_and_what_it_applies_to(catalog_client):
    product = ProductFactory(name="Starter Hosting")
    CouponFactory(
        code="LIMITED",
        max_redemptions=100,
        times_redeemed=3,
        duration="repeating",
        duration_in_months=3,
        billing_cycles=["yearly", "triennial"],
        products=[product],
        valid_from=timezone.now().replace(year=2026, month=12, day=1, hour=0, minute=0),
        valid_until=timezone.now().replace(year=2026, month=12, day=31, hour=23, minute=59),
    )
    CouponFactory(code="OPEN")

    page = catalog_client.get(reverse("admin:catalog_coupon_changelist")).content.decode()

    assert "3 of 100" in page and "used, no limit" in page
    assert "Repeating: 3 months" in page
    assert "2026-12-01 00:00 UTC – 2026-12-31 23:59 UTC" in page and "always" in page
    assert "Starter Hosting; yearly, triennial (3 years)" in page and "every plan; every cycle" in page


# --- Who sees what: the index -------------------------------------------------------------------------------------------

SECTIONS = {
    CATALOG_MANAGERS: ["Catalog", "Checkout"],
    SUPPORT: ["Accounts", "Back office", "Billing", "Catalog", "Checkout", "Provisioning"],
    BILLING: ["Accounts", "Back office", "Billing", "Catalog", "Checkout", "Provisioning"],
}


@pytest.mark.parametrize("group", [CATALOG_MANAGERS, SUPPORT, BILLING])
def test_each_group_sees_only_its_own_sections_on_the_index(client, staff_groups, group):
    from tests.backoffice.conftest import _staff

    user = _staff(f"{group.split()[0].lower()}@migrahosting.test", group)

    index = _client_for(client, user).get(reverse("admin:index"))

    assert sorted(app["name"] for app in index.context["available_apps"]) == SECTIONS[group]
    assert "Stripe" not in [app["name"] for app in index.context["available_apps"]]


def test_the_superusers_index_has_no_add_link_for_stripes_mirror(client, superuser):
    index = _client_for(client, superuser).get(reverse("admin:index"))

    stripe = [app for app in index.context["available_apps"] if app["app_label"] == "djstripe"]
    assert stripe and stripe[0]["models"], "the superuser sees dj-stripe's mirror"
    assert all(not model.get("add_url") for model in stripe[0]["models"])
    page = index.content.decode()
    assert "/admin/djstripe/refund/add/" not in page and "/admin/djstripe/payout/add/" not in page


# --- Who may open the pages that changed --------------------------------------------------------------------------------

CHANGED_PAGES = [
    "catalog_price_changelist",
    "catalog_coupon_changelist",
    "checkout_checkoutsession_changelist",
    "accounts_subscription_changelist",
    "provisioning_provisioningjob_changelist",
    "provisioning_hostingaccount_changelist",
]
MAY_OPEN = {
    CATALOG_MANAGERS: {"catalog_price_changelist", "catalog_coupon_changelist", "checkout_checkoutsession_changelist"},
    SUPPORT: set(CHANGED_PAGES),
    BILLING: set(CHANGED_PAGES),
}


@pytest.mark.parametrize("group", [CATALOG_MANAGERS, SUPPORT, BILLING])
def test_the_changed_lists_open_for_the_groups_that_read_them_and_no_other(client, staff_groups, group):
    from tests.backoffice.conftest import _staff

    user = _staff("someone@migrahosting.test", group)
    _client_for(client, user)
    PriceFactory()

    answers = {name: client.get(reverse(f"admin:{name}")).status_code for name in CHANGED_PAGES}

    assert answers == {name: 200 if name in MAY_OPEN[group] else 403 for name in CHANGED_PAGES}


@pytest.mark.parametrize("group", [CATALOG_MANAGERS, SUPPORT, BILLING])
def test_only_catalog_managers_may_save_a_price_and_confirm_a_large_change(client, staff_groups, group):
    from tests.backoffice.conftest import _staff

    price = PriceFactory(unit_amount=799)
    _client_for(client, _staff("someone@migrahosting.test", group))

    answer = client.post(
        reverse("admin:catalog_price_change", args=[price.pk]),
        {"unit_amount": "20.00", "active": "on", "trial_days": "", "confirm_large_change": "on"},
    )

    assert answer.status_code == (302 if group == CATALOG_MANAGERS else 403)
    assert Price.objects.get(active=True).unit_amount == (2000 if group == CATALOG_MANAGERS else 799)


def test_a_user_page_opens_for_support_and_billing_only(client, staff_groups, superuser):
    from accounts.models import User
    from tests.backoffice.conftest import _staff

    customer = User.objects.create_user(email="customer@example.com")
    answers = {}
    for group in (CATALOG_MANAGERS, SUPPORT, BILLING):
        client.force_login(_staff(f"{group.split()[0].lower()}@migrahosting.test", group))
        answers[group] = client.get(reverse("admin:accounts_user_change", args=[customer.pk])).status_code

    assert answers == {CATALOG_MANAGERS: 403, SUPPORT: 200, BILLING: 200}
