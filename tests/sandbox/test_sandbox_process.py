"""Running the sandbox: the command line, clean shutdown on signals, the in-process server."""

import re
import signal

import pytest
import requests
import stripe

from stripe_sandbox.server import SandboxServer


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
