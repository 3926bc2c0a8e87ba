"""The client area's pages: what each service shows, and what each role sees."""

import pytest
from django.urls import reverse
from django.utils import timezone

from accounts.models import CustomerMembership
from billing.models import SubscriptionInvoice
from tests.accounts.factories import SubscriptionFactory
from tests.client_area.conftest import invoice_for, member
from tests.provisioning.factories import HostingAccountFactory

pytestmark = pytest.mark.django_db


def test_signed_out_visitors_are_sent_to_sign_in(client, service):
    response = client.get(reverse("accounts:services"))

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('accounts:login')}?next=/account/"


def test_the_first_page_lists_each_service_with_its_plan_cycle_domain_status_renewal_and_account(
    client, owner, service
):
    client.force_login(owner)

    page = client.get(reverse("accounts:services")).content.decode()

    assert service.product.name in page
    assert "Monthly" in page
    assert "client-area.example.com" in page
    assert "Active" in page
    assert f"{timezone.localtime(service.current_period_end):%-d %B %Y} · $7.99" in page
    assert "clientar on web02.sim.migrahosting.test" in page


@pytest.mark.parametrize(
    ("change", "label"),
    [
        ({"cancel_at_period_end": True}, "Cancels on "),
        ({"status": "past_due"}, "Payment overdue"),
        ({"status": "canceled", "ended_at": timezone.now()}, "Ended on "),
    ],
)
def test_the_status_says_what_happens_to_the_service(client, owner, service, change, label):
    type(service).objects.filter(pk=service.pk).update(**change)
    client.force_login(owner)

    page = client.get(reverse("accounts:services")).content.decode()

    assert label in page
    if change.get("cancel_at_period_end"):
        assert f"Cancels on {timezone.localtime(service.current_period_end):%-d %B %Y}" in page
        assert "Next renewal</dt>\n          <dd>None" in page


@pytest.mark.parametrize(("account_status", "label"), [("suspended", "Suspended"), ("terminated", "Terminated")])
def test_the_hosting_accounts_status_comes_first(client, owner, service, account_status, label):
    service.hosting_account.status = account_status
    service.hosting_account.save()
    client.force_login(owner)

    response = client.get(reverse("accounts:service", args=[service.pk]))

    assert f'id="service-status">{label}<' in response.content.decode()


def test_a_service_still_being_set_up_says_so(client, owner, service):
    service.hosting_account.delete()
    client.force_login(owner)

    page = client.get(reverse("accounts:services")).content.decode()

    assert "Being set up" in page


def test_the_next_renewal_is_the_price_less_a_coupon_that_lasts(client, owner, service):
    from tests.catalog.factories import CouponFactory

    CouponFactory(code="HALFOFF", percent_off=50, amount_off=None, duration="forever")
    service.checkout_session.coupon_code = "halfoff"
    service.checkout_session.save()
    client.force_login(owner)

    page = client.get(reverse("accounts:services")).content.decode()

    assert "· $3.99" in page  # half of 7.99 is 3.995: the discount rounds up to 4.00


def test_a_user_in_two_customers_sees_both_with_their_role_and_nothing_else(client, service, other_service):
    # A third customer's service, which this user is no member of
    SubscriptionFactory(checkout_session__domain_info={"mode": "new-or-transfer", "value": "third.example"})
    user = member(service.customer, "technical")
    CustomerMembership.objects.create(customer=other_service.customer, user=user, role="billing")
    client.force_login(user)

    page = client.get(reverse("accounts:services")).content.decode()

    assert "client-area.example.com" in page and "someone-else.example.com" in page
    assert "third.example" not in page
    assert "(Technical)" in page and "(Billing)" in page


def test_a_user_without_a_customer_is_told_why_the_page_is_empty(client, db):
    from tests.accounts.factories import UserFactory

    client.force_login(UserFactory())

    page = client.get(reverse("accounts:services")).content.decode()

    assert "not linked to any customer account" in page


