"""Fixtures for the Stripe sandbox's own tests: a real `python -m stripe_sandbox` process, reset before each test,
and a real HTTP server to receive its webhooks."""

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests
import stripe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_" + "SandboxSuite" * 2
LISTENING = "stripe-sandbox listening on "
# Webhook retries after 0.2 s, then 0.4 s, 0.8 s: a retry test takes a second, not Stripe's three days.
FAST_RETRIES = ("--webhook-retry-base", "0.2", "--webhook-max-attempts", "4")


@contextlib.contextmanager
def running_sandbox(*args: str, stderr=None, env: dict | None = None):
    """Start `python -m stripe_sandbox --port 0 *args`, wait for its "listening" line, yield (process, url);
    `env` adds environment variables."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_sandbox", "--port", "0", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
        env={**os.environ, **env} if env else None,
    )
    try:
        ready, _, _ = select.select([process.stdout], [], [], 15)
        line = process.stdout.readline() if ready else ""
        if not line.startswith(LISTENING):
            raise RuntimeError(f"the sandbox did not start (first line: {line!r})")
        yield process, line.strip().removeprefix(LISTENING)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def sandbox_process():
    """One sandbox process for the whole run; yields (url, file its stderr goes to)."""
    with tempfile.TemporaryFile("w+") as stderr, running_sandbox(*FAST_RETRIES, stderr=stderr) as (_, url):
        yield url, stderr


@pytest.fixture
def start_sandbox():
    """Starts another sandbox process: `with start_sandbox("--public-url", "https://x") as (process, url): ...`."""
    return running_sandbox


@pytest.fixture
def sandbox_url(sandbox_process):
    """The sandbox's URL, with its state forgotten first; a test that makes it print a traceback fails."""
    url, stderr = sandbox_process
    requests.post(f"{url}/_sandbox/reset", timeout=5).raise_for_status()
    start = os.fstat(stderr.fileno()).st_size
    yield url
    stderr.seek(start)
    errors = stderr.read()
    if errors:
        pytest.fail(f"the sandbox wrote to stderr during this test:\n{errors}")


@pytest.fixture
def api_key() -> str:
    return API_KEY


@pytest.fixture
def stripe_client(sandbox_url) -> stripe.StripeClient:
    # No retries: a test must see exactly what the sandbox answered.
    return stripe.StripeClient(API_KEY, base_addresses={"api": sandbox_url}, max_network_retries=0)


class SandboxHttp:
    """Raw HTTP to the sandbox, for what stripe-python hides or would never send."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()

    def api(self, method: str, path: str, *, key: str | None = API_KEY, headers=None, **kwargs) -> requests.Response:
        headers = dict(headers or {})
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return self.session.request(method, self.url + path, headers=headers, timeout=10, **kwargs)

    def control(self, method: str, path: str, json=None) -> requests.Response:
        return self.session.request(method, f"{self.url}/_sandbox/{path}", json=json, timeout=10)

    def logged_requests(self) -> list[dict]:
        response = self.control("GET", "requests")
        response.raise_for_status()
        return response.json()["data"]


@pytest.fixture
def sandbox_http(sandbox_url):
    client = SandboxHttp(sandbox_url)
    yield client
    client.session.close()


# Stripe's example of every API object, from its OpenAPI repository (MIT; stripe-mock serves the same file), at the
# commit ../shared/stripe/README.md names: a newer one may show fields our API version does not have, or lack some.
FIXTURES_COMMIT = "f0758b15a2cf53779d699452f4ab07d11076af0f"
FIXTURES_SOURCE = f"https://raw.githubusercontent.com/stripe/openapi/{FIXTURES_COMMIT}/openapi/fixtures3.json"


def _fixtures_path() -> Path:
    return Path(os.environ.get("STRIPE_FIXTURES") or PROJECT_ROOT.parent / "shared" / "stripe" / "fixtures3.json")


@pytest.fixture(scope="session")
def stripe_fixtures() -> dict:
    """Stripe's own object fixtures by type (`{"checkout.session": {...}, ...}`)."""
    path = _fixtures_path()
    if not path.is_file():
        pytest.skip(
            f"Stripe's object fixtures are not at {path}. They are fixtures3.json from github.com/stripe/openapi "
            f"(openapi/fixtures3.json, MIT): `mkdir -p {path.parent} && curl -fsSL {FIXTURES_SOURCE} -o {path}`, or "
            "point STRIPE_FIXTURES at a copy"
        )
    return json.loads(path.read_text())["resources"]


def _session_params(**overrides) -> dict:
    params = {
        "mode": "subscription",
        "success_url": "https://shop.test/success?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": "https://shop.test/cancel",
        "customer_email": "ada@example.com",
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": 799,
                    "recurring": {"interval": "month", "interval_count": 1},
                    "product_data": {"name": "Shared hosting", "description": "Basic plan"},
                },
            }
        ],
    }
    params.update(overrides)
    return params


@pytest.fixture
def session_params():
    """Builds parameters for a valid subscription Checkout Session at $7.99 a month; keyword arguments replace
    top-level keys."""
    return _session_params


@dataclass
class ReceivedWebhook:
    path: str
    headers: dict[str, str]
    body: bytes
    time: float

    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class WebhookReceiver:
    """A local HTTP server standing in for the service's webhook URL; `statuses` scripts its answers (then 200)."""

    url: str
    received: list[ReceivedWebhook] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    condition: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[ReceivedWebhook]:
        """The first `count` requests received; fails the test if they do not come within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.condition:
            while len(self.received) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    pytest.fail(f"expected {count} webhook requests, got {len(self.received)} in {timeout} s")
                self.condition.wait(remaining)
            return list(self.received[:count])

    def types(self) -> list[str]:
        with self.condition:
            return [request.json()["type"] for request in self.received]


@contextlib.contextmanager
def webhook_receiver_running():
    receiver = WebhookReceiver(url="")

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with receiver.condition:
                receiver.received.append(
                    ReceivedWebhook(self.path, {k.lower(): v for k, v in self.headers.items()}, body, time.time())
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                receiver.condition.notify_all()
            if receiver.delay:
                time.sleep(receiver.delay)
            answer = b'{"received": true}'
            head = f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(answer)}\r\n\r\n"
            self.wfile.write(head.encode() + answer)

        def log_message(self, format, *args):
            pass

    class Server(ThreadingHTTPServer):
        daemon_threads = True
        connections: list = []

        def get_request(self):
            sock, address = super().get_request()
            self.connections.append(sock)
            return sock, address

    server = Server(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/stripe"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        # Kept-alive connections too: a stopped receiver must refuse, not answer from a lingering thread.
        for sock in server.connections:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        thread.join()


@pytest.fixture
def webhook_receiver():
    with webhook_receiver_running() as receiver:
        yield receiver
