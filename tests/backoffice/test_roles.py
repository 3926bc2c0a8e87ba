"""The staff groups: each can do its work, and nothing else, on every admin page and action."""

from types import SimpleNamespace

import pytest
from django.contrib import admin
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.urls import reverse

from backoffice.roles import BILLING, CATALOG_MANAGERS, ROLE_PERMISSIONS, SUPPORT
from provisioning.models import ProvisioningJobStatus
from tests.catalog.factories import CouponFactory
from tests.provisioning.factories import EmailNotificationFactory, HostingAccountFactory, ProvisioningJobFactory

pytestmark = pytest.mark.django_db

# model label -> pages each group may open (beyond these: 403). "view" covers the list and the object page.
ALLOWED = {
    CATALOG_MANAGERS: {
        "catalog.product": {"view", "add", "change"},
        "catalog.price": {"view", "add", "change"},
        "catalog.coupon": {"view", "add", "change"},
        "catalog.planmove": {"view", "add", "change"},
        "checkout.checkoutsession": {"view"},
    },
    SUPPORT: {
        "checkout.checkoutsession": {"view"},
        "accounts.user": {"view"},
        "accounts.customer": {"view"},
        "accounts.subscription": {"view"},
        "provisioning.provisioningjob": {"view"},
        "provisioning.hostingaccount": {"view"},
        "provisioning.emailnotification": {"view"},
        "catalog.product": {"view"},
        "catalog.price": {"view"},
        "catalog.coupon": {"view"},
        "catalog.planmove": {"view"},
        "billing.subscriptioninvoice": {"view"},
        "billing.refundrecord": {"view"},
        "billing.billingaction": {"view"},
        # Notes are added and pinned on the customer page; their admin list is read-only for everyone.
        "backoffice.staffnote": {"view"},
    },
}
ALLOWED[BILLING] = ALLOWED[SUPPORT]
# Billing actions each group may run (the subscription page's buttons); beyond these: hidden and 403.
BILLING_ACTIONS = {
    CATALOG_MANAGERS: set(),
    SUPPORT: {"billing.cancel_subscription", "billing.suspend_account"},
    BILLING: {
        "billing.cancel_subscription",
        "billing.suspend_account",
        "billing.refund_payment",
        "billing.terminate_account",
    },
}


@pytest.fixture
def one_of_each(db):
    """A row of every model of ours, for the object pages."""
    from django.utils import timezone

    from backoffice.models import StaffNote
    from billing.models import BillingAction, RefundRecord, SubscriptionInvoice

    job = ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED)
    subscription = job.subscription
    now = timezone.now()
    return {
        "billing.subscriptioninvoice": SubscriptionInvoice.objects.create(
            subscription=subscription,
            stripe_invoice_id="in_test_roles",
            status="paid",
            currency="usd",
            stripe_created=now,
            stripe_state_at=now,
        ),
        "billing.refundrecord": RefundRecord.objects.create(
            subscription=subscription,
            stripe_refund_id="re_test_roles",
            amount=100,
            currency="usd",
            status="succeeded",
            stripe_created=now,
        ),
        "billing.billingaction": BillingAction.objects.create(
            subscription=subscription, kind="suspend", reason="roles"
        ),
        "catalog.product": subscription.product,
        "catalog.price": subscription.price,
        "catalog.coupon": CouponFactory(),
        "checkout.checkoutsession": subscription.checkout_session,
        "accounts.user": subscription.customer.users.first(),
        "accounts.customer": subscription.customer,
        "accounts.subscription": subscription,
        "provisioning.provisioningjob": job,
        "provisioning.hostingaccount": HostingAccountFactory(),
        "provisioning.emailnotification": EmailNotificationFactory(checkout_session=subscription.checkout_session),
        "backoffice.staffnote": StaffNote.objects.create(
            customer=subscription.customer, author_name="Sam", body="roles"
        ),
    }


def _registered():
    return sorted(f"{model._meta.app_label}.{model._meta.model_name}" for model in admin.site._registry)


def _url(label: str, page: str, obj=None) -> str:
    app, model = label.split(".")
    if page in ("changelist", "add"):
        return reverse(f"admin:{app}_{model}_{page}")
    return reverse(f"admin:{app}_{model}_{page}", args=[obj.pk])


