"""Webhook endpoints and deliveries: every event reaches each enabled endpoint that wants it, signed as Stripe
signs, from background threads, retried with growing delays while the endpoint fails (the sandbox under test runs
with `--webhook-retry-base 0.2 --webhook-max-attempts 4`)."""

import json
import socket
import time

import pytest
import stripe

from tests.sandbox.test_sandbox_fulfillment import PAID_EVENTS, complete


def create_endpoint(client: stripe.StripeClient, url: str, events=("*",), **params):
    return client.v1.webhook_endpoints.create(params={"url": url, "enabled_events": list(events), **params})


def wait_idle(sandbox_http, timeout: float = 10) -> dict:
    status = sandbox_http.control("POST", "deliveries/wait", json={"timeout": timeout}).json()
    assert status["idle"], status
    return status


def deliveries(sandbox_http, **filters) -> list[dict]:
    query = "&".join(f"{name}={value}" for name, value in filters.items())
    return sandbox_http.control("GET", f"deliveries?{query}").json()["data"]


# Endpoints


def test_creating_an_endpoint_shows_its_secret_once(stripe_client):
    created = create_endpoint(
        stripe_client,
        "https://shop.test/api/webhooks/stripe/",
        events=["checkout.session.completed", "checkout.session.expired"],
        api_version="2026-05-27.dahlia",
        description="Fulfilment",
        metadata={"djstripe_uuid": "u-1"},
    )

    retrieved = stripe_client.v1.webhook_endpoints.retrieve(created.id)

    assert created.id.startswith("we_")
    assert created.secret.startswith("whsec_") and len(created.secret) > 30
    assert "secret" not in retrieved
    assert (retrieved.url, retrieved.status, retrieved.api_version) == (
        "https://shop.test/api/webhooks/stripe/",
        "enabled",
        "2026-05-27.dahlia",
    )
    assert retrieved.enabled_events == ["checkout.session.completed", "checkout.session.expired"]
    assert retrieved.metadata.to_dict() == {"djstripe_uuid": "u-1"}
    assert [endpoint.id for endpoint in stripe_client.v1.webhook_endpoints.list().data] == [created.id]


def test_an_endpoint_can_be_updated_disabled_and_deleted(stripe_client):
    endpoint = create_endpoint(stripe_client, "https://shop.test/a", metadata={"keep": "1", "drop": "2"})

    updated = stripe_client.v1.webhook_endpoints.update(
        endpoint.id,
        params={
            "url": "https://shop.test/b",
            "enabled_events": ["invoice.paid"],
            "disabled": True,
            "metadata": {"drop": ""},
        },
    )
    deleted = stripe_client.v1.webhook_endpoints.delete(endpoint.id)

    assert (updated.url, updated.enabled_events, updated.status) == (
        "https://shop.test/b",
        ["invoice.paid"],
        "disabled",
    )
    assert updated.metadata.to_dict() == {"keep": "1"}
    assert (deleted.id, deleted.deleted) == (endpoint.id, True)
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.webhook_endpoints.retrieve(endpoint.id)
    assert raised.value.http_status == 404


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"enabled_events": ["*"]}, "url"),
        ({"url": "https://shop.test/hooks"}, "enabled_events"),
        ({"url": "ftp://shop.test/hooks", "enabled_events": ["*"]}, "url"),
        ({"url": "https://shop.test/hooks", "enabled_events": ["Not An Event"]}, "enabled_events[0]"),
        ({"url": "https://shop.test/hooks", "enabled_events": ["*"], "api_version": "latest"}, "api_version"),
        ({"url": "https://shop.test/hooks", "enabled_events": ["*"], "colour": "red"}, "colour"),
    ],
)
def test_an_invalid_endpoint_is_rejected(stripe_client, params, param):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.webhook_endpoints.create(params=params)

    assert raised.value.http_status == 400
    assert raised.value.param == param


# Deliveries


