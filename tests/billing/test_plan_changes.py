"""Plan changes against the Stripe sandbox over HTTP: what a subscription may move to, the preview's figures, an
upgrade charged now (our rows, one change_plan job, one panel call), a downgrade credited on the next renewal, a
declined card that changes nothing, moves refused, and a double submit that acts once."""

import pytest

from accounts.models import Subscription
from billing.models import BillingAction, BillingActionStatus, SubscriptionInvoice
from billing.plan_changes import (
    _price_data,
    plan_change_options,
    plan_change_perform,
    plan_change_preview,
    subscription_plan_change,
)
from catalog.models import PlanMove, Price
from core.exceptions import ApplicationError
from provisioning.models import ProvisioningJob

pytestmark = pytest.mark.django_db


def price(code: str, cycle: str = "monthly") -> Price:
    return Price.objects.select_related("product").get(product__code=code, billing_cycle=cycle, active=True)


def change(world, subscription: Subscription, to: Price, **kwargs) -> BillingAction:
    """The change as the client area makes it, its commit's work (the panel's job) run in-process, then Stripe's
    events handed to dj-stripe."""
    with world.capture(execute=True):
        action = subscription_plan_change(subscription=subscription, price=to, actor=None, **kwargs)
    world.process()
    return action


def plan_jobs(subscription: Subscription) -> list[ProvisioningJob]:
    return list(subscription.provisioning_jobs.filter(action="change_plan").order_by("pk"))


