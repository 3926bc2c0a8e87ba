"""The customer page (backoffice/customer_page.py) and staff notes (backoffice/notes.py): what the page shows of a
customer and of nobody else, each section bounded with a "see all" link that works, a fixed number of queries
however many orders, the note form (required, at most 5000 characters, stripped, escaped, one note for a double
submit), pinning shown as a banner on the customer's orders and subscriptions, the admin log, the links that lead to
the page, and who may do what."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from accounts.models import Customer, CustomerMembership, CustomerRole
from backoffice.customer_page import SECTION_ROWS, customer_page
from backoffice.models import StaffNote
from backoffice.notes import note_create
from billing.models import BillingAction, RefundRecord, SubscriptionInvoice
from checkout.models import CheckoutSession
from provisioning.models import EmailStatus
from tests.accounts.factories import CustomerFactory, SubscriptionFactory, UserFactory
from tests.checkout.factories import CheckoutSessionFactory
from tests.concurrency import run_at_once
from tests.provisioning.factories import EmailNotificationFactory, HostingAccountFactory

pytestmark = pytest.mark.django_db


def page_url(customer) -> str:
    return reverse("admin:accounts_customer_change", args=[customer.pk])


def add_url(customer) -> str:
    return reverse("admin:accounts_customer_note_add", args=[customer.pk])


def pin_url(note) -> str:
    return reverse("admin:accounts_customer_note_pin", args=[note.customer_id, note.pk])


def messages_of(response) -> list[str]:
    return [str(message) for message in response.context["messages"]]


def service(customer, *, domain: str, status: str = "active", account: str | None = None, **kwargs):
    """A subscription of `customer` from its own paid order; `account`: the hosting account's status, if any."""
    subscription = SubscriptionFactory(
        customer=customer,
        status=status,
        stripe_subscription_id=f"sub_test_{domain.split('.')[0]}",
        checkout_session__email=customer.email,
        checkout_session__status="completed",
        checkout_session__completed_at=timezone.now(),
        checkout_session__domain_info={"mode": "new-or-transfer", "value": domain},
        **kwargs,
    )
    if account:
        HostingAccountFactory(
            subscription=subscription,
            username=f"u{domain.split('.')[0]}"[:16],
            status=account,
            server="web07.sim.migrahosting.test",
        )
    return subscription


def billing_records(subscription, name: str, *, paid: int = 799):
    now = timezone.now()
    invoice = SubscriptionInvoice.objects.create(
        subscription=subscription,
        stripe_invoice_id=f"in_test_{name}",
        number=f"INV-{name}",
        status="paid",
        billing_reason="subscription_cycle",
        amount_due=paid,
        amount_paid=paid,
        currency="usd",
        paid_at=now,
        stripe_payment_intent_id=f"pi_test_{name}",
        stripe_created=now,
        stripe_state_at=now,
    )
    RefundRecord.objects.create(
        subscription=subscription,
        stripe_refund_id=f"re_test_{name}",
        amount=250,
        currency="usd",
        status="succeeded",
        stripe_payment_intent_id=f"pi_test_{name}",
        stripe_created=now,
    )
    BillingAction.objects.create(
        subscription=subscription,
        kind="refund",
        status="done",
        amount=250,
        reason=f"goodwill {name}",
        stripe_object_id=invoice.stripe_invoice_id,
    )
    EmailNotificationFactory(checkout_session=subscription.checkout_session, status=EmailStatus.SENT, sent_at=now)
    return invoice


