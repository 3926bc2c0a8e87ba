"""Plan changes: the prices a subscription may move to (catalog.PlanMove and the plan's other cycles), what a move
costs now or credits later (Stripe's invoice preview), and the move itself: at Stripe with prorations, then on our
subscription with a `change_plan` provisioning job, recorded as a BillingAction whose key makes a resubmission act once.

Upgrades (a higher price per month, or another cycle, which restarts the billing period at Stripe) are invoiced and
charged now, all or nothing (`always_invoice`, `error_if_incomplete`): a declined card changes nothing. Downgrades
leave the credit for the unused time on the next renewal (`create_prorations`). The preview and the change use the
same proration behaviour and proration date, so the customer is charged what the preview showed.
"""

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import stripe
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from accounts.models import Subscription, SubscriptionStatus, User
from billing.models import BillingAction, BillingActionKind, BillingActionStatus
from billing.selectors import ACTION_STALE_AFTER, stripe_now, stripe_time
from catalog.models import CYCLE_TERMS, BillingCycle, PlanMove, Price, Product
from core.exceptions import ApplicationError
from core.stripe_api import stripe_client
from provisioning.models import ProvisioningAction
from provisioning.services import hosting_account_action_request

logger = logging.getLogger(__name__)

CHANGEABLE_STATUSES = (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING)
CHARGE_NOW = "always_invoice"
CREDIT_LATER = "create_prorations"
# A preview's proration date is honoured this long; after that the customer is asked to look at the figures again.
PREVIEW_VALID_FOR = timedelta(hours=1)
STRIPE_PRODUCT_MARK_SECONDS = 24 * 60 * 60
# Stripe may or may not have made the change: the subscription is read back to tell.
OUTCOME_UNKNOWN = ("payment_provider_unavailable", "payment_provider_error")


# --- What a subscription may move to ----------------------------------------------------------------------------------


def subscription_plan_change_blocker(*, subscription: Subscription) -> str | None:
    """Why the subscription cannot change plan now (a sentence for the customer), or None when it can."""
    if subscription.is_ended:
        return "This service has ended."
    if subscription.status == SubscriptionStatus.PAST_DUE or subscription.status == SubscriptionStatus.UNPAID:
        return "A payment is overdue: pay the open invoice first, then change the plan."
    if subscription.status not in CHANGEABLE_STATUSES or not subscription.stripe_subscription_id:
        return "This service cannot change plan in its current state."
    if subscription.cancel_at_period_end:
        return "This service is set to end at the close of its period: keep it first, then change the plan."
    return None


def plan_change_options(*, subscription: Subscription) -> list[Price]:
    """The active prices the subscription may move to, in the order the catalog lists them: the plan's other cycles
    and every cycle of the plans an active PlanMove allows, in the subscription's currency. Empty when the
    subscription cannot change plan (see subscription_plan_change_blocker)."""
    if subscription_plan_change_blocker(subscription=subscription) is not None:
        return []
    prices = (
        _allowed_prices(subscription)
        .exclude(product_id=subscription.product_id, billing_cycle=subscription.billing_cycle)
        .select_related("product")
    )
    return sorted(
        prices, key=lambda price: (price.product.sort_order, price.product.code, _months(price.billing_cycle))
    )


def _allowed_prices(subscription: Subscription):
    moves_to = PlanMove.objects.filter(
        from_product_id=subscription.product_id, active=True, to_product__type=subscription.product.type
    ).values("to_product_id")
    return Price.objects.filter(
        Q(product_id=subscription.product_id) | Q(product_id__in=moves_to),
        active=True,
        product__active=True,
        currency=subscription.currency,
    )


def _plan_change_check(subscription: Subscription, price: Price) -> None:
    if blocker := subscription_plan_change_blocker(subscription=subscription):
        raise ApplicationError(blocker, code="plan_change_unavailable")
    if price.currency != subscription.currency:
        raise ApplicationError(
            f"This service is billed in {subscription.currency.upper()}; pick a price in that currency.",
            code="currency_mismatch",
            field="price",
        )
    if price.product_id == subscription.product_id and price.billing_cycle == subscription.billing_cycle:
        raise ApplicationError("This service is already on that plan and cycle.", code="same_plan", field="price")
    if not _allowed_prices(subscription).filter(pk=price.pk).exists():
        raise ApplicationError("This service cannot move to that plan.", code="plan_move_not_allowed", field="price")


def _months(cycle: str) -> int:
    return CYCLE_TERMS[BillingCycle(cycle)].months


