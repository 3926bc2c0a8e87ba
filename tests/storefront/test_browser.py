"""The customer's way back from Stripe in a real browser (headless Chromium through Playwright) against pytest-django's
live server and the Stripe sandbox: pay on the sandbox's hosted page and land on our success page, which follows the
order to "ready" by itself, with JavaScript on (a script swaps the new state in) and off (the page refreshes);
cancel and land on our cancel page. Each of our pages is photographed at 1440 and 390 px
(artifacts/storefront-*.png) and checked with axe-core: no serious or critical violations.
"""

import pytest

from tests.browser import BROWSER_TEST_MARKS, CheckedPages

READY = "Your hosting is ready"

pytestmark = BROWSER_TEST_MARKS


@pytest.fixture
def checkout(live_server, stripe_sandbox, settings):
    """Starts a checkout as the marketing site does, with Stripe sending the customer back to this server."""
    from django.core.management import call_command
    from rest_framework.test import APIClient

    call_command("catalog_load", verbosity=0)
    settings.CHECKOUT_SUCCESS_URL = f"{live_server.url}/checkout/success/?session_id={{CHECKOUT_SESSION_ID}}"
    settings.CHECKOUT_CANCEL_URL = f"{live_server.url}/checkout/cancel/"
    settings.PROVISIONING_BACKEND = "simulated"

    def start(email: str, **extra) -> str:
        response = APIClient().post(
            "/api/checkout/create-session",
            {
                "planId": "starter",
                "billingCycle": "yearly",
                "trialActive": False,
                "customer": {"name": "Browser Customer", "email": email},
                "domain": {"mode": "new", "value": "my-new-site.example"},
                **extra,
            },
            format="json",
        )
        assert response.status_code == 200, response.content
        return response.json()["url"]

    return start


def _settle_bank_debit(page) -> None:
    """The bank says yes, some time after the customer paid by debit (Stripe's test helper)."""
    from urllib.parse import parse_qs, urlsplit

    from core.stripe_api import stripe_client

    session_id = parse_qs(urlsplit(page.url).query)["session_id"][0]
    stripe_client().raw_request(
        "post", f"/v1/test_helpers/checkout/sessions/{session_id}/async_payment", result="succeeded"
    )


@pytest.mark.parametrize("width", [1440, 390])
def test_a_delayed_payment_is_followed_live_until_the_account_is_ready(chromium, checkout, width):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    page.set_default_timeout(20_000)
    pages = CheckedPages(page, width, prefix="storefront")

    page.goto(checkout(f"live{width}@example.com"))
    page.click("button:text-is('Pay by bank debit (delayed)')")
    page.wait_for_selector("h1:text-is('We are confirming your payment')")
    summary = page.inner_text("#summary-title + dl")
    assert "Hosting Starter" in summary and "Yearly" in summary and "my-new-site.example" in summary
    pages.look("success-pending")

    page.evaluate("window.stillTheSamePage = true")
    _settle_bank_debit(page)
    page.wait_for_selector(f"h1:text-is('{READY}')", timeout=40_000)

    assert page.evaluate("window.stillTheSamePage") is True  # swapped in by the script, not reloaded
    assert page.inner_text("#order-live") == READY  # and announced to screen readers
    assert page.locator(".steps li.is-done").count() == 3
    assert page.get_attribute("a:text-is('Go to your client area')", "href") == "/account/"
    pages.look("success-ready")
    pages.assert_accessible()


def test_a_card_payment_lands_on_a_success_page_that_is_ready(chromium, checkout):
    from checkout.models import CheckoutSession

    page = chromium.new_page(viewport={"width": 1440, "height": 900})
    page.set_default_timeout(20_000)

    page.goto(checkout("card@example.com", couponCode="WELCOME10"))
    page.click("button.pay")
    # No webhook reaches this server: the page re-reads the session from Stripe, which fulfils the order.
    page.wait_for_selector(f"h1:text-is('{READY}')", timeout=40_000)

    session = CheckoutSession.objects.get(email="card@example.com")
    assert session.amount_discount > 0
    charged = f"${(session.amount - session.amount_discount) / 100:,.2f} USD"
    assert charged in page.inner_text("#summary-title + dl")


def test_without_javascript_the_page_refreshes_until_the_account_is_ready(chromium, checkout):
    context = chromium.new_context(java_script_enabled=False, viewport={"width": 390, "height": 900})
    page = context.new_page()
    page.set_default_timeout(20_000)

    page.goto(checkout("nojs@example.com"))
    page.click("button:text-is('Pay by bank debit (delayed)')")
    page.wait_for_selector("h1:text-is('We are confirming your payment')")
    _settle_bank_debit(page)

    page.wait_for_selector(f"h1:text-is('{READY}')", timeout=40_000)  # the meta refresh, every 10 s
    context.close()


@pytest.mark.parametrize("width", [1440, 390])
def test_cancelling_on_stripe_lands_on_our_page_which_offers_to_start_again(chromium, checkout, settings, width):
    page = chromium.new_page(viewport={"width": width, "height": 900})
    pages = CheckedPages(page, width, prefix="storefront")

    page.goto(checkout(f"cancel{width}@example.com"))
    page.click("button.cancel")
    page.wait_for_selector("h1:text-is('Your order was not placed')")

    assert page.get_attribute("a:text-is('Choose a plan')", "href") == settings.STOREFRONT_URL
    pages.look("cancel")
    pages.assert_accessible()