@pytest.mark.parametrize("group", [CATALOG_MANAGERS, SUPPORT, BILLING])
def test_each_group_opens_exactly_the_pages_of_its_work(client, staff_groups, one_of_each, group):
    from tests.backoffice.conftest import _staff

    client.force_login(_staff(f"{group.split()[0].lower()}@migrahosting.test", group))
    allowed = ALLOWED[group]
    wrong = []
    for label in _registered():
        may = allowed.get(label, set())
        pages = [("changelist", None, "view"), ("add", None, "add")]
        if label in one_of_each:
            obj = one_of_each[label]
            pages += [("change", obj, "view"), ("delete", obj, "delete")]
        for page, obj, needs in pages:
            status = client.get(_url(label, page, obj)).status_code
            expected = 200 if needs in may else 403
            if status != expected:
                wrong.append(f"{label} {page}: {status}, expected {expected}")
    assert not wrong, "\n".join(wrong)


def test_view_only_staff_cannot_save_an_object_page(support_client, one_of_each):
    product = one_of_each["catalog.product"]

    response = support_client.post(_url("catalog.product", "change", product), {"name": "Hacked"})

    assert response.status_code == 403
    product.refresh_from_db()
    assert product.name != "Hacked"


@pytest.mark.parametrize("action", ["retry_job", "resend_set_password", "expire", "reread"])
def test_catalog_managers_cannot_run_support_actions(catalog_client, one_of_each, action):
    session = one_of_each["checkout.checkoutsession"]
    job = one_of_each["provisioning.provisioningjob"]

    response = catalog_client.post(
        reverse("admin:checkout_checkoutsession_support", args=[session.pk, action]), {"job": job.pk}
    )

    assert response.status_code == 403
    job.refresh_from_db()
    assert job.status == "failed"


def test_support_runs_the_job_retry_from_the_job_list(support_client, one_of_each, django_capture_on_commit_callbacks):
    job = one_of_each["provisioning.provisioningjob"]

    with django_capture_on_commit_callbacks(execute=True):
        page = support_client.post(
            reverse("admin:provisioning_provisioningjob_changelist"),
            {"action": "run_again", "_selected_action": [job.pk]},
            follow=True,
        )

    assert b"1 job(s) sent again" in page.content
    job.refresh_from_db()
    assert job.status == "succeeded"


def test_catalog_managers_are_not_offered_support_actions_on_a_session(catalog_client, one_of_each):
    session = one_of_each["checkout.checkoutsession"]

    page = catalog_client.get(_url("checkout.checkoutsession", "change", session)).content.decode()

    assert "Timeline" in page
    assert "Retry provisioning job" not in page and "Resend set-password" not in page


def test_support_is_offered_the_actions(support_client, one_of_each):
    session = one_of_each["checkout.checkoutsession"]

    page = support_client.get(_url("checkout.checkoutsession", "change", session)).content.decode()

    assert f"Retry provisioning job #{one_of_each['provisioning.provisioningjob'].pk}" in page
    assert "Resend set-password e-mail" in page


def test_no_group_may_delete_anything():
    for group in Group.objects.filter(name__in=ROLE_PERMISSIONS):
        assert not group.permissions.filter(codename__startswith="delete_").exists()


@pytest.mark.parametrize("group", [CATALOG_MANAGERS, SUPPORT, BILLING])
def test_each_group_holds_exactly_its_billing_actions(staff_groups, group):
    held = {
        f"{app}.{codename}"
        for app, codename in Group.objects.get(name=group)
        .permissions.filter(content_type__app_label="billing")
        .exclude(codename__startswith="view_")
        .values_list("content_type__app_label", "codename")
    }

    assert held == BILLING_ACTIONS[group]


def test_the_data_migrations_create_the_groups_with_exactly_their_permissions(db):
    from importlib import import_module

    Group.objects.filter(name__in=ROLE_PERMISSIONS).delete()
    # Each migration with its own (historical) models, as migrate gives them.
    loader = MigrationExecutor(connection).loader
    for name in (
        "0002_staff_groups",
        "0004_billing_group",
        "0005_plan_move_permissions",
        "0006_staff_notes_and_setup_tools",
    ):
        migration = import_module(f"backoffice.migrations.{name}")
        historical = loader.project_state(("backoffice", name)).apps
        (migration.groups_create if hasattr(migration, "groups_create") else migration.groups_update)(
            historical, SimpleNamespace(connection=connection)
        )

    for name, wanted in ROLE_PERMISSIONS.items():
        group = Group.objects.get(name=name)
        held = set(group.permissions.values_list("content_type__app_label", "codename"))
        assert held == set(wanted), name