def plan_change_charged_now(*, subscription: Subscription, price: Price) -> bool:
    """An upgrade, invoiced and charged now: a higher price per month, or another cycle (Stripe restarts the billing
    period and invoices at once whenever the interval changes, so that is charged now whichever way it goes)."""
    old_months, new_months = _months(subscription.billing_cycle), _months(price.billing_cycle)
    return new_months != old_months or price.unit_amount * old_months > subscription.amount * new_months


# --- The preview ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanChangeLine:
    description: str
    amount: int  # cents; negative for a credit
    proration: bool
    period_start: datetime | None
    period_end: datetime | None


@dataclass(frozen=True)
class PlanChangePreview:
    """What moving to `price` means in money, as Stripe computes it.

    `amount_due_now`: charged when the change is made (0 for a downgrade). `credit`: the customer's net credit for
    the unused time on the old plan, less the new plan's cost for the same time (0 when that nets to a charge): it
    lands on the next renewal. `next_renewal_amount` / `next_renewal_at`: the next invoice of the renewal (before
    any later change). Pass `proration_date` to subscription_plan_change so that it charges exactly this.
    """

    price: Price
    charged_now: bool
    amount_due_now: int
    credit: int
    currency: str
    next_renewal_amount: int
    next_renewal_at: datetime | None
    lines: tuple[PlanChangeLine, ...]
    proration_date: int | None  # Stripe's unix time the prorations are computed at


def plan_change_preview(*, subscription: Subscription, price: Price) -> PlanChangePreview:
    """Ask Stripe what the move would invoice (`POST /v1/invoices/create_preview`), with the proration behaviour
    the change will use. Raises ApplicationError when the move is not allowed or Stripe cannot answer."""
    _plan_change_check(subscription, price)
    charged_now = plan_change_charged_now(subscription=subscription, price=price)
    stripe_subscription = _stripe(
        lambda: stripe_client().v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    )
    details: dict = {
        "items": [{"id": _item_id(stripe_subscription), "price_data": _price_data(price)}],
        "proration_behavior": CHARGE_NOW if charged_now else CREDIT_LATER,
    }
    invoice = _stripe(
        lambda: stripe_client().v1.invoices.create_preview(
            {"subscription": subscription.stripe_subscription_id, "subscription_details": details}
        )
    )
    lines = tuple(_line(line) for line in ((invoice.get("lines") or {}).get("data") or []))
    prorations = [line for line in lines if line.proration]
    renewals = [line for line in lines if not line.proration]
    net_prorations = sum(line.amount for line in prorations)
    if charged_now:
        total = int(invoice.get("total") or 0)
        amount_due_now = int(invoice.get("amount_due") or 0)
        credit = max(0, -total)
        next_renewal_amount = price.unit_amount
        ends = [line.period_end for line in lines if line.period_end]
        next_renewal_at = max(ends) if ends else subscription.current_period_end
    else:
        amount_due_now = 0
        credit = max(0, -net_prorations)
        next_renewal_amount = int(invoice.get("amount_due") or 0)
        starts = [line.period_start for line in renewals if line.period_start]
        next_renewal_at = min(starts) if starts else subscription.current_period_end
    # Stripe's "now" is the start of its proration lines (its clock may not be ours: a test clock, the sandbox's).
    proration_starts = [line.period_start for line in prorations if line.period_start]
    proration_date = int(min(proration_starts).timestamp()) if proration_starts else None
    return PlanChangePreview(
        price=price,
        charged_now=charged_now,
        amount_due_now=amount_due_now,
        credit=credit,
        currency=invoice.get("currency") or price.currency,
        next_renewal_amount=next_renewal_amount,
        next_renewal_at=next_renewal_at,
        lines=lines,
        proration_date=proration_date,
    )


def _line(line: dict) -> PlanChangeLine:
    parent = line.get("parent") or {}
    item = parent.get("subscription_item_details") or parent.get("invoice_item_details") or {}
    period = line.get("period") or {}
    return PlanChangeLine(
        description=line.get("description") or "",
        amount=int(line.get("amount") or 0),
        # API versions before 2025-03-31 had `proration` on the line itself.
        proration=bool(item.get("proration", line.get("proration", False))),
        period_start=stripe_time(period.get("start")),
        period_end=stripe_time(period.get("end")),
    )


# --- The change -------------------------------------------------------------------------------------------------------


