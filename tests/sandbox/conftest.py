"""Fixtures for the Stripe sandbox's own tests: a real `python -m stripe_sandbox` process, reset before each test."""

import contextlib
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests
import stripe

PROJECT_ROOT = Path(__file__).resolve().parents[2]
API_KEY = "sk_test_" + "SandboxSuite" * 2
LISTENING = "stripe-sandbox listening on "


@contextlib.contextmanager
def running_sandbox(*args: str, stderr=None):
    """Start `python -m stripe_sandbox --port 0 *args`, wait for its "listening" line, yield (process, url)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_sandbox", "--port", "0", *args],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
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
    with tempfile.TemporaryFile("w+") as stderr, running_sandbox(stderr=stderr) as (_, url):
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


def _fixtures_path() -> Path:
    return Path(os.environ.get("STRIPE_FIXTURES") or PROJECT_ROOT.parent / "shared" / "stripe" / "fixtures3.json")


@pytest.fixture(scope="session")
def stripe_fixtures() -> dict:
    """Stripe's own object fixtures by type (`{"checkout.session": {...}, ...}`)."""
    path = _fixtures_path()
    if not path.is_file():
        pytest.skip(f"Stripe's fixtures are not at {path}; set STRIPE_FIXTURES to the path of fixtures3.json")
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