@pytest.fixture
def jane(db):
    """A customer with an owner, a technical contact who never chose a password, three services (active, suspended,
    cancelled), a pending and an expired order besides the paid ones, money and e-mails; and another customer."""
    customer = CustomerFactory(name="Jane Example Ltd", email="jane@example.com", stripe_customer_id="cus_test_jane")
    tech = UserFactory(email="tech.contact@example.com", full_name="Tom Tech")
    tech.set_unusable_password()
    tech.save()
    CustomerMembership.objects.create(customer=customer, user=tech, role=CustomerRole.TECHNICAL)
    owner = customer.users.get(email="jane@example.com")
    owner.set_password("owner chose one")
    owner.save()
    active = service(
        customer, domain="janes-shop.example", account="active", current_period_end=timezone.now() + timedelta(days=12)
    )
    service(customer, domain="janes-blog.example", account="suspended")
    service(customer, domain="janes-old.example", status="canceled", ended_at=timezone.now() - timedelta(days=3))
    billing_records(active, "jane", paid=1299)
    CheckoutSessionFactory(
        email="Jane@Example.com",
        status="pending",
        domain_info={"mode": "new-or-transfer", "value": "janes-next.example"},
    )
    CheckoutSessionFactory(
        email="someone.else@example.com",
        stripe_customer_id="cus_test_jane",
        status="expired",
        domain_info={"mode": "new-or-transfer", "value": "janes-by-stripe-id.example"},
    )
    other = CustomerFactory(name="Other Person", email="other@example.com", stripe_customer_id="cus_test_other")
    other_service = service(other, domain="not-janes.example", account="active")
    billing_records(other_service, "other")
    return customer


# --- What the page shows ----------------------------------------------------------------------------------------------


def test_the_page_shows_people_services_orders_money_and_emails_of_this_customer_only(support_client, jane):
    response = support_client.get(page_url(jane))

    assert response.status_code == 200
    page = response.content.decode()
    people = page[page.index('id="customer-people"') : page.index('id="services"')]
    assert "jane@example.com" in people and "Owner" in people
    assert "tech.contact@example.com" in people and "Technical" in people and "Not set yet" in people
    tech = jane.users.get(email="tech.contact@example.com")
    assert reverse("admin:accounts_user_change", args=[tech.pk]) in people

    services = page[page.index('id="customer-services"') : page.index('id="orders"')]
    for text in (
        "janes-shop.example",
        "janes-blog.example",
        "janes-old.example",
        "web07.sim.migrahosting.test",
        "ujanes-shop",
        "Suspended",
        "Cancelled",
        "$7.99 USD",
    ):
        assert text in services, text
    shop = jane.subscriptions.get(domain="janes-shop.example")
    assert shop.current_period_end.strftime("%Y-%m-%d") in services
    assert reverse("admin:accounts_subscription_change", args=[shop.pk]) in services
    assert reverse("admin:provisioning_hostingaccount_change", args=[shop.hosting_account.pk]) in services

    orders = page[page.index('id="customer-orders"') : page.index('id="invoices"')]
    for domain in ("janes-shop.example", "janes-next.example", "janes-by-stripe-id.example"):
        assert domain in orders, domain
    assert "Pending payment" in orders and "Expired" in orders
    assert reverse("admin:checkout_checkoutsession_change", args=[shop.checkout_session_id]) in orders

    money = page[page.index('id="invoices"') : page.index('id="emails"')]
    assert "INV-jane" in money and "$12.99 USD" in money and "re_test_jane" in money and "$2.50 USD" in money
    assert "goodwill jane" in money
    summary = page[page.index('id="customer-summary"') : page.index('id="people"')]
    assert "$12.99 USD" in summary and "refunded $2.50 USD" in summary
    emails = page[page.index('id="customer-emails"') : page.index('id="notes"')]
    assert "Order confirmation" in emails and "Sent" in emails

    attention = page[page.index('id="needs-attention"') : page.index('id="people"')]
    assert "Service suspended" in attention and "ujanes-blog (janes-blog.example)" in attention

    for other in ("other@example.com", "not-janes.example", "INV-other", "re_test_other", "goodwill other"):
        assert other not in page, other


def test_each_section_shows_the_newest_rows_and_links_to_all_of_them(support_client, jane):
    for n in range(SECTION_ROWS["orders"] + 2):
        CheckoutSessionFactory(
            email="jane@example.com",
            status="expired",
            domain_info={"mode": "new-or-transfer", "value": f"many-{n:02d}.example"},
        )

    page = support_client.get(page_url(jane)).content.decode()

    orders = page[page.index('id="customer-orders"') : page.index('id="invoices"')]
    assert orders.count('<tr id="order-') == SECTION_ROWS["orders"]
    assert "many-11.example" in orders and "many-00.example" not in orders  # newest first
    see_all = reverse("admin:checkout_checkoutsession_changelist") + "?q=jane%40example.com"
    assert see_all in page
    listing = support_client.get(see_all)
    assert listing.status_code == 200 and "many-00.example" not in page
    assert listing.context["cl"].result_count >= SECTION_ROWS["orders"] + 2