def subscription_plan_change(
    *,
    subscription: Subscription,
    price: Price,
    actor: User | None,
    idempotency_key: str | None = None,
    proration_date: int | None = None,
    reason: str = "",
) -> BillingAction:
    """Move the subscription to `price`: at Stripe first (outside any lock; an upgrade is charged now and a declined
    card changes nothing), then, in one transaction, our subscription's plan and a `change_plan` job for the panel.

    `idempotency_key`: the form's key; a resubmission returns the first action (or raises its error again, if it
    failed: a new attempt needs a new key). `proration_date`: the preview's, so the charge is what it showed; at
    most PREVIEW_VALID_FOR old. Raises ApplicationError (code `card_declined` with status 402 for a declined card).
    """
    if idempotency_key and (done := _action_already_taken(subscription, idempotency_key)):
        return done
    _plan_change_check(subscription, price)
    charged_now = plan_change_charged_now(subscription=subscription, price=price)
    if proration_date is not None:
        _proration_date_check(subscription, proration_date)
    _stale_changes_finish(subscription)
    from_plan = f"{subscription.product.code}/{subscription.billing_cycle}"
    to_plan = f"{price.product.code}/{price.billing_cycle}"
    with transaction.atomic():
        # Under the subscription's lock: a change made meanwhile (another tab) is seen, and two never overlap.
        locked = Subscription.objects.select_for_update().get(pk=subscription.pk)
        if idempotency_key and (done := _action_already_taken(subscription, idempotency_key)):
            return done  # the same form, submitted twice at once: the first submission's action
        if (locked.price_id, locked.billing_cycle) != (subscription.price_id, subscription.billing_cycle):
            raise ApplicationError("The plan was changed meanwhile; reload the page.", code="plan_changed_meanwhile")
        if BillingAction.objects.filter(
            subscription=locked, kind=BillingActionKind.CHANGE_PLAN, status=BillingActionStatus.REQUESTED
        ).exists():
            raise ApplicationError(
                "A plan change for this service is already under way; reload the page in a minute.",
                code="plan_change_in_progress",
            )
        fields = {
            "subscription": locked,
            "kind": BillingActionKind.CHANGE_PLAN,
            "actor": actor,
            "price": price,
            "reason": (reason or "").strip()
            or f"Plan change from {from_plan} to {to_plan}{f' asked by {actor.email}' if actor else ''}.",
            "details": {
                "from_price_id": subscription.price_id,
                "from_product_code": subscription.product.code,
                "from_billing_cycle": subscription.billing_cycle,
                "from_amount": subscription.amount,
                "to_product_code": price.product.code,
                "to_billing_cycle": price.billing_cycle,
                "proration_behavior": CHARGE_NOW if charged_now else CREDIT_LATER,
                "proration_date": proration_date,
            },
        }
        if idempotency_key:
            fields["idempotency_key"] = idempotency_key
        action = BillingAction.objects.create(**fields)
    logger.info(
        "Plan change %s of subscription %s: %s -> %s (%s) requested by %s",
        action.pk,
        subscription.pk,
        from_plan,
        to_plan,
        fields["details"]["proration_behavior"],
        actor or "a rule",
    )
    action = plan_change_perform(action_id=action.pk)
    _raise_if_failed(action)
    if action.status == BillingActionStatus.REQUESTED:
        raise ApplicationError(action.error, code="payment_provider_unavailable", status_code=503)
    return action


def _stale_changes_finish(subscription: Subscription) -> None:
    """A change whose process died between Stripe's answer and ours (or that could not tell Stripe's outcome) is
    finished before another is taken: with its own key, so Stripe answers as it did, or says it never happened."""
    stale = BillingAction.objects.filter(
        subscription=subscription,
        kind=BillingActionKind.CHANGE_PLAN,
        status=BillingActionStatus.REQUESTED,
        updated_at__lt=timezone.now() - ACTION_STALE_AFTER,
    ).values_list("pk", flat=True)
    for action_id in stale:
        plan_change_perform(action_id=action_id)


def _action_already_taken(subscription: Subscription, idempotency_key: str) -> BillingAction | None:
    action = BillingAction.objects.filter(idempotency_key=idempotency_key).first()
    if action is None:
        return None
    if action.subscription_id != subscription.pk or action.kind != BillingActionKind.CHANGE_PLAN:
        raise ApplicationError(
            "This form was already used for another action; reload the page.", code="idempotency_key_reused"
        )
    _raise_if_failed(action)
    return action


def _raise_if_failed(action: BillingAction) -> None:
    if action.status == BillingActionStatus.FAILED:
        code = action.details.get("error_code") or "plan_change_failed"
        raise ApplicationError(action.error, code=code, status_code=402 if code == "card_declined" else 400)


