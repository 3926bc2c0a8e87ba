"""The hosted checkout page at a session's url, and its Pay and Cancel buttons."""

import requests


def test_the_page_shows_product_cycle_discount_total_and_email(stripe_client, session_params):
    coupon = stripe_client.v1.coupons.create(params={"percent_off": 20, "name": "Launch offer"})
    session = stripe_client.v1.checkout.sessions.create(params=session_params(discounts=[{"coupon": coupon.id}]))

    page = requests.get(session.url, timeout=10)

    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    for text in ("Shared hosting", "$7.99 per month", "Launch offer", "−$1.60", "$6.39", "ada@example.com"):
        assert text in page.text, text
    assert f'action="{session.id}/pay"' in page.text
    assert f'action="{session.id}/cancel"' in page.text


def test_during_a_trial_nothing_is_due_today(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(
        params=session_params(subscription_data={"trial_period_days": 14})
    )

    page = requests.get(session.url, timeout=10).text

    assert "14 days" in page
    assert 'Total due today</td><td class="amount">$0.00' in page
    assert session.amount_total == 799


def test_values_are_escaped(stripe_client, session_params):
    params = session_params()
    params["line_items"][0]["price_data"]["product_data"]["name"] = "<script>alert(1)</script>"
    session = stripe_client.v1.checkout.sessions.create(params=params)

    page = requests.get(session.url, timeout=10).text

    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;" in page


def test_cancel_redirects_303_to_the_cancel_url(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    response = requests.post(f"{session.url}/cancel", allow_redirects=False, timeout=10)

    assert response.status_code == 303
    assert response.headers["Location"] == "https://shop.test/cancel"


def test_pay_completes_the_session_and_redirects_303_to_the_success_url(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    response = requests.post(f"{session.url}/pay", data={"payment": "card"}, allow_redirects=False, timeout=10)

    assert response.status_code == 303
    assert response.headers["Location"] == f"https://shop.test/success?session_id={session.id}"
    paid = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "paid")
    assert stripe_client.v1.subscriptions.retrieve(paid.subscription).status == "active"
    completed = stripe_client.v1.events.list(params={"type": "checkout.session.completed"}).data[0]
    assert completed["request"]["id"] is None  # paid in a browser, not through the API


def test_the_page_offers_card_and_bank_debit(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    page = requests.get(session.url, timeout=10).text

    assert 'name="payment" value="card"' in page
    assert 'name="payment" value="bank_debit"' in page


def test_pay_by_bank_debit_completes_the_session_unpaid(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    response = requests.post(f"{session.url}/pay", data={"payment": "bank_debit"}, allow_redirects=False, timeout=10)

    assert response.status_code == 303
    paid = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert (paid.status, paid.payment_status) == ("complete", "unpaid")


def test_without_a_known_email_the_page_asks_for_one(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params(customer_email=None))
    url = session.url

    page = requests.get(url, timeout=10).text
    without = requests.post(f"{url}/pay", allow_redirects=False, timeout=10)
    invalid = requests.post(f"{url}/pay", data={"email": "not-an-email"}, allow_redirects=False, timeout=10)
    valid = requests.post(f"{url}/pay", data={"email": "grace@example.com"}, allow_redirects=False, timeout=10)

    assert '<input type="email" name="email" required' in page
    assert (without.status_code, invalid.status_code, valid.status_code) == (400, 400, 303)
    paid = stripe_client.v1.checkout.sessions.retrieve(session.id)
    assert paid.customer_details.email == "grace@example.com"


def test_a_paid_session_cannot_be_paid_again(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    url = session.url
    requests.post(f"{url}/pay", allow_redirects=False, timeout=10)

    page = requests.get(url, timeout=10)
    again = requests.post(f"{url}/pay", allow_redirects=False, timeout=10)

    assert page.status_code == 200
    assert "Already paid" in page.text
    assert again.status_code == 400
    assert len(stripe_client.v1.events.list(params={"type": "checkout.session.completed"}).data) == 1


def test_an_expired_session_cannot_be_paid(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    url = session.url
    stripe_client.v1.checkout.sessions.expire(session.id)

    response = requests.post(f"{url}/pay", allow_redirects=False, timeout=10)

    assert response.status_code == 410
    assert stripe_client.v1.checkout.sessions.retrieve(session.id).status == "expired"


def test_an_unknown_session_page_is_404(sandbox_url):
    response = requests.get(f"{sandbox_url}/c/pay/cs_test_unknown", timeout=10)

    assert response.status_code == 404
    assert "not found" in response.text


def test_an_expired_session_page_is_410(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    url = session.url
    stripe_client.v1.checkout.sessions.expire(session.id)

    response = requests.get(url, timeout=10)

    assert response.status_code == 410
    assert "expired" in response.text
