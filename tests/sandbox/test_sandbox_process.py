"""Running the sandbox: the command line, clean shutdown on signals, the in-process server."""

import re
import signal
import subprocess
import sys

import pytest
import requests
import stripe

from stripe_sandbox.server import SandboxServer
from tests.sandbox.conftest import PROJECT_ROOT


def test_the_command_prints_one_listening_line_with_the_picked_port(start_sandbox):
    with start_sandbox() as (_, url):
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        assert int(url.rsplit(":", 1)[1]) != 0
        assert requests.get(f"{url}/_sandbox/health", timeout=10).json() == {"status": "ok"}


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_stops_the_process_cleanly(start_sandbox, signum):
    with start_sandbox() as (process, _):
        process.send_signal(signum)

        assert process.wait(timeout=10) == 0


def test_public_url_sets_the_base_of_session_urls(start_sandbox, api_key, session_params):
    with start_sandbox("--public-url", "https://pay.example.test/") as (_, url):
        client = stripe.StripeClient(api_key, base_addresses={"api": url}, max_network_retries=0)

        session = client.v1.checkout.sessions.create(params=session_params())

    assert session.url == f"https://pay.example.test/c/pay/{session.id}"


def test_the_in_process_server_serves_until_shut_down(api_key):
    server = SandboxServer(host="127.0.0.1", port=0)
    server.start_in_thread()
    client = stripe.StripeClient(api_key, base_addresses={"api": server.url}, max_network_retries=0)

    account = client.v1.accounts.retrieve_current()
    server.shutdown()

    assert account.id.startswith("acct_")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{server.url}/_sandbox/health", timeout=2)


def _count_attempts_to_a_failing_endpoint(url: str, api_key: str, session_params, receiver) -> list[dict]:
    client = stripe.StripeClient(api_key, base_addresses={"api": url}, max_network_retries=0)
    client.v1.webhook_endpoints.create(params={"url": receiver.url, "enabled_events": ["*"]})
    receiver.statuses = [500] * 10
    session = client.v1.checkout.sessions.create(params=session_params())
    client.v1.checkout.sessions.expire(session.id)
    assert requests.post(f"{url}/_sandbox/deliveries/wait", json={"timeout": 10}, timeout=15).json()["idle"]
    return requests.get(f"{url}/_sandbox/deliveries", timeout=10).json()["data"]


def test_the_retry_schedule_comes_from_the_flags(start_sandbox, api_key, session_params, webhook_receiver):
    with start_sandbox("--webhook-retry-base", "0.05", "--webhook-max-attempts", "2") as (_, url):
        attempts = _count_attempts_to_a_failing_endpoint(url, api_key, session_params, webhook_receiver)

    assert [attempt["attempt"] for attempt in attempts] == [1, 2]
    assert attempts[0]["next_attempt_at"] == pytest.approx(attempts[0]["time"] + 0.05)


def test_the_retry_schedule_can_come_from_the_environment(start_sandbox, api_key, session_params, webhook_receiver):
    env = {"STRIPE_SANDBOX_WEBHOOK_RETRY_BASE": "0.05", "STRIPE_SANDBOX_WEBHOOK_MAX_ATTEMPTS": "3"}
    with start_sandbox(env=env) as (_, url):
        attempts = _count_attempts_to_a_failing_endpoint(url, api_key, session_params, webhook_receiver)

    assert [attempt["attempt"] for attempt in attempts] == [1, 2, 3]


@pytest.mark.parametrize(
    "args", [("--webhook-max-attempts", "0"), ("--webhook-retry-base", "-1"), ("--webhook-workers", "many")]
)
def test_invalid_webhook_flags_are_refused(args):
    result = subprocess.run(
        [sys.executable, "-m", "stripe_sandbox", "--port", "0", *args],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert result.returncode == 2
    assert args[0] in result.stderr


def test_the_default_retry_schedule_spans_about_three_days():
    from stripe_sandbox.webhooks import DeliveryConfig

    config = DeliveryConfig()

    waits = [config.delay_after(attempt) for attempt in range(1, config.max_attempts)]
    assert waits[0] == 60
    assert 2.5 * 86400 < sum(waits) < 3 * 86400