@pytest.mark.parametrize(
    "name, url",
    [
        ("services", lambda c: reverse("admin:accounts_subscription_changelist") + f"?customer__id__exact={c.pk}"),
        ("invoices", lambda c: reverse("admin:billing_subscriptioninvoice_changelist") + "?q=jane%40example.com"),
        ("refunds", lambda c: reverse("admin:billing_refundrecord_changelist") + "?q=jane%40example.com"),
        ("billing_actions", lambda c: reverse("admin:billing_billingaction_changelist") + "?q=jane%40example.com"),
        ("emails", lambda c: reverse("admin:provisioning_emailnotification_changelist") + "?to=jane%40example.com"),
        ("notes", lambda c: reverse("admin:backoffice_staffnote_changelist") + f"?customer__id__exact={c.pk}"),
    ],
)
def test_the_see_all_links_open_a_list_of_this_customers_rows_only(support_client, jane, name, url):
    customer_page_result = customer_page(customer=jane)
    StaffNote.objects.create(customer=jane, author_name="Sam", body="A note on Jane")
    other = StaffNote.objects.create(
        customer=Customer.objects.get(email="other@example.com"), author_name="Sam", body="A note on the other one"
    )

    assert getattr(customer_page_result, name).see_all_url == url(jane)
    listing = support_client.get(url(jane))

    assert listing.status_code == 200
    assert "?e=1" not in listing.get("Location", "")  # Django's "invalid filter" redirect
    results = list(listing.context["cl"].result_list)
    assert results, name
    assert other not in results
    assert "other@example.com" not in listing.content.decode()


def test_the_page_costs_the_same_queries_for_many_orders_as_for_one(
    support_client, support_agent, jane, django_assert_num_queries, django_assert_max_num_queries
):
    few = CustomerFactory(email="few@example.com", stripe_customer_id="cus_test_few")
    service(few, domain="few-one.example", account="active")
    with django_assert_num_queries(14) as few_queries:
        customer_page(customer=few)

    for n in range(30):
        subscription = service(jane, domain=f"bulk{n:02d}.example", account="active" if n % 2 else "suspended")
        billing_records(subscription, f"bulk{n}")
        StaffNote.objects.create(customer=jane, author_name="Sam", body=f"note {n}", pinned=n % 5 == 0)
        CheckoutSessionFactory(email="jane@example.com", status="expired")
    with django_assert_num_queries(14) as many_queries:
        page = customer_page(customer=jane)

    assert len(few_queries.captured_queries) == len(many_queries.captured_queries)
    assert len(page.services.rows) == SECTION_ROWS["services"] and page.services.more
    assert len(page.invoices.rows) == SECTION_ROWS["invoices"] and page.invoices.more
    assert len(page.notes.rows) == SECTION_ROWS["notes"] and page.notes.more
    assert 10 <= len(page.attention) <= 20  # sixteen suspended services: the banner's own bound, per kind
    # The whole page as support opens it: the selector, the admin's own reads (session, user, permissions).
    support_client.get(page_url(jane))  # warms the permission cache of this request's user, as any first page does
    with django_assert_max_num_queries(20):
        response = support_client.get(page_url(jane))
    assert response.status_code == 200


# --- Notes ------------------------------------------------------------------------------------------------------------


