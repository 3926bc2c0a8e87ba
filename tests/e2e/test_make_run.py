"""`make run` for real, on ports other than its defaults: the script the Makefile runs starts the sandbox and the API,
a plan bought through the API and paid on the sandbox's page is fulfilled by the webhook the sandbox sends to the
API's port, without a warning on the way, and Ctrl-C stops it all. Needs nothing but Python (SQLite, in-process
tasks), like `make run` itself; with PostgreSQL at hand (DATABASE_URL) on a database of its own there instead."""

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _bare_environment() -> dict[str, str]:
    """The shell's basics only: nothing of the test run's settings (DJANGO_SETTINGS_MODULE, STRIPE_*, REDIS_URL...)."""
    return {name: value for name, value in os.environ.items() if name in ("PATH", "HOME", "LANG", "TMPDIR")}


def test_the_makefile_hands_both_ports_to_the_script():
    dry_run = subprocess.run(
        ["make", "-n", "run", "API_PORT=8123", "SANDBOX_PORT=12345"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    assert "API_PORT=8123 SANDBOX_PORT=12345 exec bash scripts/run_local.sh" in dry_run


@pytest.fixture
def database_url(request, tmp_path):
    """A migrated database nobody else uses: a copy of the run's migrated PostgreSQL database when DATABASE_URL is
    PostgreSQL, else of its migrated SQLite file. `make run` migrates it again (nothing left to do) as on any start:
    what this test is about is ports, fulfilment and Ctrl-C, not a minute of dj-stripe's migrations."""
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        return request.getfixturevalue("fresh_postgres_url")
    database = tmp_path / "db.sqlite3"
    shutil.copyfile(request.getfixturevalue("migrated_sqlite"), database)
    return f"sqlite:///{database}"


@pytest.fixture
def make_run(tmp_path, database_url):
    """scripts/run_local.sh as `make run API_PORT=... SANDBOX_PORT=...` runs it, with a database and log folder of
    its own and an environment with nothing of the test run's in it; yields (API URL, sandbox URL, output file)."""
    api_port, sandbox_port = free_port(), free_port()
    while sandbox_port == api_port:
        sandbox_port = free_port()
    output = tmp_path / "make-run.log"
    env = _bare_environment()
    env.update(
        PYTHON=sys.executable,
        API_PORT=str(api_port),
        SANDBOX_PORT=str(sandbox_port),
        DATABASE_URL=database_url,
        RUN_DIR=str(tmp_path / "run"),
    )
    with output.open("w") as out:
        process = subprocess.Popen(
            ["bash", "scripts/run_local.sh"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_for(
            lambda: "Ready." in output.read_text() or process.poll() is not None,
            timeout=900,
            what="make run to say Ready",
        )
        assert process.poll() is None, output.read_text()
        yield f"http://127.0.0.1:{api_port}", f"http://127.0.0.1:{sandbox_port}", output, process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's whole foreground group
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_make_run_on_other_ports_fulfils_a_paid_order_and_stops_on_ctrl_c(make_run):
    api, sandbox, output, process = make_run

    created = requests.post(
        f"{api}/api/checkout/create-session",
        timeout=30,
        json={"planId": "starter", "billingCycle": "monthly", "customer": {"name": "Ada", "email": "ada@example.com"}},
    )
    assert created.status_code == 200, created.text
    session_id, page = created.json()["sessionId"], created.json()["url"]
    # The customer pays on the sandbox's page, as in a browser.
    assert page == f"{sandbox}/c/pay/{session_id}"
    paid = requests.post(f"{page}/pay", data={"payment": "card"}, timeout=30)
    # Stripe sends the customer back to our success page, on the API's port.
    assert [answer.status_code for answer in paid.history] == [303]
    assert paid.url == f"{api}/checkout/success/?session_id={session_id}"
    assert paid.status_code == 200

    def fulfilment() -> str | None:
        answer = requests.get(f"{api}/api/checkout/session/{session_id}", timeout=30).json()["session"]
        return answer["fulfilment"] if answer["fulfilment"] == "ready" else None

    wait_for(fulfilment, timeout=60, what="the order to be ready", interval=0.5)
    control = requests.post(f"{sandbox}/_sandbox/deliveries/wait", json={"timeout": 20}, timeout=30).json()
    assert control["idle"]
    deliveries = requests.get(f"{sandbox}/_sandbox/deliveries?type=checkout.session.completed", timeout=10).json()
    [completed] = deliveries["data"]
    assert re.fullmatch(rf"{api}/api/webhooks/stripe/[0-9a-f-]{{36}}/", completed["url"])
    assert completed["status"] == 200
    stripe_session = requests.get(
        f"{sandbox}/v1/checkout/sessions/{session_id}",
        timeout=10,
        headers={"Authorization": "Bearer sk_test_sandbox0000000000000000000000"},
    ).json()
    assert stripe_session["success_url"] == f"{api}/checkout/success/?session_id={{CHECKOUT_SESSION_ID}}"
    assert stripe_session["cancel_url"] == f"{api}/checkout/cancel/"
    log = output.read_text()
    assert f"{api}/account/set-password/" in log  # the e-mails' links (SITE_URL) name the API's port
    assert "127.0.0.1:8000" not in log and "127.0.0.1:12111" not in log  # no default port left anywhere
    assert "No hostname was supplied" not in log
    # No log line at WARNING or above (runserver's own "WARNING: This is a development server" banner is no log line).
    assert not re.search(r"^\S+ \S+ (WARNING|ERROR|CRITICAL) ", log, re.MULTILINE), log
    assert "Traceback" not in log, log

    os.killpg(process.pid, signal.SIGINT)
    assert process.wait(timeout=30) == 130
    assert "==> stopped" in output.read_text()
    for url in (api, sandbox):
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/", timeout=2)


def test_make_run_refuses_equal_or_malformed_ports(tmp_path):
    env = {**_bare_environment(), "PYTHON": sys.executable, "RUN_DIR": str(tmp_path)}
    same = subprocess.run(
        ["bash", "scripts/run_local.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "API_PORT": "19000", "SANDBOX_PORT": "19000"},
        timeout=30,
    )
    malformed = subprocess.run(
        ["bash", "scripts/run_local.sh"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "API_PORT": "80a"},
        timeout=30,
    )

    assert same.returncode == 1 and "API_PORT and SANDBOX_PORT are both 19000" in same.stderr
    assert malformed.returncode == 1 and "'80a' is not a port" in malformed.stderr