def _proration_date_check(subscription: Subscription, proration_date: int) -> None:
    at = stripe_time(proration_date)
    now = stripe_now(scope=subscription.stripe_test_clock_id)
    in_period = (subscription.current_period_start is None or at >= subscription.current_period_start) and (
        subscription.current_period_end is None or at < subscription.current_period_end
    )
    if not in_period or at < now - PREVIEW_VALID_FOR:
        raise ApplicationError(
            "The figures shown are out of date; look at the change again.",
            code="preview_expired",
            field="proration_date",
        )


def plan_change_perform(*, action_id: int) -> BillingAction:
    """Make the Stripe call a recorded plan change asks for, then apply it to our rows (the body of the change, and
    what the sweep runs again for a change whose process died). Safe to run again: Stripe answers the action's
    idempotency key with its first answer, and our rows change once (the action leaves REQUESTED once)."""
    action = BillingAction.objects.select_related("subscription__product", "price__product").get(pk=action_id)
    if action.status != BillingActionStatus.REQUESTED:
        return action
    failure = None
    try:
        stripe_subscription = _stripe_plan_change(action)
    except ApplicationError as error:
        failure, stripe_subscription = error, None
        if error.code in OUTCOME_UNKNOWN:
            try:
                stripe_subscription = _stripe_subscription_if_changed(action)
            except ApplicationError:
                logger.warning(
                    "Plan change %s: Stripe's outcome unknown (%s); it stays requested",
                    action.pk,
                    _stripe_error_text(error),
                )
                BillingAction.objects.filter(pk=action.pk).update(error=error.message, updated_at=timezone.now())
                action.refresh_from_db()
                return action
    if stripe_subscription is None:
        BillingAction.objects.filter(pk=action.pk, status=BillingActionStatus.REQUESTED).update(
            status=BillingActionStatus.FAILED,
            error=failure.message,
            updated_at=timezone.now(),
            details={**action.details, "error_code": failure.code, "stripe_error": _stripe_error_text(failure)},
        )
        logger.warning(
            "Plan change %s of subscription %s refused: %s (%s)",
            action.pk,
            action.subscription_id,
            failure.code,
            _stripe_error_text(failure),
        )
        action.refresh_from_db()
        return action
    if failure is not None:
        logger.warning("Plan change %s: Stripe's answer was lost (%s) but the change is there", action.pk, failure.code)
    with transaction.atomic():
        subscription = Subscription.objects.select_for_update().select_related("product").get(pk=action.subscription_id)
        done = BillingAction.objects.filter(pk=action.pk, status=BillingActionStatus.REQUESTED).update(
            status=BillingActionStatus.DONE,
            error="",
            updated_at=timezone.now(),
            stripe_object_id=stripe_subscription.get("id") or "",
            details={**action.details, "latest_invoice": _id(stripe_subscription.get("latest_invoice"))},
        )
        if done:
            _subscription_plan_apply(subscription, action)
    action.refresh_from_db()
    return action


def _subscription_plan_apply(subscription: Subscription, action: BillingAction) -> None:
    price = action.price
    previous = (subscription.product.code, subscription.billing_cycle)
    subscription.price, subscription.product = price, price.product
    subscription.amount, subscription.billing_cycle = price.unit_amount, price.billing_cycle
    subscription.save(update_fields=["price", "product", "amount", "billing_cycle", "updated_at"])
    job = hosting_account_action_request(
        subscription=subscription,
        action=ProvisioningAction.CHANGE_PLAN,
        decision_key=f"change_plan:{action.idempotency_key}",
        reason=action.reason,
        requested_by=action.actor,
        parameters={
            "product_code": price.product.code,
            "billing_cycle": price.billing_cycle,
            "previous_product_code": previous[0],
            "previous_billing_cycle": previous[1],
        },
    )
    logger.info(
        "Subscription %s is now %s/%s (plan change %s); panel job %s",
        subscription.pk,
        price.product.code,
        price.billing_cycle,
        action.pk,
        job.pk if job else "not needed",
    )


# --- Stripe -----------------------------------------------------------------------------------------------------------


def _stripe_plan_change(action: BillingAction) -> dict:
    subscription, price = action.subscription, action.price
    stripe_subscription = _stripe(
        lambda: stripe_client().v1.subscriptions.retrieve(subscription.stripe_subscription_id)
    )
    params: dict = {
        "items": [{"id": _item_id(stripe_subscription), "price_data": _price_data(price)}],
        "proration_behavior": action.details["proration_behavior"],
        "metadata": {
            "product_code": price.product.code,
            "billing_cycle": price.billing_cycle,
            "price_id": str(price.pk),
        },
    }
    if action.details["proration_behavior"] == CHARGE_NOW:
        # All or nothing: a declined card leaves the subscription as it was (Stripe answers 402).
        params["payment_behavior"] = "error_if_incomplete"
    if action.details.get("proration_date"):
        params["proration_date"] = action.details["proration_date"]
    return _stripe(
        lambda: stripe_client().v1.subscriptions.update(
            subscription.stripe_subscription_id, params, {"idempotency_key": action.idempotency_key}
        )
    )