def test_support_adds_a_note_under_their_own_name_logged_in_the_admin_log(support_client, support_agent, jane):
    support_agent.full_name = "Sally Support"
    support_agent.save()

    response = support_client.post(
        add_url(jane), {"body": "  Called about the blog's suspension.\nWill pay Friday.  "}, follow=True
    )

    note = StaffNote.objects.get(customer=jane)
    assert (note.author, note.author_name, note.pinned) == (support_agent, "Sally Support", False)
    assert note.body == "Called about the blog's suspension.\nWill pay Friday."
    assert response.redirect_chain[-1][0] == page_url(jane) + "#notes"
    assert "Note added." in messages_of(response)
    assert "Called about the blog&#x27;s suspension.<br>Will pay Friday." in response.content.decode()
    log = LogEntry.objects.get(object_id=str(jane.pk), content_type__model="customer")
    assert log.user == support_agent
    assert log.get_change_message().startswith(f"Staff note #{note.pk} added: Called about")


@pytest.mark.parametrize(
    "body, error",
    [
        ("", "This field is required."),
        ("   \n  ", "This field is required."),
        ("x" * 5001, "at most 5000 characters"),
    ],
)
def test_an_empty_or_too_long_note_is_refused(support_client, jane, body, error):
    response = support_client.post(add_url(jane), {"body": body}, follow=True)

    assert StaffNote.objects.count() == 0
    assert any(error in message for message in messages_of(response))
    assert not LogEntry.objects.exists()


def test_a_note_of_5000_characters_is_kept_whole(support_client, jane):
    support_client.post(add_url(jane), {"body": "y" * 5000})

    assert StaffNote.objects.get().body == "y" * 5000


def test_a_double_submit_makes_one_note(support_client, jane):
    first = support_client.post(add_url(jane), {"body": "Refund promised", "pinned": "on"}, follow=True)
    second = support_client.post(add_url(jane), {"body": "Refund promised", "pinned": "on"}, follow=True)

    assert StaffNote.objects.filter(customer=jane).count() == 1
    assert "Note added and pinned." in messages_of(first)
    assert "This note was already added a moment ago; it is kept once." in messages_of(second)
    assert LogEntry.objects.filter(object_id=str(jane.pk)).count() == 1


@pytest.mark.django_db(transaction=True)
def test_two_submits_arriving_together_make_one_note(staff_groups, support_agent):
    """The two requests of a double click, in parallel: the customer's row lock makes the second find the first."""
    customer = CustomerFactory(email="race@example.com")

    results, errors = run_at_once(
        lambda: note_create(customer=customer, author=support_agent, body="Asked for a callback"), 4
    )

    assert errors == []
    assert StaffNote.objects.filter(customer=customer).count() == 1
    assert sorted(created for _, created in results) == [False, False, False, True]


def test_the_same_text_later_or_from_someone_else_is_a_new_note(client, support_agent, billing_agent, jane):
    client.force_login(support_agent)
    client.post(add_url(jane), {"body": "Left a voicemail"})
    StaffNote.objects.update(created_at=timezone.now() - timedelta(minutes=1))
    client.post(add_url(jane), {"body": "Left a voicemail"})
    client.force_login(billing_agent)
    client.post(add_url(jane), {"body": "Left a voicemail"})

    assert StaffNote.objects.filter(customer=jane).count() == 3


def test_a_note_is_shown_as_text_never_as_html(support_client, jane):
    support_client.post(add_url(jane), {"body": '<script>alert("x")</script><b>bold</b>', "pinned": "on"})
    shop = jane.subscriptions.get(domain="janes-shop.example")

    for url in (
        page_url(jane),
        reverse("admin:checkout_checkoutsession_change", args=[shop.checkout_session_id]),
        reverse("admin:accounts_subscription_change", args=[shop.pk]),
    ):
        page = support_client.get(url).content.decode()
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;b&gt;bold&lt;/b&gt;" in page, url
        assert '<script>alert("x")' not in page and "<b>bold</b>" not in page, url


def test_pinning_and_unpinning_once_each_however_often_clicked(support_client, support_agent, jane):
    note = StaffNote.objects.create(customer=jane, author=support_agent, author_name="Sam", body="Prefers phone")

    first = support_client.post(pin_url(note), {"pinned": "1"}, follow=True)
    again = support_client.post(pin_url(note), {"pinned": "1"}, follow=True)

    note.refresh_from_db()
    assert note.pinned
    assert f"Note #{note.pk} pinned." in messages_of(first)
    assert f"Note #{note.pk} was already pinned." in messages_of(again)
    support_client.post(pin_url(note), {"pinned": "0"})
    note.refresh_from_db()
    assert not note.pinned
    assert [log.get_change_message() for log in LogEntry.objects.order_by("pk")] == [
        f"Staff note #{note.pk} pinned",
        f"Staff note #{note.pk} unpinned",
    ]


