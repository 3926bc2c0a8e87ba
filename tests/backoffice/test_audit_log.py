"""The team's audit log (/admin/backoffice/audit/): support actions appear with who, what and which object; each
filter narrows it; pages go by position without counting the table; only holders of backoffice.view_audit_log (or
superusers) read it."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.models import ContentType
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.models import Subscription
from backoffice.audit import STAFF_KEY_PREFIX, audit_actions
from backoffice.export import EXPORT_ACTION_FLAG
from backoffice.subscription_actions import new_idempotency_key
from billing.models import BillingAction, BillingActionKind, BillingActionStatus
from catalog.models import Price
from checkout.models import CheckoutSession
from tests.accounts.factories import SubscriptionFactory, UserFactory
from tests.checkout.factories import CheckoutSessionFactory

pytestmark = pytest.mark.django_db

AUDIT_URL = "/admin/backoffice/audit/"


def grant_audit(user):
    user.user_permissions.add(Permission.objects.get(content_type__app_label="backoffice", codename="view_audit_log"))


@pytest.fixture
def auditor_client(client, support_agent):
    """A support agent who was also given the audit log (it belongs to no group)."""
    grant_audit(support_agent)
    client.force_login(support_agent)
    return client


def log(user, obj, flag, message, *, at=None):
    entry = LogEntry.objects.create(
        user=user,
        content_type=ContentType.objects.get_for_model(obj),
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        action_flag=flag,
        change_message=message,
    )
    if at is not None:
        LogEntry.objects.filter(pk=entry.pk).update(action_time=at)
    return entry


def rows(response) -> list:
    return response.context["page"].rows


# --- What appears ----------------------------------------------------------------------------------------------------------


def test_a_support_action_appears_with_the_person_the_action_and_a_link_to_the_order(client, support_agent, superuser):
    session = CheckoutSessionFactory(email="nobody.yet@example.com", status="completed")
    client.force_login(support_agent)
    client.post(reverse("admin:checkout_checkoutsession_support", args=[session.pk, "resend_set_password"]))
    client.force_login(superuser)

    response = client.get(AUDIT_URL)

    assert response.status_code == 200
    (row,) = rows(response)
    assert row.person == support_agent.email
    assert row.action == "Resend set-password e-mail"
    assert row.object_type == "Checkout session"
    assert row.object_url == reverse("admin:checkout_checkoutsession_change", args=[session.pk])
    assert row.details.startswith("No user account exists")
    html = response.content.decode()
    assert f'href="{row.object_url}"' in html
    assert "Resend set-password e-mail" in html


def test_billing_decisions_outside_the_admin_appear_once(superuser, client):
    """A rule's refund and a customer's own cancellation are only in BillingAction: they are listed. A staff action
    from the subscription page is in the admin's log already: listed once, from there."""
    subscription = SubscriptionFactory()
    customer_user = UserFactory(email="owner@example.com")
    BillingAction.objects.create(
        subscription=subscription,
        kind=BillingActionKind.AUTO_REFUND,
        amount=799,
        status=BillingActionStatus.DONE,
        reason="Setup failed for good",
        idempotency_key="refund:failed-setup:1",
    )
    BillingAction.objects.create(
        subscription=subscription,
        kind=BillingActionKind.CANCEL_AT_PERIOD_END,
        actor=customer_user,
        status=BillingActionStatus.DONE,
        reason="Cancelled by owner",
        idempotency_key="client-cancel-1",
    )
    BillingAction.objects.create(
        subscription=subscription,
        kind=BillingActionKind.SUSPEND,
        actor=superuser,
        status=BillingActionStatus.DONE,
        reason="Abuse report 17",
        idempotency_key=new_idempotency_key(),
    )
    log(superuser, subscription, CHANGE, "Suspend the account: done (reason: Abuse report 17)")
    client.force_login(superuser)

    found = {(row.action, row.person) for row in rows(client.get(AUDIT_URL))}

    assert found == {
        ("Refund of a failed setup", "Automatic (billing rule)"),
        ("Cancel at period end", "Jane Customer (owner@example.com), in the client area"),
        ("Suspend the account", superuser.email),
    }
    assert new_idempotency_key().startswith(STAFF_KEY_PREFIX)  # what tells the two sources apart
    rule_row = next(row for row in rows(client.get(AUDIT_URL)) if row.person.startswith("Automatic"))
    assert rule_row.object_repr.startswith(subscription.product.name)  # the plan's name, as pages show it
    assert "$7.99 USD" in rule_row.details and "Setup failed for good" in rule_row.details