def _stripe_subscription_if_changed(action: BillingAction) -> dict | None:
    """Stripe's subscription if its item already has the price this action asked for (the update went through
    although we did not hear so), else None."""
    stripe_subscription = _stripe(
        lambda: stripe_client().v1.subscriptions.retrieve(action.subscription.stripe_subscription_id)
    )
    items = (stripe_subscription.get("items") or {}).get("data") or []
    wanted = _price_data(action.price)
    for item in items:
        price = item.get("price") or {}
        recurring = price.get("recurring") or {}
        if (
            _id(price.get("product")),
            price.get("unit_amount"),
            price.get("currency"),
            recurring.get("interval"),
            recurring.get("interval_count"),
        ) == (
            wanted["product"],
            wanted["unit_amount"],
            wanted["currency"],
            wanted["recurring"]["interval"],
            wanted["recurring"]["interval_count"],
        ):
            return stripe_subscription
    return None


def _item_id(stripe_subscription: dict) -> str:
    items = (stripe_subscription.get("items") or {}).get("data") or []
    if len(items) != 1:
        # Our checkout makes one item per subscription; anything else was edited at Stripe by hand.
        raise ApplicationError(
            "This service cannot change plan here; please contact support.", code="subscription_items_unexpected"
        )
    return items[0]["id"]


def _price_data(price: Price) -> dict:
    terms = price.cycle_terms
    return {
        "currency": price.currency,
        "product": stripe_product_ensure(price.product),
        "unit_amount": price.unit_amount,
        "recurring": {"interval": terms.interval, "interval_count": terms.interval_count},
    }


def stripe_product_id(product: Product) -> str:
    """Our plan's product at Stripe for plan changes (an id of our choosing: found again without a lookup)."""
    return f"plan-{product.code}"


def stripe_product_ensure(product: Product) -> str:
    """Create our plan's Stripe product on first use; afterwards a cache mark saves the call."""
    product_id = stripe_product_id(product)
    mark = f"stripe-product:{settings.STRIPE_API_BASE}:{product_id}"
    if cache.get(mark):
        return product_id
    try:
        _stripe(
            lambda: stripe_client().v1.products.create(
                {"id": product_id, "name": product.name, "metadata": {"product_code": product.code}},
                {"idempotency_key": f"product-create-{product_id}"},
            )
        )
    except ApplicationError as error:
        if error.code != "resource_already_exists":
            raise
    cache.set(mark, True, STRIPE_PRODUCT_MARK_SECONDS)
    return product_id


def _stripe(request) -> dict:
    """One Stripe request through the SDK's typed method, its answer as plain dicts (`to_dict()`: what the code above
    reads). Its refusals become an ApplicationError worded for the customer (who asked for the change). What Stripe
    said goes to the log and the action's details, not to the customer."""
    try:
        return request().to_dict()
    except stripe.CardError as error:
        raise ApplicationError(
            f"Your card was declined{f' ({error.user_message})' if error.user_message else ''}: nothing was changed "
            f"and nothing was charged. Update your payment method, then try again.",
            code="card_declined",
            status_code=402,
        ) from error
    except stripe.InvalidRequestError as error:
        if error.code == "resource_already_exists":
            raise ApplicationError(str(error), code=error.code) from error
        logger.warning("Stripe refused a plan change request: %s %s", error.code, error.user_message or error)
        raise ApplicationError(
            "The plan change could not be made; nothing was changed. Please contact support.",
            code="plan_change_refused",
        ) from error
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        logger.warning("Stripe unreachable or busy: %s", error)
        raise ApplicationError(
            "Our payment provider could not be reached; nothing was changed. Try again in a minute.",
            code="payment_provider_unavailable",
            status_code=503,
        ) from error
    except stripe.StripeError as error:
        logger.warning("Stripe failed: %s %s", error.http_status, error.user_message)
        raise ApplicationError(
            "Our payment provider failed; nothing was changed. Try again in a minute.",
            code="payment_provider_error",
            status_code=502,
        ) from error


def _stripe_error_text(error: ApplicationError) -> str:
    cause = error.__cause__
    return str(cause)[:500] if cause else error.message


def _id(value) -> str:
    if isinstance(value, dict):
        return value.get("id") or ""
    return value or ""