def test_a_pinned_note_shows_on_every_order_and_subscription_of_the_customer(support_client, support_agent, jane):
    pinned = StaffNote.objects.create(
        customer=jane,
        author=support_agent,
        author_name="Sam",
        body="Disputed a charge: talk to billing first",
        pinned=True,
    )
    StaffNote.objects.create(customer=jane, author=support_agent, author_name="Sam", body="An ordinary note")
    pages = [
        reverse("admin:checkout_checkoutsession_change", args=[s.checkout_session_id]) for s in jane.subscriptions.all()
    ]
    pages += [reverse("admin:accounts_subscription_change", args=[s.pk]) for s in jane.subscriptions.all()]
    # The pending order (found by its e-mail address) and the expired one (by its Stripe customer) too.
    pages += [
        reverse("admin:checkout_checkoutsession_change", args=[s.pk])
        for s in CheckoutSession.objects.filter(status__in=("pending", "expired"))
    ]
    other_order = Customer.objects.get(email="other@example.com").subscriptions.get().checkout_session_id

    for url in pages:
        page = support_client.get(url).content.decode()
        assert 'id="pinned-notes"' in page, url
        assert "Disputed a charge: talk to billing first" in page and "An ordinary note" not in page, url
        assert f'href="{page_url(jane)}#notes"' in page, url
    assert (
        "Disputed a charge"
        not in support_client.get(reverse("admin:checkout_checkoutsession_change", args=[other_order])).content.decode()
    )
    pinned.pinned = False
    pinned.save()
    assert 'id="pinned-notes"' not in support_client.get(pages[0]).content.decode()


def test_notes_are_posted_only_with_csrf_and_post(support_agent, jane):
    client = Client(enforce_csrf_checks=True)
    client.force_login(support_agent)

    assert client.post(add_url(jane), {"body": "no token"}).status_code == 403
    assert client.get(add_url(jane)).status_code == 405
    note = StaffNote.objects.create(customer=jane, author_name="Sam", body="x")
    assert client.get(pin_url(note)).status_code == 405
    assert StaffNote.objects.count() == 1 and not StaffNote.objects.get().pinned


def test_a_note_of_another_customer_cannot_be_pinned_through_this_one(support_client, jane):
    other = Customer.objects.get(email="other@example.com")
    note = StaffNote.objects.create(customer=other, author_name="Sam", body="theirs")

    response = support_client.post(
        reverse("admin:accounts_customer_note_pin", args=[jane.pk, note.pk]), {"pinned": "1"}
    )

    assert response.status_code == 404
    note.refresh_from_db()
    assert not note.pinned


def test_notes_are_listed_read_only_in_the_admin(client, superuser, jane):
    note = StaffNote.objects.create(customer=jane, author_name="Sam", body="kept as written")
    client.force_login(superuser)

    assert client.get(reverse("admin:backoffice_staffnote_add")).status_code == 403
    assert client.post(reverse("admin:backoffice_staffnote_delete", args=[note.pk]), {"post": "yes"}).status_code == 403
    client.post(reverse("admin:backoffice_staffnote_change", args=[note.pk]), {"body": "rewritten"})
    note.refresh_from_db()
    assert note.body == "kept as written"


# --- Who may do what --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["support_agent", "billing_agent", "superuser"])
def test_support_billing_and_superusers_read_the_page_and_add_and_pin_notes(client, request, jane, who):
    user = request.getfixturevalue(who)
    client.force_login(user)

    page = client.get(page_url(jane))
    added = client.post(add_url(jane), {"body": f"note by {who}"})
    note = StaffNote.objects.get(body=f"note by {who}")
    pinned = client.post(pin_url(note), {"pinned": "1"})

    assert page.status_code == 200 and 'id="note-form"' in page.content.decode()
    assert added.status_code == 302 and pinned.status_code == 302
    note.refresh_from_db()
    assert note.author == user and note.pinned