def test_an_export_links_back_to_the_list_it_exported(superuser, client):
    CheckoutSessionFactory(status="completed")
    client.force_login(superuser)
    download = client.get(reverse("admin:checkout_checkoutsession_export") + "?status=completed")
    b"".join(download.streaming_content)

    (row,) = rows(client.get(AUDIT_URL))

    assert row.action == "CSV export"
    assert row.object_url == reverse("admin:checkout_checkoutsession_changelist") + "?status=completed"
    assert "filters: ?status=completed; 1 row" in row.details


# --- Filters ----------------------------------------------------------------------------------------------------------------


@pytest.fixture
def history(support_agent, billing_agent, catalog_manager):
    """A small team's week: edits, a deletion, support actions, billing actions, an export."""
    now = timezone.now()
    session = CheckoutSessionFactory()
    subscription = SubscriptionFactory()
    price = Price.objects.first()
    entries = {
        "catalog_add": log(catalog_manager, price, ADDITION, '[{"added": {}}]', at=now - timedelta(days=6)),
        "catalog_change": log(catalog_manager, price, CHANGE, "unit_amount: 799 → 899", at=now - timedelta(days=5)),
        "support_retry": log(
            support_agent, session, CHANGE, "Retry provisioning: job #3 sent again", at=now - timedelta(days=3)
        ),
        "support_expire": log(
            support_agent, session, CHANGE, "Expire at Stripe: Session expired", at=now - timedelta(days=2)
        ),
        "billing_refund": log(
            billing_agent, subscription, CHANGE, "Refund: done $2.50 USD (reason: goodwill)", at=now - timedelta(days=1)
        ),
        "catalog_delete": log(catalog_manager, price, DELETION, "", at=now - timedelta(hours=2)),
        "setup_fix": log(
            support_agent,
            session,
            CHANGE,
            "Fix and run again: domain a.example → b.example",
            at=now - timedelta(hours=1),
        ),
        "export": LogEntry.objects.create(
            user=billing_agent,
            content_type=ContentType.objects.get_for_model(CheckoutSession),
            object_repr="orders CSV export",
            action_flag=EXPORT_ACTION_FLAG,
            change_message="Export CSV: orders; filters: (none); 3 rows",
        ),
    }
    return entries


def ids(response) -> set[int]:
    return {row.id for row in rows(response)}


def test_every_action_the_filter_offers_selects_its_entries(auditor_client, history):
    expected = {
        "add": {"catalog_add"},
        "change": {"catalog_change"},
        "delete": {"catalog_delete"},
        "export": {"export"},
        "support:retry_job": {"support_retry"},
        "support:expire": {"support_expire"},
        "billing:refund": {"billing_refund"},
        "billing:terminate": set(),
        "setup:fix": {"setup_fix"},
    }
    offered = {action.key for action in audit_actions()}
    assert set(expected) <= offered

    for key, names in expected.items():
        response = auditor_client.get(AUDIT_URL, {"action": key})
        assert response.status_code == 200
        assert ids(response) == {history[name].pk for name in names}, key


def test_filter_by_person(auditor_client, history, support_agent, billing_agent):
    response = auditor_client.get(AUDIT_URL, {"person": support_agent.pk})
    assert ids(response) == {history["support_retry"].pk, history["support_expire"].pk, history["setup_fix"].pk}
    response = auditor_client.get(AUDIT_URL, {"person": billing_agent.pk})
    assert ids(response) == {history["billing_refund"].pk, history["export"].pk}


