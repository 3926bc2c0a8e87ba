"""The embedded default (SQLite, `make run`) serialises writers instead of failing them: processes that read and
then write in one transaction (the webhook, the success page's poll, the billing sweep) all get through.

Real processes on a real SQLite file, whatever database the rest of the suite uses."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


WRITER = """
import django
django.setup()
from datetime import datetime, timezone
from django.db import transaction
from billing.models import StripeClock
failures = 0
for _ in range(150):
    try:
        with transaction.atomic():
            StripeClock.objects.filter(scope="race").first()  # a read, then a write: the lock upgrade SQLite refuses
            StripeClock.objects.update_or_create(scope="race", defaults={"now": datetime.now(timezone.utc)})
    except Exception as error:
        failures += 1
        last = error
print(failures, repr(last) if failures else "")
"""


def test_four_processes_writing_at_once_on_sqlite_all_get_through(sqlite_env):
    env = sqlite_env

    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [writer.communicate(timeout=300)[0].strip().splitlines()[-1] for writer in writers]

    assert [output.split(" ", 1)[0] for output in outputs] == ["0"] * 4, outputs


SETUP_ORDERS = """
import django
django.setup()
from tests.checkout.factories import CheckoutSessionFactory
from tests.catalog.factories import PriceFactory
price = PriceFactory()
print(" ".join(CheckoutSessionFactory(price=price).stripe_session_id for _ in range(15)))
"""

# The webhook (dj-stripe's receiver) and the success page's poll both end in checkout_session_fulfill, each in its
# own process, for the same sessions at the same moment, with the work they enqueue run in-process as `make run` does.
FULFILLER = """
import sys
import django
django.setup()
from checkout.models import CheckoutSession
from checkout.services import checkout_session_fulfill
from tests.checkout.factories import paid_stripe_session
failures, last = 0, ""
ids = sys.argv[1].split()
for stripe_session_id in (ids if sys.argv[2] == "forward" else ids[::-1]):
    session = CheckoutSession.objects.get(stripe_session_id=stripe_session_id)
    try:
        checkout_session_fulfill(stripe_session=paid_stripe_session(session))
    except Exception as error:
        failures, last = failures + 1, repr(error)
print(failures, last)
"""


def run_python(env, code: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def test_the_webhook_and_the_success_page_fulfilling_together_on_sqlite_all_get_through(sqlite_env):
    env = sqlite_env
    ids = run_python(env, SETUP_ORDERS)

    fulfillers = [
        subprocess.Popen(
            [sys.executable, "-c", FULFILLER, ids, direction],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for direction in ("forward", "backward", "forward", "backward")
    ]
    outputs = [fulfiller.communicate(timeout=300)[0].strip().splitlines()[-1] for fulfiller in fulfillers]

    assert [output.split(" ", 1)[0] for output in outputs] == ["0"] * 4, outputs
    counts = run_python(
        env,
        """
import django
django.setup()
from accounts.models import Subscription, User
from checkout.models import CheckoutSession
from provisioning.models import EmailNotification, ProvisioningJob
print(CheckoutSession.objects.filter(status="completed").count(), User.objects.count(),
      Subscription.objects.count(), ProvisioningJob.objects.count(),
      EmailNotification.objects.filter(purpose="order_confirmation").count())
""",
    )
    assert counts == "15 15 15 15 15"


LOCK_HOLDER_AND_WEBHOOK = """
import json, sqlite3, time, uuid
import django
django.setup()
from django.conf import settings
settings.DATABASES["default"]["OPTIONS"]["timeout"] = 0.5  # before the first connection: it is read then
settings.ALLOWED_HOSTS = ["testserver"]
import stripe
from django.test import Client
from djstripe.models import WebhookEndpoint, WebhookEventTrigger
endpoint = WebhookEndpoint.objects.create(
    id="we_locked", url="http://testserver/", enabled_events=["*"], status="enabled", secret="whsec_locked",
    livemode=False, djstripe_uuid=uuid.uuid4())
body = json.dumps({"id": "evt_locked", "object": "event", "type": "checkout.session.expired", "livemode": False,
                   "api_version": "2026-05-27.dahlia", "data": {"object": {"id": "cs_test_locked"}}})
timestamp = int(time.time())
signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body}", "whsec_locked")

holder = sqlite3.connect(settings.DATABASES["default"]["NAME"], isolation_level=None)
holder.execute("BEGIN IMMEDIATE")  # another writer that keeps the lock for longer than our timeout
response = Client().post(f"/api/webhooks/stripe/{endpoint.djstripe_uuid}/", data=body,
                         content_type="application/json", HTTP_STRIPE_SIGNATURE=f"t={timestamp},v1={signature}")
holder.execute("ROLLBACK")
print(json.dumps({"status": response.status_code, "retry_after": response.get("Retry-After"),
                  "content_type": response["Content-Type"], "body": response.content.decode()[:300],
                  "triggers": WebhookEventTrigger.objects.count()}))
"""


def test_a_lock_held_past_the_timeout_is_a_503_with_a_retry_hint_not_a_500(sqlite_env):
    import json

    env = sqlite_env

    answer = json.loads(run_python(env, LOCK_HOLDER_AND_WEBHOOK))

    assert answer["status"] == 503, answer
    assert answer["retry_after"] == "5"
    assert answer["content_type"] == "application/json"
    assert json.loads(answer["body"])["code"] == "service_unavailable"
    assert answer["triggers"] == 0  # nothing half-written: Stripe's retry will deliver it again