def test_only_who_may_change_a_customer_gets_its_edit_form(client, support_agent, superuser, jane):
    client.force_login(support_agent)
    read = client.get(page_url(jane)).content.decode()
    client.force_login(superuser)
    edit = client.get(page_url(jane)).content.decode()

    assert 'name="email"' not in read and 'name="memberships-TOTAL_FORMS"' not in read
    assert 'name="email"' in edit and 'name="memberships-TOTAL_FORMS"' in edit
    history = reverse("admin:accounts_customer_history", args=[jane.pk])  # where the notes' log lines are
    assert read.count(f'href="{history}"') == 1 and edit.count(f'href="{history}"') == 1


def test_catalog_managers_cannot_see_customers_nor_their_notes(catalog_client, support_agent, jane):
    note = StaffNote.objects.create(customer=jane, author=support_agent, author_name="Sam", body="secret", pinned=True)
    order = jane.subscriptions.get(domain="janes-shop.example").checkout_session_id

    assert catalog_client.get(page_url(jane)).status_code == 403
    assert catalog_client.post(add_url(jane), {"body": "x"}).status_code == 403
    assert catalog_client.post(pin_url(note), {"pinned": "0"}).status_code == 403
    assert catalog_client.get(reverse("admin:backoffice_staffnote_changelist")).status_code == 403
    order_page = catalog_client.get(reverse("admin:checkout_checkoutsession_change", args=[order]))
    assert order_page.status_code == 200 and "secret" not in order_page.content.decode()
    assert page_url(jane) not in order_page.content.decode()
    note.refresh_from_db()
    assert note.pinned and StaffNote.objects.count() == 1


def test_staff_who_may_read_but_not_write_notes_get_no_form_and_403(client, staff_groups, jane):
    reader = UserFactory(email="reader@migrahosting.test", is_staff=True)
    reader.user_permissions.add(*Permission.objects.filter(codename__in=("view_customer", "view_staffnote")))
    note = StaffNote.objects.create(customer=jane, author_name="Sam", body="read me")
    client.force_login(reader)

    page = client.get(page_url(jane)).content.decode()

    assert "read me" in page and 'id="note-form"' not in page and f'id="note-{note.pk}-pin"' not in page
    assert client.post(add_url(jane), {"body": "x"}).status_code == 403
    assert client.post(pin_url(note), {"pinned": "1"}).status_code == 403


def test_people_who_are_not_staff_are_sent_to_the_login(client, jane):
    login = reverse("admin:login")
    for url in (page_url(jane), add_url(jane)):
        response = client.post(url, {"body": "x"}) if url.endswith("/add/") else client.get(url)
        assert response.status_code == 302 and response["Location"].startswith(login), url
    client.force_login(jane.users.get(email="jane@example.com"))  # a customer, signed in, not staff
    response = client.post(add_url(jane), {"body": "x"})
    assert response.status_code == 302 and response["Location"].startswith(login)
    assert not StaffNote.objects.exists()


# --- The ways to the page ---------------------------------------------------------------------------------------------


def test_every_order_subscription_account_and_user_page_links_to_the_customer(support_client, jane):
    shop = jane.subscriptions.get(domain="janes-shop.example")
    pending = CheckoutSession.objects.get(status="pending")
    pages = {
        "order": reverse("admin:checkout_checkoutsession_change", args=[shop.checkout_session_id]),
        "pending order": reverse("admin:checkout_checkoutsession_change", args=[pending.pk]),
        "subscription": reverse("admin:accounts_subscription_change", args=[shop.pk]),
        "hosting account": reverse("admin:provisioning_hostingaccount_change", args=[shop.hosting_account.pk]),
        "user": reverse("admin:accounts_user_change", args=[jane.users.get(email="jane@example.com").pk]),
        "customer list": reverse("admin:accounts_customer_changelist"),
    }
    for name, url in pages.items():
        response = support_client.get(url)
        assert response.status_code == 200, name
        assert f'href="{page_url(jane)}' in response.content.decode(), name
