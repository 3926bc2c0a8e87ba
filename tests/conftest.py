"""Project-wide fixtures: the Stripe sandbox as a real process, a clean cache for every test, and migrated databases
to copy (SQLite and PostgreSQL) for tests that need a whole database of their own: dj-stripe's migrations alone take
a minute of CPU, so each kind is migrated once per run."""

import json
import os
import select
import shutil
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


def sqlite_environment(database: Path) -> dict:
    """The environment of a `make run`-like process on that SQLite file: local settings, no Redis."""
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(
        DJANGO_SETTINGS_MODULE="config.settings.local",
        DATABASE_URL=f"sqlite:///{database}",
        EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
    )
    return env


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory) -> Path:
    """A SQLite file migrated once for the whole run; tests copy it (`sqlite_env`), never write to it."""
    database = tmp_path_factory.mktemp("sqlite") / "template.sqlite3"
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "-v0"],
        cwd=ROOT,
        env=sqlite_environment(database),
        check=True,
        timeout=900,
    )
    return database


@pytest.fixture
def sqlite_env(migrated_sqlite, tmp_path) -> dict:
    """The environment of a process on a migrated SQLite file of this test's own."""
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(migrated_sqlite, database)  # the template is not in WAL mode after migrate exits: one file
    return sqlite_environment(database)


def _postgres_admin_url() -> str:
    from urllib.parse import urlsplit, urlunsplit

    # DATABASE_URL's own database may not exist (pytest-django works in test_<name>): the maintenance one does.
    return urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path="/postgres"))


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """pytest-django's test database; on PostgreSQL also a copy of it as the migrations left it, made before any test
    wrote to it, for `fresh_postgres_url`."""
    from django.db import connection, connections

    if connection.vendor != "postgresql":
        yield
        return
    import psycopg

    template = f"{connection.settings_dict['NAME']}_migrated"
    with django_db_blocker.unblock():
        connections.close_all()  # CREATE DATABASE ... TEMPLATE needs the source to have no other session
        with psycopg.connect(_postgres_admin_url(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')
            admin.execute(f'CREATE DATABASE "{template}" TEMPLATE "{connection.settings_dict["NAME"]}"')
    yield
    with psycopg.connect(_postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{template}" WITH (FORCE)')


@pytest.fixture
def fresh_postgres_url(django_db_setup, django_db_blocker):
    """The URL of a new PostgreSQL database of this test's own, migrated (a copy of the migrated template), dropped
    afterwards."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from django.db import connection

    with django_db_blocker.unblock():
        template = f"{connection.settings_dict['NAME']}_migrated"
    name = f"fresh_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    yield urlunsplit(urlsplit(os.environ["DATABASE_URL"])._replace(path=f"/{name}"))
    with psycopg.connect(_postgres_admin_url(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@dataclass
class Sandbox:
    """Handle on the running sandbox: its URL, and its control API (not Stripe's) for faults and request logs."""

    url: str

    def _control(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.url}/_sandbox/{path}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
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
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
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
def _clean_cache(monkeypatch):
    # Throttle counters, Stripe sync marks and the worker heartbeat live in the cache (Redis in CI): no test sees
    # another's. The heartbeat's per-process throttle forgets too, or a task run within seconds of an earlier test's
    # would leave no heartbeat in the emptied cache (core/observability/celery_hooks.py).
    from core.observability import celery_hooks

    monkeypatch.setattr(celery_hooks, "_last_heartbeat", 0.0)
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
    from tests.browser import chromium_running

    # Playwright's sync API runs an event loop in this thread; the ORM calls the test makes meanwhile are plain
    # synchronous calls, which Django would otherwise refuse.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with chromium_running() as browser:
        yield browser