def stripe_item_price(world, subscription: Subscription) -> dict:
    stripe_subscription = world.api("get", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    return stripe_subscription["items"]["data"][0]["price"]


# --- Options ----------------------------------------------------------------------------------------------------------


def test_options_are_the_other_cycles_and_the_plans_the_catalog_allows(world):
    subscription = world.buy("options@example.com", plan="starter", cycle="monthly")

    options = [(p.product.code, p.billing_cycle) for p in plan_change_options(subscription=subscription)]

    cycles = ["monthly", "yearly", "biennial", "triennial"]
    assert options == (
        [("starter", c) for c in cycles[1:]] + [("premium", c) for c in cycles] + [("business", c) for c in cycles]
    )


def test_a_move_switched_off_in_the_catalog_is_no_longer_offered_nor_accepted(world):
    subscription = world.buy("switched-off@example.com")
    PlanMove.objects.filter(from_product__code="starter", to_product__code="business").update(active=False)

    offered = {p.product.code for p in plan_change_options(subscription=subscription)}
    with pytest.raises(ApplicationError) as raised:
        subscription_plan_change(subscription=subscription, price=price("business"), actor=None)

    assert offered == {"starter", "premium"}
    assert raised.value.code == "plan_move_not_allowed"


# --- Preview ----------------------------------------------------------------------------------------------------------


def test_an_upgrade_preview_charges_the_prorated_difference_now(world):
    subscription = world.buy("preview-up@example.com", plan="starter")
    subscription.refresh_from_db()

    preview = plan_change_preview(subscription=subscription, price=price("premium"))

    # Bought moments ago: almost the whole month is left, so almost the whole 8.99 - 7.99 difference.
    assert preview.charged_now is True
    assert 95 <= preview.amount_due_now <= 100
    assert (preview.credit, preview.currency, preview.next_renewal_amount) == (0, "usd", 899)
    assert preview.next_renewal_at == subscription.current_period_end
    assert sum(line.amount for line in preview.lines if line.proration) == preview.amount_due_now
    assert preview.proration_date is not None


def test_a_downgrade_preview_charges_nothing_now_and_credits_the_next_renewal(world):
    subscription = world.buy("preview-down@example.com", plan="premium")
    subscription.refresh_from_db()

    preview = plan_change_preview(subscription=subscription, price=price("starter"))

    assert (preview.charged_now, preview.amount_due_now) == (False, 0)
    assert 95 <= preview.credit <= 100
    assert preview.next_renewal_amount == 799 - preview.credit
    assert preview.next_renewal_at == subscription.current_period_end


def test_a_longer_cycle_preview_charges_the_new_period_less_the_unused_month(world):
    subscription = world.buy("preview-yearly@example.com", plan="starter")

    preview = plan_change_preview(subscription=subscription, price=price("starter", "yearly"))

    assert preview.charged_now is True
    assert 3588 - 799 <= preview.amount_due_now <= 3588 - 790
    assert preview.next_renewal_amount == 3588


# --- Upgrade ----------------------------------------------------------------------------------------------------------


def test_an_upgrade_is_charged_now_as_previewed_and_moves_our_rows_and_the_panel(world):
    subscription = world.buy("upgrade@example.com", plan="starter")
    subscription.refresh_from_db()
    preview = plan_change_preview(subscription=subscription, price=price("premium"))

    action = change(
        world, subscription, price("premium"), idempotency_key="plan-up-1", proration_date=preview.proration_date
    )

    subscription.refresh_from_db()
    assert (action.status, action.kind, action.price_id) == (
        BillingActionStatus.DONE,
        "change_plan",
        price("premium").pk,
    )
    assert (subscription.product.code, subscription.billing_cycle, subscription.amount, subscription.price_id) == (
        "premium",
        "monthly",
        899,
        price("premium").pk,
    )
    [invoice] = SubscriptionInvoice.objects.filter(subscription=subscription, billing_reason="subscription_update")
    assert (invoice.status, invoice.amount_paid) == ("paid", preview.amount_due_now)
    [job] = plan_jobs(subscription)
    assert (job.status, job.attempts, job.decision_key) == ("succeeded", 1, "change_plan:plan-up-1")
    assert job.parameters == {
        "product_code": "premium",
        "billing_cycle": "monthly",
        "previous_product_code": "starter",
        "previous_billing_cycle": "monthly",
    }
    assert job.result["product_code"] == "premium"
    assert stripe_item_price(world, subscription)["unit_amount"] == 899
    assert subscription.status == "active" and subscription.hosting_account.status == "active"


def test_a_move_to_a_longer_cycle_restarts_the_period(world):
    subscription = world.buy("yearly@example.com", plan="starter")
    subscription.refresh_from_db()
    month_end = subscription.current_period_end

    change(world, subscription, price("premium", "yearly"))

    subscription.refresh_from_db()
    assert (subscription.product.code, subscription.billing_cycle, subscription.amount) == ("premium", "yearly", 4788)
    assert (subscription.current_period_end - month_end).days > 300
    [invoice] = SubscriptionInvoice.objects.filter(subscription=subscription, billing_reason="subscription_update")
    assert invoice.status == "paid" and 4788 - 799 <= invoice.amount_paid < 4788


def test_a_declined_upgrade_changes_nothing(world):
    subscription = world.buy("declined@example.com", plan="starter")
    world.set_card(subscription, "pm_card_chargeCustomerFail")
    world.process()

    with pytest.raises(ApplicationError) as raised:
        change(world, subscription, price("premium"), idempotency_key="plan-declined")

    assert (raised.value.code, raised.value.status_code) == ("card_declined", 402)
    assert "declined" in raised.value.message and "nothing was changed" in raised.value.message
    subscription.refresh_from_db()
    assert (subscription.product.code, subscription.amount) == ("starter", 799)
    assert stripe_item_price(world, subscription)["unit_amount"] == 799
    assert plan_jobs(subscription) == []
    action = BillingAction.objects.get(idempotency_key="plan-declined")
    assert action.status == BillingActionStatus.FAILED and action.details["error_code"] == "card_declined"
    assert not SubscriptionInvoice.objects.filter(
        subscription=subscription, billing_reason="subscription_update", status="paid"
    ).exists()
    # The same form again shows the same refusal; a new attempt (new key) after fixing the card goes through.
    with pytest.raises(ApplicationError):
        subscription_plan_change(
            subscription=subscription, price=price("premium"), actor=None, idempotency_key="plan-declined"
        )
    world.set_card(subscription, "pm_card_visa")
    assert change(world, subscription, price("premium"), idempotency_key="plan-retry").status == "done"


# --- Downgrade --------------------------------------------------------------------------------------------------------


def test_a_downgrade_charges_nothing_now_and_the_next_renewal_carries_the_credit(world):
    subscription = world.buy("downgrade@example.com", plan="premium")
    subscription.refresh_from_db()
    preview = plan_change_preview(subscription=subscription, price=price("starter"))

    action = change(world, subscription, price("starter"), proration_date=preview.proration_date)

    subscription.refresh_from_db()
    assert action.status == "done"
    assert (subscription.product.code, subscription.amount) == ("starter", 799)
    assert not SubscriptionInvoice.objects.filter(
        subscription=subscription, billing_reason="subscription_update"
    ).exists()
    assert len(plan_jobs(subscription)) == 1

    world.advance(days=31)

    [renewal] = SubscriptionInvoice.objects.filter(subscription=subscription, billing_reason="subscription_cycle")
    assert (renewal.status, renewal.amount_paid) == ("paid", preview.next_renewal_amount)
    assert renewal.amount_paid == 799 - preview.credit


# --- Refusals ---------------------------------------------------------------------------------------------------------


def test_a_move_to_another_type_of_plan_is_refused(world):
    subscription = world.buy("other-type@example.com")

    with pytest.raises(ApplicationError) as raised:
        subscription_plan_change(subscription=subscription, price=price("wp-premium"), actor=None)

    assert raised.value.code == "plan_move_not_allowed"
    assert not BillingAction.objects.filter(kind="change_plan").exists()


def test_a_price_in_another_currency_is_refused(world):
    subscription = world.buy("currency@example.com")
    euro = Price.objects.create(
        product=price("premium").product, billing_cycle="monthly", currency="eur", unit_amount=850
    )

    with pytest.raises(ApplicationError) as raised:
        plan_change_preview(subscription=subscription, price=euro)

    assert raised.value.code == "currency_mismatch"


def test_a_past_due_subscription_cannot_change_plan(world):
    subscription = world.buy("past-due@example.com")
    world.set_card(subscription, "pm_card_chargeCustomerFail")
    world.advance(days=31)
    subscription.refresh_from_db()
    assert subscription.status == "past_due"

    with pytest.raises(ApplicationError) as raised:
        subscription_plan_change(subscription=subscription, price=price("premium"), actor=None)

    assert raised.value.code == "plan_change_unavailable" and "overdue" in raised.value.message
    assert plan_change_options(subscription=subscription) == []


def test_an_ended_subscription_cannot_change_plan(world):
    subscription = world.buy("ended@example.com")
    world.api("delete", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    world.process()
    subscription.refresh_from_db()

    with pytest.raises(ApplicationError) as raised:
        plan_change_preview(subscription=subscription, price=price("premium"))

    assert raised.value.code == "plan_change_unavailable"


def test_a_stale_preview_is_refused(world):
    subscription = world.buy("stale@example.com")
    subscription.refresh_from_db()
    hours_ago = int(subscription.current_period_start.timestamp()) - 2 * 3600

    with pytest.raises(ApplicationError) as raised:
        subscription_plan_change(
            subscription=subscription, price=price("premium"), actor=None, proration_date=hours_ago
        )

    assert raised.value.code == "preview_expired"


# --- Twice ------------------------------------------------------------------------------------------------------------


def test_a_double_submit_acts_once(world):
    subscription = world.buy("twice@example.com")
    updates_before = len(world.sandbox.requests("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}"))

    first = change(world, subscription, price("premium"), idempotency_key="plan-twice")
    stale = Subscription.objects.get(pk=subscription.pk)  # the page as drawn before either submit: same object
    second = change(world, subscription, price("premium"), idempotency_key="plan-twice")

    assert first.pk == second.pk and second.status == "done"
    assert BillingAction.objects.filter(kind="change_plan").count() == 1
    assert len(plan_jobs(stale)) == 1
    updates = world.sandbox.requests("POST", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    assert len(updates) - updates_before == 1
    assert (
        SubscriptionInvoice.objects.filter(
            subscription=subscription, billing_reason="subscription_update", status="paid"
        ).count()
        == 1
    )


def test_a_second_change_from_a_page_drawn_before_the_first_is_refused(world):
    subscription = world.buy("two-tabs@example.com")
    drawn = Subscription.objects.get(pk=subscription.pk)
    change(world, subscription, price("premium"), idempotency_key="tab-1")

    with pytest.raises(ApplicationError) as raised:
        subscription_plan_change(subscription=drawn, price=price("business"), actor=None, idempotency_key="tab-2")

    assert raised.value.code == "plan_changed_meanwhile"


# --- When Stripe's answer is lost -------------------------------------------------------------------------------------


def test_a_stripe_failure_before_the_change_fails_it_and_changes_nothing(world):
    subscription = world.buy("stripe-500@example.com")
    world.sandbox.inject_fault(
        path_prefix=f"/v1/subscriptions/{subscription.stripe_subscription_id}", method="POST", status=500, count=5
    )

    with pytest.raises(ApplicationError) as raised:
        change(world, subscription, price("premium"), idempotency_key="plan-500")

    assert raised.value.code == "payment_provider_error"
    subscription.refresh_from_db()
    assert subscription.product.code == "starter" and plan_jobs(subscription) == []
    assert BillingAction.objects.get(idempotency_key="plan-500").status == BillingActionStatus.FAILED


def test_a_change_made_at_stripe_whose_answer_was_lost_is_completed_on_our_side(world):
    subscription = world.buy("lost-answer@example.com")
    # The change reaches Stripe (made here directly, as our call would), but our process hears only a 500.
    action = BillingAction.objects.create(
        subscription=subscription,
        kind="change_plan",
        reason="Test.",
        price=price("premium"),
        idempotency_key="plan-lost",
        details={"proration_behavior": "always_invoice", "proration_date": None},
    )
    stripe_subscription = world.api("get", f"/v1/subscriptions/{subscription.stripe_subscription_id}")
    world.api(
        "post",
        f"/v1/subscriptions/{subscription.stripe_subscription_id}",
        items=[{"id": stripe_subscription["items"]["data"][0]["id"], "price_data": _price_data(price("premium"))}],
        proration_behavior="always_invoice",
    )
    world.sandbox.inject_fault(
        path_prefix=f"/v1/subscriptions/{subscription.stripe_subscription_id}", method="POST", status=500, count=5
    )

    with world.capture(execute=True):
        action = plan_change_perform(action_id=action.pk)

    subscription.refresh_from_db()
    assert action.status == BillingActionStatus.DONE
    assert subscription.product.code == "premium" and len(plan_jobs(subscription)) == 1
