"""Project-wide fixtures: the Stripe sandbox as a real process, and a clean cache for every test."""

import json
import os
import select
import subprocess
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import stripe
from django.conf import settings as django_settings
from django.core.cache import cache

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Sandbox:
    """Handle on the running sandbox: its URL, and its control API (not Stripe's) for faults and request logs."""

    url: str

    def _control(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(f"{self.url}/_sandbox/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=5) as response:
            return json.loads(response.read() or b"null")

    def reset(self) -> None:
        self._control("POST", "reset", {})

    def inject_fault(self, **fault) -> None:
        self._control("POST", "faults", fault)

    def requests(self, method: str | None = None, path: str | None = None) -> list[dict]:
        log = self._control("GET", "requests")
        entries = log["data"] if isinstance(log, dict) else log
        return [e for e in entries if (method is None or e["method"] == method) and (path is None or e["path"] == path)]


@pytest.fixture(scope="session")
def stripe_sandbox_process():
    """One sandbox process for the whole run, on a free port, exactly as `make run` starts it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_sandbox", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    ready, _, _ = select.select([process.stdout], [], [], 20)
    line = process.stdout.readline() if ready else ""
    if "listening on" not in line:
        process.kill()
        pytest.fail(f"the Stripe sandbox did not start: {line!r}")
    yield line.rsplit(" ", 1)[-1].strip()
    process.terminate()
    process.wait(timeout=10)


@pytest.fixture
def stripe_sandbox(stripe_sandbox_process, settings, monkeypatch) -> Sandbox:
    """Points the service (and dj-stripe, which uses stripe-python's global api_base) at the sandbox, reset."""
    settings.STRIPE_API_BASE = stripe_sandbox_process
    settings.STRIPE_API_HOST = stripe_sandbox_process
    monkeypatch.setattr(stripe, "api_base", stripe_sandbox_process)
    sandbox = Sandbox(url=stripe_sandbox_process)
    sandbox.reset()
    return sandbox


@pytest.fixture(autouse=True)
def _clean_cache():
    # Throttle counters and Stripe sync marks live in the cache (Redis in CI): no test sees another's.
    cache.clear()
    yield
    cache.clear()


def database_is_postgres() -> bool:
    return django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"


def pytest_report_header(config):
    engine = os.environ.get("DATABASE_URL", "").split(":", 1)[0] or "sqlite (DATABASE_URL unset)"
    redis = "redis" if os.environ.get("REDIS_URL") else "local memory (REDIS_URL unset)"
    return [f"database: {engine}; cache and broker: {redis}"]


@pytest.fixture
def chromium(live_server, monkeypatch):
    """A headless Chromium (Debian's, see tests/browser.py) for one test, with pytest-django's live server running.
    Browser test modules skip themselves with tests.browser.BROWSER_TEST_MARKS where Playwright or Chromium is
    missing, so this fixture is only reached where both exist."""
    from playwright.sync_api import sync_playwright

    from tests.browser import ARTIFACTS, chromium_launch

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes meanwhile are plain
    # synchronous calls, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        yield browser
        browser.close()
