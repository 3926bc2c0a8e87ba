"""The client area in a real browser (headless Chromium through Playwright) against pytest-django's live server and
the Stripe sandbox: a customer buys, sets a password from the e-mail's link, signs in, sees the service, opens the
billing portal and changes the card, cancels at period end and undoes it, and upgrades after seeing the preview.
Each page is photographed at 1440 and 390 px (artifacts/client-*.png) and checked with axe-core: no serious or
critical violations."""

import re

import pytest
from django.core import mail

from tests.browser import BROWSER_TEST_MARKS, CheckedPages
from tests.client_area.conftest import tasks_in_process, world  # noqa: F401  (fixtures, used by name)

PASSWORD = "a quiet orange lamp"

pytestmark = BROWSER_TEST_MARKS


def _message(page) -> str:
    page.wait_for_selector(".messages")
    return page.inner_text(".messages")


@pytest.mark.parametrize("width", [1440, 390])
def test_a_customer_manages_their_service_in_the_client_area(chromium, live_server, world, settings, width):
    from accounts.models import Subscription
    from catalog.models import Price

    settings.SITE_URL = live_server.url  # the e-mail's link points at this server
    subscription = world.buy("browser.customer@example.com", plan="starter", cycle="monthly")
    link = next(
        re.search(r"http://\S+/account/set-password/\S+/", message.body).group(0)
        for message in mail.outbox
        if "/account/set-password/" in message.body
    )
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    pages = CheckedPages(page, width, prefix="client")

    # The e-mail's link: choose a password, then sign in.
    page.goto(link)
    page.wait_for_selector("#id_new_password1")
    pages.look("set-password")
    page.fill("#id_new_password1", PASSWORD)
    page.fill("#id_new_password2", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("text=Your password is saved")
    pages.look("password-set")
    page.click("a:text-is('Sign in')")
    page.wait_for_selector("#id_username")
    pages.look("sign-in")
    page.fill("#id_username", "browser.customer@example.com")
    page.fill("#id_password", PASSWORD)
    page.click("button:text-is('Sign in')")

    # The services, then the service.
    page.wait_for_selector(f"#service-{subscription.pk}")
    card = page.inner_text(f"#service-{subscription.pk}")
    assert "Starter" in card and "Monthly" in card and "Active" in card
    assert subscription.hosting_account.username in card
    pages.look("services")
    page.click(f"#service-{subscription.pk} h3 a")
    page.wait_for_selector("#service-summary")
    assert page.locator("#invoices tbody tr").count() == 1
    pages.look("service")

    # The billing portal (the sandbox's page) changes the card, and sends the customer back.
    page.click("#manage-payment-method")
    page.wait_for_load_state()
    page.wait_for_selector("text=Payment method")
    pages.look("billing-portal", ours=False)
    card_before = _default_card(world, subscription)
    page.check("input[name=payment_method][value=pm_card_visa]")
    page.click("button:text-is('Update card')")
    page.wait_for_selector("text=Your card was updated.")
    pages.look("billing-portal-card-updated", ours=False)
    page.click("a:text-is('← Return')")
    page.wait_for_url(re.compile(rf".*/account/services/{subscription.pk}/$"))
    world.process()
    assert _default_card(world, subscription) not in (None, card_before)

    # Cancel at period end, after a confirmation; then undo.
    page.click("#cancel-service")
    page.wait_for_selector("#confirm-cancel")
    pages.look("cancel-confirm")
    page.click("#confirm-cancel")
    assert "Your service is cancelled" in _message(page)
    assert "Cancels on" in page.inner_text("#service-status")
    pages.look("service-cancelled")
    world.process()
    page.click("#undo-cancel")
    assert "no longer cancelled" in _message(page)
    assert page.inner_text("#service-status") == "Active"
    world.process()

    # Upgrade to Premium, monthly: the options, the preview with what is charged now, the change.
    premium = Price.objects.get(product__code="premium", billing_cycle="monthly", active=True)
    page.click("#change-plan")
    page.wait_for_selector(f"#option-{premium.pk}")
    pages.look("plan-options")
    page.click(f"#option-{premium.pk}")
    page.wait_for_selector("#plan-change-preview")
    charged = page.inner_text("#amount-due-now")
    assert re.fullmatch(r"\$\d+\.\d\d", charged) and charged != "$0.00"
    assert page.inner_text("#next-renewal")
    pages.look("plan-preview")
    page.click("#confirm-plan-change")
    assert "Your plan is now Hosting Premium, monthly." in _message(page)
    world.process()  # Stripe's events for the upgrade's invoice arrive
    page.reload()
    assert page.locator("#invoices tbody tr").count() == 2
    assert "$8.99 per month" in page.inner_text("#service-summary")
    pages.look("service-upgraded")
    assert Subscription.objects.get(pk=subscription.pk).product.code == "premium"

    # Sign out.
    page.click("button:text-is('Sign out')")
    page.wait_for_selector("#id_username")
    assert "You are signed out." in _message(page)

    pages.assert_accessible()


def _default_card(world, subscription) -> str | None:
    customer = world.api("get", f"/v1/customers/{subscription.stripe_customer_id}")
    return (customer.get("invoice_settings") or {}).get("default_payment_method")
