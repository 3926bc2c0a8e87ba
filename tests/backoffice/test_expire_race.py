""" "Expire at Stripe" while Stripe's expiry webhook races it (issue 9, point 2), as `make run` runs it: SQLite, the
Django development server and the Stripe sandbox as real processes, the sandbox delivering the signed
checkout.session.expired to the server while the staff request that caused it is still writing.

Every click ends in the order page with the action's banner (no "database is locked", no 503), each session is
expired once, and each click is in the admin log and on the order's timeline."""

import re
import select
import subprocess
import sys
import time

import pytest
import requests

from tests.e2e.conftest import free_port
from tests.test_sqlite_writers import ROOT, run_python

CLICKS = 6  # one at a time from each order's page, as staff click
BULK = 6  # then the list's action on several sessions at once


def wait_until(condition, *, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def local_stack(sqlite_env, tmp_path):
    """The sandbox and runserver on ports of our own, the webhook endpoint registered, a Support agent."""
    sandbox_port, api_port = free_port(), free_port()
    sandbox_url, api_url = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{api_port}"
    env = {
        **sqlite_env,
        "STRIPE_API_BASE": sandbox_url,
        "STRIPE_WEBHOOK_BASE_URL": api_url,
        "THROTTLE_CHECKOUT_CREATE": "1000/min",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_DEBUG": "true",
    }
    processes = []
    try:
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "stripe_sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        processes.append(sandbox)
        ready, _, _ = select.select([sandbox.stdout], [], [], 30)
        assert ready and "listening on" in sandbox.stdout.readline(), "the sandbox did not start"
        for command in (["catalog_load", "-v0"], ["stripe_webhook_register", "--base-url", api_url]):
            subprocess.run(
                [sys.executable, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=120, capture_output=True
            )
        run_python(
            env,
            """
import django
django.setup()
from django.contrib.auth.models import Group
from accounts.models import User
from backoffice.roles import SUPPORT
user = User.objects.create_user(email="support@example.com", password="correct horse battery", is_staff=True)
user.groups.add(Group.objects.get(name=SUPPORT))
print("ok")
""",
        )
        log = open(tmp_path / "runserver.log", "w")  # noqa: SIM115 (closed with the process)
        server = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", "--noreload", f"127.0.0.1:{api_port}"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        processes.append(server)
        wait_until(lambda: requests.get(f"{api_url}/api/health/", timeout=2).ok, timeout=60, what="runserver")
        yield {"env": env, "api": api_url, "sandbox": sandbox_url, "log": tmp_path / "runserver.log"}
    finally:
        for process in reversed(processes):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def _csrf(page: str) -> str:
    return re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page).group(1)


def _buy(api: str, n: int) -> str:
    response = requests.post(
        f"{api}/api/checkout/create-session",
        timeout=30,
        json={
            "planId": "starter",
            "billingCycle": "monthly",
            "trialActive": False,
            "customer": {"name": f"Racer {n}", "email": f"racer{n}@example.com"},
        },
    )
    assert response.status_code in (200, 201), response.text
    return f"racer{n}@example.com"


def test_expire_at_stripe_on_sqlite_while_the_expiry_webhook_races_it_is_done_and_logged(local_stack):
    api, env = local_stack["api"], local_stack["env"]
    for n in range(CLICKS + BULK):
        _buy(api, n)
    pks = run_python(
        env,
        """
import django
django.setup()
from checkout.models import CheckoutSession
print(" ".join(str(pk) for pk in CheckoutSession.objects.order_by("email").values_list("pk", flat=True)))
""",
    ).split()
    assert len(pks) == CLICKS + BULK
    staff = requests.Session()
    login = staff.get(f"{api}/admin/login/", timeout=30)
    staff.post(
        f"{api}/admin/login/",
        timeout=30,
        data={
            "username": "support@example.com",
            "password": "correct horse battery",
            "csrfmiddlewaretoken": _csrf(login.text),
            "next": "/admin/",
        },
    )

    answers = []
    for pk in pks[:CLICKS]:
        page = staff.get(f"{api}/admin/checkout/checkoutsession/{pk}/change/", timeout=30)
        assert page.status_code == 200 and 'id="expire"' in page.text
        click = staff.post(
            f"{api}/admin/checkout/checkoutsession/{pk}/support/expire/",
            timeout=60,
            data={"csrfmiddlewaretoken": _csrf(page.text)},
        )
        answers.append(
            (
                click.status_code,
                click.url.endswith(f"/{pk}/change/"),
                "Session expired at Stripe and here" in click.text,
            )
        )
    listing = staff.get(f"{api}/admin/checkout/checkoutsession/", timeout=30)
    bulk = staff.post(
        f"{api}/admin/checkout/checkoutsession/",
        timeout=120,
        data={
            "csrfmiddlewaretoken": _csrf(listing.text),
            "action": "expire_at_stripe",
            "index": "0",
            "_selected_action": pks[CLICKS:],
        },
    )
    requests.post(f"{local_stack['sandbox']}/_sandbox/deliveries/wait", json={"timeout": 60}, timeout=90)

    assert answers == [(200, True, True)] * CLICKS, (answers, local_stack["log"].read_text()[-3000:])
    assert bulk.status_code == 200 and f"Expire at Stripe: {BULK} session(s) changed" in bulk.text, bulk.text[-2000:]
    outcome = run_python(
        env,
        """
import json
import django
django.setup()
from django.contrib.admin.models import LogEntry
from djstripe.models import WebhookEventTrigger
from checkout.models import CheckoutSession
from backoffice.selectors import checkout_session_timeline
sessions = list(CheckoutSession.objects.all())
print(json.dumps({
    "statuses": sorted({s.status for s in sessions}),
    "logged": sorted(LogEntry.objects.filter(change_message__startswith="Expire at Stripe: Session expired")
                     .values_list("object_id", flat=True)),
    "on_timeline": sum(any(e.kind == "staff" and "Session expired at Stripe" in e.title
                           for e in checkout_session_timeline(session=s).entries) for s in sessions),
    "expired_deliveries": [t.processed and not t.exception for t in WebhookEventTrigger.objects.all()
                           if '"checkout.session.expired"' in t.body],
}))
""",
    )
    import json

    outcome = json.loads(outcome)
    assert outcome["statuses"] == ["expired"]
    assert outcome["logged"] == sorted(pks)
    assert outcome["on_timeline"] == CLICKS + BULK
    # Each webhook was processed as well (the action and the event both expire it; the second finds it done).
    assert outcome["expired_deliveries"] == [True] * (CLICKS + BULK)
    assert " 503 " not in local_stack["log"].read_text() and " 500 " not in local_stack["log"].read_text()