def test_filter_by_object_type(auditor_client, history):
    response = auditor_client.get(AUDIT_URL, {"object_type": ContentType.objects.get_for_model(Subscription).pk})
    assert ids(response) == {history["billing_refund"].pk}
    response = auditor_client.get(AUDIT_URL, {"object_type": ContentType.objects.get_for_model(Price).pk})
    assert ids(response) == {history[name].pk for name in ("catalog_add", "catalog_change", "catalog_delete")}


def test_filter_by_date_range(auditor_client, history):
    today = timezone.now().date()
    response = auditor_client.get(AUDIT_URL, {"since": today - timedelta(days=3), "until": today - timedelta(days=2)})
    assert ids(response) == {history["support_retry"].pk, history["support_expire"].pk}

    response = auditor_client.get(AUDIT_URL, {"since": today, "until": today - timedelta(days=1)})
    assert "The first day comes after the last." in response.content.decode()


def test_filters_combine(auditor_client, history, support_agent):
    response = auditor_client.get(AUDIT_URL, {"person": support_agent.pk, "action": "support:expire"})
    assert ids(response) == {history["support_expire"].pk}


# --- Pages ----------------------------------------------------------------------------------------------------------------


def test_pages_go_by_position_newest_first_without_counting(
    auditor_client, support_agent, django_assert_max_num_queries
):
    session = CheckoutSessionFactory()
    same_moment = timezone.now() - timedelta(minutes=5)
    made = [
        log(
            support_agent,
            session,
            CHANGE,
            f"Retry provisioning: run {n}",
            at=same_moment if n < 60 else same_moment + timedelta(seconds=n),
        )
        for n in range(120)
    ]
    # A billing rule's decision at the very instant of 60 log entries: the page boundary must not lose or repeat it.
    rule = BillingAction.objects.create(
        subscription=SubscriptionFactory(),
        kind=BillingActionKind.AUTO_REFUND,
        status=BillingActionStatus.DONE,
        reason="rule",
        idempotency_key="rule-1",
    )
    BillingAction.objects.filter(pk=rule.pk).update(created_at=same_moment)

    seen, url, pages = [], AUDIT_URL, 0
    while url:
        with CaptureQueriesContext(connection) as queries, django_assert_max_num_queries(14):
            response = auditor_client.get(url)
        assert not any("COUNT(" in query["sql"].upper() for query in queries.captured_queries)
        pages += 1
        seen += [(row.rank, row.id, row.at) for row in rows(response)]
        url = response.context["older_url"]
        if url:
            assert len(rows(response)) == 50
            assert 'id="audit-older"' in response.content.decode()

    assert pages == 3
    assert len(seen) == len(set(seen)) == 121
    assert [at for _, _, at in seen] == sorted((at for _, _, at in seen), reverse=True)
    assert {pk for rank, pk, _ in seen if rank == 1} == {entry.pk for entry in made}


def test_a_damaged_position_shows_the_first_page(auditor_client, history):
    response = auditor_client.get(AUDIT_URL, {"after": "yesterday~9~x"})
    assert response.status_code == 200
    assert len(rows(response)) == len(history)


# --- Who may read it ------------------------------------------------------------------------------------------------------


def test_superuser_reads_it_and_the_index_links_to_it(client, superuser):
    client.force_login(superuser)
    assert client.get(AUDIT_URL).status_code == 200
    assert 'href="/admin/backoffice/audit/"' in client.get("/admin/").content.decode()


@pytest.mark.parametrize("staff", ["catalog_manager", "support_agent", "billing_agent"])
def test_no_group_reads_it_without_the_permission_given_to_the_person(client, request, staff):
    user = request.getfixturevalue(staff)
    client.force_login(user)
    assert client.get(AUDIT_URL).status_code == 403
    assert "/admin/backoffice/audit/" not in client.get("/admin/").content.decode()

    grant_audit(user)
    assert client.get(AUDIT_URL).status_code == 200
    assert 'href="/admin/backoffice/audit/"' in client.get("/admin/").content.decode()


def test_non_staff_and_anonymous_go_to_the_login_page(client):
    response = client.get(AUDIT_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
    client.force_login(UserFactory(email="customer@example.com"))
    response = client.get(AUDIT_URL)
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