def test_the_service_page_lists_invoices_with_amount_date_status_and_links(client, owner, service):
    invoice_for(service, number="INV-0002", status="open", amount=1299)
    SubscriptionInvoice.objects.create(
        subscription=service,
        stripe_invoice_id="in_test_draft",
        status="draft",
        currency="usd",
        stripe_created=timezone.now(),
        stripe_state_at=timezone.now(),
    )
    client.force_login(owner)

    page = client.get(reverse("accounts:service", args=[service.pk])).content.decode()

    assert "INV-0001" in page and "$7.99" in page and "Paid" in page
    assert "INV-0002" in page and "$12.99" in page and "Due" in page
    assert 'href="https://invoice.stripe.test/i/INV-0001"' in page
    assert 'href="https://invoice.stripe.test/i/INV-0001/pdf"' in page
    assert "in_test_draft" not in page and page.count('<tr id="invoice-') == 2


# --- Who sees what --------------------------------------------------------------------------------------------------

BILLING_ROLES = ["owner", "admin", "billing"]


@pytest.mark.parametrize("role", [*BILLING_ROLES, "technical"])
def test_each_role_sees_the_service_and_only_billing_roles_see_invoices_and_actions(client, service, role):
    user = member(service.customer, role) if role != "owner" else service.customer.memberships.get().user
    client.force_login(user)

    page = client.get(reverse("accounts:service", args=[service.pk])).content.decode()

    assert "clientar" in page and "web02.sim.migrahosting.test" in page
    sees_billing = role in BILLING_ROLES
    assert ("INV-0001" in page) is sees_billing
    assert ('id="manage-payment-method"' in page) is sees_billing
    assert ('id="cancel-service"' in page) is sees_billing
    assert ('id="change-plan"' in page) is sees_billing
    assert ('id="technical-note"' in page) is not sees_billing


@pytest.mark.parametrize(
    ("method", "name", "extra"),
    [
        ("post", "accounts:billing_portal", []),
        ("get", "accounts:service_cancel", []),
        ("post", "accounts:service_cancel", []),
        ("post", "accounts:service_cancel_undo", []),
        ("get", "accounts:plan_change_options", []),
        ("get", "accounts:plan_change_preview", [1]),
        ("post", "accounts:plan_change_preview", [1]),
    ],
)
def test_a_technical_contact_may_not_bill_cancel_or_change_the_plan(client, service, method, name, extra):
    client.force_login(member(service.customer, "technical"))

    response = getattr(client, method)(
        reverse(name, args=[service.pk, *extra]), {"idempotency_key": "client-test-0000000001"}
    )

    assert response.status_code == 403
    assert "does not allow you to" in response.content.decode()
    service.refresh_from_db()
    assert service.cancel_at_period_end is False


def test_an_ended_service_offers_no_cancel_or_plan_change(client, owner, service):
    type(service).objects.filter(pk=service.pk).update(status="canceled", ended_at=timezone.now())
    client.force_login(owner)

    page = client.get(reverse("accounts:service", args=[service.pk])).content.decode()
    cancel = client.get(reverse("accounts:service_cancel", args=[service.pk]))

    assert 'id="cancel-service"' not in page and 'id="change-plan"' not in page
    assert cancel.status_code == 302
    assert "nothing to cancel" in client.get(cancel["Location"]).content.decode()


def test_the_service_list_takes_a_fixed_number_of_queries(client, owner, service, django_assert_max_num_queries):
    for _ in range(5):
        more = SubscriptionFactory(customer=service.customer, checkout_session__email=owner.email)
        HostingAccountFactory(subscription=more)
    client.force_login(owner)

    with django_assert_max_num_queries(6):  # session, user, memberships, subscriptions, (coupons), messages
        response = client.get(reverse("accounts:services"))

    assert response.content.decode().count('class="card client-service"') == 6
