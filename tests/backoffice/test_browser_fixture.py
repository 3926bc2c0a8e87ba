"""The chromium fixture (tests.browser.chromium_running) leaves no database connection behind: the ORM calls a browser test makes while Playwright's
loop runs use a connection of their own, which, left open, kept the test database from being dropped at the end of
the run ("being accessed by other users")."""

import pytest
from django.db import connection

from tests.browser import BROWSER_TEST_MARKS, chromium_running

pytestmark = BROWSER_TEST_MARKS


def _sessions_whose_last_query_holds(marker: str) -> list:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() "
            "AND query LIKE %s",
            [f"%{marker}%"],
        )
        return cursor.fetchall()


def test_the_connection_a_browser_test_opens_is_closed_with_the_browser(monkeypatch):
    if connection.vendor != "postgresql":
        pytest.skip("reads PostgreSQL's pg_stat_activity")
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    # Inside the block the browser is up and Playwright's loop runs, as inside a browser test.
    with chromium_running(), connection.cursor() as cursor:
        cursor.execute("SELECT 1 /* browser-fixture-probe */")

    assert _sessions_whose_last_query_holds("browser-fixture-probe") == []
