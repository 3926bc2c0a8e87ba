"""What the browser tests share: Debian's Chromium driven by Playwright (never a downloaded browser), the marks that
skip them with the reason where either is missing, how Chromium is launched (the `chromium` fixture in
tests/conftest.py), and the screenshots-plus-axe-core check of each page."""

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
AXE = ROOT / ".venv" / "node" / "node_modules" / "axe-core" / "axe.min.js"  # `make test` installs it
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def chromium_launch(playwright):
    return playwright.chromium.launch(
        executable_path=CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium"), args=LAUNCH_ARGS
    )


# The password tests/backoffice/conftest.py gives every member of staff.
STAFF_PASSWORD = "correct horse battery"


def admin_log_in(page, live_server, email: str) -> None:
    """Log in to the back office through its login form, as a person does."""
    page.goto(f"{live_server.url}/admin/login/")
    page.fill("#id_username", email)
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.wait_for_selector("#user-tools")


@contextmanager
def chromium_running():
    """Playwright and a Chromium for the length of the block (the `chromium` fixture's body)."""
    from django.db import connections

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = chromium_launch(playwright)
        yield browser
        browser.close()
        # While Playwright's loop runs, Django keys its connections by that context (asgiref's Local), so the test's
        # own ORM calls opened a connection of their own: closed here, or it outlives the test, idle, and the test
        # database cannot be dropped at the end of the run ("being accessed by other users").
        connections.close_all()


BROWSER_TEST_MARKS = [
    pytest.mark.skipif(
        sync_playwright is None, reason="playwright is not installed (pip install -r requirements-dev.txt)"
    ),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not shutil.which("chromium"),
        reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)",
    ),
    pytest.mark.django_db(transaction=True),
]


class CheckedPages:
    """Photographs each page (artifacts/<prefix>-<name>-<width>.png) and runs axe-core on ours; collects what axe
    finds serious or critical."""

    def __init__(self, page, width: int, *, prefix: str):
        self.page, self.width, self.prefix, self.violations, self.checked = page, width, prefix, {}, 0

    def look(self, name: str, *, ours: bool = True) -> None:
        self.page.screenshot(path=str(ARTIFACTS / f"{self.prefix}-{name}-{self.width}.png"), full_page=True)
        if not ours or not AXE.exists():  # the sandbox's pages stand in for Stripe's: not ours to check
            return
        self.page.add_script_tag(path=str(AXE))
        results = self.page.evaluate("axe.run(document, {resultTypes: ['violations']})")
        found = [
            f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:3]}"
            for v in results["violations"]
            if v["impact"] in ("serious", "critical")
        ]
        if found:
            self.violations[name] = found
        self.checked += 1

    def assert_accessible(self) -> None:
        assert self.violations == {}, self.violations
        if not AXE.exists():
            pytest.skip(
                f"the flow passed, but no accessibility check: {AXE} is missing (make test installs it: "
                f"npm install --prefix .venv/node axe-core@4.14.1)"
            )