def test_every_event_is_delivered_signed_in_the_order_it_was_created(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    endpoint = create_endpoint(stripe_client, webhook_receiver.url)
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    complete(stripe_client, session.id)

    received = webhook_receiver.wait_for(len(PAID_EVENTS))
    assert [request.json()["type"] for request in received] == PAID_EVENTS
    events = {event.id: event for event in stripe_client.v1.events.list(params={"limit": 100}).data}
    for request in received:
        assert request.path == "/webhooks/stripe"
        assert request.headers["content-type"] == "application/json; charset=utf-8"
        assert request.headers["user-agent"] == "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
        signature = request.headers["stripe-signature"]
        assert stripe.WebhookSignature.verify_header(request.body, signature, endpoint.secret)
        event = stripe.Webhook.construct_event(request.body, signature, endpoint.secret)
        assert event.data.object.to_dict() == events[event.id].data.object.to_dict()
        with pytest.raises(stripe.SignatureVerificationError):
            stripe.WebhookSignature.verify_header(request.body, signature, "whsec_wrong")
    timestamp = int(received[0].headers["stripe-signature"].split(",")[0].removeprefix("t="))
    assert abs(timestamp - time.time()) < 60


def test_first_attempts_keep_event_order_across_many_sessions(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    for _ in range(5):
        session = stripe_client.v1.checkout.sessions.create(params=session_params())
        complete(stripe_client, session.id)

    received = webhook_receiver.wait_for(5 * len(PAID_EVENTS))

    created_order = [event.id for event in stripe_client.v1.events.list(params={"limit": 100}).data][::-1]
    assert [request.json()["id"] for request in received] == created_order


def test_the_api_answers_without_waiting_for_the_webhooks(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    webhook_receiver.delay = 0.5
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    start = time.monotonic()
    complete(stripe_client, session.id)
    answered_in = time.monotonic() - start

    assert answered_in < 0.4
    webhook_receiver.wait_for(2)
    webhook_receiver.delay = 0


def test_a_failing_endpoint_is_retried_with_growing_delays(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    webhook_receiver.statuses = [500, 500]
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    stripe_client.v1.checkout.sessions.expire(session.id)

    received = webhook_receiver.wait_for(3)
    wait_idle(sandbox_http)
    attempts = deliveries(sandbox_http)
    event_id = received[0].json()["id"]
    assert {request.json()["id"] for request in received} == {event_id}
    assert [(a["event"], a["type"], a["attempt"], a["status"], a["succeeded"]) for a in attempts] == [
        (event_id, "checkout.session.expired", 1, 500, False),
        (event_id, "checkout.session.expired", 2, 500, False),
        (event_id, "checkout.session.expired", 3, 200, True),
    ]
    first_wait = attempts[1]["time"] - attempts[0]["time"]
    second_wait = attempts[2]["time"] - attempts[1]["time"]
    assert 0.2 <= first_wait < second_wait
    assert second_wait >= 0.4
    assert attempts[0]["next_attempt_at"] == pytest.approx(attempts[0]["time"] + 0.2)
    assert attempts[2]["next_attempt_at"] is None
    assert all(attempt["duration_ms"] >= 0 and attempt["error"] is None for attempt in attempts)
    assert stripe_client.v1.events.retrieve(event_id).pending_webhooks == 0


def test_an_endpoint_that_keeps_failing_is_given_up_after_the_last_attempt(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    webhook_receiver.statuses = [503] * 10
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    stripe_client.v1.checkout.sessions.expire(session.id)

    status = wait_idle(sandbox_http)
    assert [attempt["status"] for attempt in deliveries(sandbox_http)] == [503] * 4
    assert len(webhook_receiver.received) == 4
    assert status["pending"] == 0
    [event] = stripe_client.v1.events.list().data
    assert event.pending_webhooks == 1  # never delivered


def test_an_unreachable_endpoint_has_its_connection_errors_recorded(stripe_client, sandbox_http, session_params):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # free once closed: nothing listens there
    create_endpoint(stripe_client, f"http://127.0.0.1:{port}/hooks")
    session = stripe_client.v1.checkout.sessions.create(params=session_params())

    stripe_client.v1.checkout.sessions.expire(session.id)

    wait_idle(sandbox_http)
    attempts = deliveries(sandbox_http)
    assert [attempt["attempt"] for attempt in attempts] == [1, 2, 3, 4]
    assert all(attempt["status"] is None and "ConnectionRefused" in attempt["error"] for attempt in attempts)


def test_disabled_endpoints_and_unwanted_types_get_nothing(stripe_client, sandbox_http, session_params):
    from tests.sandbox.conftest import webhook_receiver_running

    with (
        webhook_receiver_running() as everything,
        webhook_receiver_running() as completed_only,
        webhook_receiver_running() as disabled,
    ):
        create_endpoint(stripe_client, everything.url)
        create_endpoint(stripe_client, completed_only.url, events=["checkout.session.completed"])
        off = create_endpoint(stripe_client, disabled.url)
        stripe_client.v1.webhook_endpoints.update(off.id, params={"disabled": True})
        session = stripe_client.v1.checkout.sessions.create(params=session_params())

        complete(stripe_client, session.id)

        everything.wait_for(len(PAID_EVENTS))
        wait_idle(sandbox_http)
        assert completed_only.types() == ["checkout.session.completed"]
        assert disabled.received == []
    assert {attempt["endpoint"] for attempt in deliveries(sandbox_http)} == {
        endpoint.id for endpoint in stripe_client.v1.webhook_endpoints.list().data if endpoint.id != off.id
    }


def test_pending_webhooks_counts_the_endpoints_still_to_be_reached(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    create_endpoint(stripe_client, webhook_receiver.url, events=["checkout.session.expired"])
    create_endpoint(stripe_client, webhook_receiver.url, events=["invoice.paid"])
    sandbox_http.control("POST", "deliveries/pause")
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)
    [event] = stripe_client.v1.events.list().data
    assert event.pending_webhooks == 2

    sandbox_http.control("POST", "deliveries/resume")

    wait_idle(sandbox_http)
    assert stripe_client.v1.events.retrieve(event.id).pending_webhooks == 0
    assert json.loads(webhook_receiver.received[0].body)["pending_webhooks"] == 2


def test_paused_deliveries_wait_until_resumed(stripe_client, sandbox_http, session_params, webhook_receiver):
    create_endpoint(stripe_client, webhook_receiver.url)
    paused = sandbox_http.control("POST", "deliveries/pause").json()
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)
    # The event is queued when the API call returns: the queue's own account says it is held, not on the wire and
    # never tried (no fixed wait for something not to happen).
    held = sandbox_http.control("GET", "deliveries").json()
    received_while_paused = list(webhook_receiver.received)
    before_resume = time.time()

    resumed = sandbox_http.control("POST", "deliveries/resume").json()

    assert paused == {"paused": True, "pending": 0, "in_flight": 0}
    assert held == {"data": [], "paused": True, "pending": 1, "in_flight": 0}
    assert received_while_paused == []
    assert resumed["paused"] is False
    [delivered] = webhook_receiver.wait_for(1)
    assert delivered.json()["type"] == "checkout.session.expired"
    assert delivered.time >= before_resume


def test_a_waiting_call_times_out_while_paused(stripe_client, sandbox_http, session_params, webhook_receiver):
    create_endpoint(stripe_client, webhook_receiver.url)
    sandbox_http.control("POST", "deliveries/pause")
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)

    status = sandbox_http.control("POST", "deliveries/wait", json={"timeout": 0.3}).json()

    assert status == {"idle": False, "paused": True, "pending": 1, "in_flight": 0}


def test_an_event_can_be_delivered_again(stripe_client, sandbox_http, session_params, webhook_receiver):
    endpoint = create_endpoint(stripe_client, webhook_receiver.url)
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)
    [first] = webhook_receiver.wait_for(1)
    event_id = first.json()["id"]

    response = sandbox_http.control("POST", "webhooks/redeliver", json={"event": event_id})

    assert response.json() == {"event": event_id, "endpoints": [endpoint.id]}
    second = webhook_receiver.wait_for(2)[1]
    assert second.json()["id"] == event_id
    # The attempt is logged once the receiver's answer is read, a moment after the receiver saw the request.
    deadline = time.monotonic() + 5
    while len(deliveries(sandbox_http, event=event_id)) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert [attempt["event"] for attempt in deliveries(sandbox_http, event=event_id)] == [event_id, event_id]


def test_redelivering_an_unknown_event_is_404(sandbox_http):
    response = sandbox_http.control("POST", "webhooks/redeliver", json={"event": "evt_unknown"})

    assert response.status_code == 404


def test_a_deleted_endpoint_gets_nothing_more(stripe_client, sandbox_http, session_params, webhook_receiver):
    endpoint = create_endpoint(stripe_client, webhook_receiver.url)
    sandbox_http.control("POST", "deliveries/pause")
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)
    stripe_client.v1.webhook_endpoints.delete(endpoint.id)

    sandbox_http.control("POST", "deliveries/resume")

    wait_idle(sandbox_http)
    assert webhook_receiver.received == []


def test_reset_forgets_events_endpoints_and_pending_deliveries(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    sandbox_http.control("POST", "deliveries/pause")
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    complete(stripe_client, session.id)

    sandbox_http.control("POST", "reset")

    status = sandbox_http.control("GET", "deliveries").json()
    assert (status["data"], status["paused"], status["pending"]) == ([], False, 0)
    assert stripe_client.v1.webhook_endpoints.list().data == []
    assert stripe_client.v1.events.list().data == []
    # Idle: nothing queued, nothing on the wire; what was forgotten can no longer arrive.
    assert wait_idle(sandbox_http)["in_flight"] == 0
    assert webhook_receiver.received == []


def test_waiting_for_idle_after_a_reset_waits_for_the_request_already_on_the_wire(
    stripe_client, sandbox_http, session_params, webhook_receiver
):
    create_endpoint(stripe_client, webhook_receiver.url)
    webhook_receiver.delay = 1.0  # the receiver holds its answer: the first delivery stays on the wire
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)
    webhook_receiver.wait_for(1)

    sandbox_http.control("POST", "reset")
    on_the_wire = sandbox_http.control("GET", "deliveries").json()
    waited = wait_idle(sandbox_http)

    assert (on_the_wire["pending"], on_the_wire["in_flight"]) == (0, 1)
    assert (waited["pending"], waited["in_flight"]) == (0, 0)
    assert deliveries(sandbox_http) == []  # its answer, after the reset, is not logged


# Listing events


def test_events_list_newest_first_with_type_filters_and_paging(stripe_client, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    complete(stripe_client, session.id)

    newest_first = stripe_client.v1.events.list(params={"limit": 100}).data
    invoices = stripe_client.v1.events.list(params={"type": "invoice.*"}).data
    two_types = stripe_client.v1.events.list(params={"types": ["invoice.paid", "customer.created"]}).data
    first_page = stripe_client.v1.events.list(params={"limit": 5})
    second_page = stripe_client.v1.events.list(params={"limit": 5, "starting_after": first_page.data[-1].id})
    before = stripe_client.v1.events.list(params={"limit": 2, "ending_before": second_page.data[0].id})

    assert [event.type for event in newest_first] == PAID_EVENTS[::-1]
    assert [event.type for event in invoices] == [
        "invoice.payment_succeeded",
        "invoice.paid",
        "invoice.finalized",
        "invoice.created",
    ]
    assert [event.type for event in two_types] == ["invoice.paid", "customer.created"]
    assert first_page.has_more and second_page.has_more
    assert [event.id for event in first_page.data + second_page.data] == [event.id for event in newest_first[:10]]
    assert [event.id for event in before.data] == [event.id for event in newest_first[3:5]]
    assert [event.id for event in stripe_client.v1.events.list().auto_paging_iter()] == [
        event.id for event in newest_first
    ]


def test_events_can_be_filtered_by_creation_time(stripe_client, sandbox_http, session_params):
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)
    later = sandbox_http.control("POST", "clock/advance", json={"seconds": 600}).json()["now"]
    session = stripe_client.v1.checkout.sessions.create(params=session_params())
    stripe_client.v1.checkout.sessions.expire(session.id)

    recent = stripe_client.v1.events.list(params={"created": {"gte": later}}).data

    assert [event.data.object.id for event in recent] == [session.id]


def test_events_list_rejects_type_with_types(stripe_client):
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client.v1.events.list(params={"type": "invoice.paid", "types": ["invoice.paid"]})


def test_an_unknown_event_is_404(stripe_client):
    with pytest.raises(stripe.InvalidRequestError) as raised:
        stripe_client.v1.events.retrieve("evt_unknown")

    assert raised.value.http_status == 404


def test_with_webhook_concurrency_first_attempts_overlap_up_to_the_limit_and_each_arrives_once(
    start_sandbox, session_params, webhook_receiver
):
    with start_sandbox("--webhook-concurrency", "4") as (_, url):
        client = stripe.StripeClient("sk_test_" + "C" * 24, base_addresses={"api": url}, max_network_retries=0)
        create_endpoint(client, webhook_receiver.url)
        webhook_receiver.delay = 0.3
        for _ in range(2):
            session = client.v1.checkout.sessions.create(params=session_params())
            complete(client, session.id)

        received = webhook_receiver.wait_for(2 * len(PAID_EVENTS), timeout=30)

    ids = [request.json()["id"] for request in received]
    assert len(ids) == len(set(ids)) == 2 * len(PAID_EVENTS)
    # Arrival times: with 0.3 s per answer, one at a time would need 0.3 s between arrivals; four at once, less.
    times = sorted(request.time for request in received)
    in_flight = max(sum(1 for t in times if start <= t < start + 0.3) for start in times)
    assert 2 <= in_flight <= 4
    assert times[-1] - times[0] < 0.3 * len(ids) / 2


def test_the_webhook_concurrency_flag_refuses_zero(start_sandbox):
    with pytest.raises(RuntimeError), start_sandbox("--webhook-concurrency", "0"):
        pass
