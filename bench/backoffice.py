"""The back office at scale: the checkout session list, a search by e-mail and one order's page, timed with 1,000 and
with 1,000,000 checkout sessions on PostgreSQL, side by side with their ratio (the target: at most 2x).

    .venv/bin/python -m bench.backoffice [DATABASE_URL [SMALL,LARGE]]

Needs PostgreSQL: the database (default postgres://postgres@127.0.0.1:5432/backoffice_bench) is dropped and created
afresh; the sizes default to 1000,1000000. Pages are rendered in-process through Django's test client (no HTTP server), so the
figures are the server's own time: the queries and the template.
"""

import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = sys.argv[1] if len(sys.argv) > 1 else "postgres://postgres@127.0.0.1:5432/backoffice_bench"
SIZES = [int(size) for size in (sys.argv[2] if len(sys.argv) > 2 else "1000,1000000").split(",")]
RUNS = 15

os.environ["DATABASE_URL"] = DATABASE_URL
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.pop("REDIS_URL", None)


def database_recreate() -> None:
    import psycopg

    parts = urlsplit(DATABASE_URL)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')


def timed(client, url: str, params: dict | None = None) -> float:
    for _ in range(3):  # warm the caches (ours and PostgreSQL's)
        assert client.get(url, params or {}).status_code == 200
    samples = []
    for _ in range(RUNS):
        started = time.perf_counter()
        response = client.get(url, params or {})
        samples.append(time.perf_counter() - started)
        assert response.status_code == 200
    return statistics.median(samples) * 1000


def main() -> int:
    database_recreate()
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment
    from django.urls import reverse
    from django.utils import timezone

    from accounts.models import User
    from checkout.models import CheckoutSession
    from provisioning.models import ProvisioningAttempt, ProvisioningJobStatus

    setup_test_environment()
    call_command("migrate", verbosity=0)
    call_command("catalog_load", verbosity=0)
    from tests.provisioning.factories import EmailNotificationFactory, ProvisioningJobFactory

    job = ProvisioningJobFactory(status=ProvisioningJobStatus.FAILED, attempts=2, max_attempts=2,
                                 subscription__checkout_session__email="bench.target@example.org",
                                 subscription__checkout_session__status="completed")
    for number in (1, 2):
        ProvisioningAttempt.objects.create(job=job, number=number, started_at=timezone.now(), error="panel down")
    target = job.subscription.checkout_session
    EmailNotificationFactory(checkout_session=target, purpose="set_password")
    staff = User.objects.create_superuser(email="bench@migrahosting.test", password="bench")
    client = Client()
    client.force_login(staff)

    pages = [
        ("session list", reverse("admin:checkout_checkoutsession_changelist"), None),
        ("search by e-mail", reverse("admin:checkout_checkoutsession_changelist"), {"q": target.email}),
        ("session page (timeline)", reverse("admin:checkout_checkoutsession_change", args=[target.pk]), None),
    ]
    results: dict[int, list[float]] = {}
    for size in SIZES:
        missing = size - CheckoutSession.objects.count()
        if missing > 0:
            print(f"generating {missing:,} sessions ...", flush=True)
            started = time.monotonic()
            call_command("backoffice_generate_sessions", count=missing, seed=size, stdout=open(os.devnull, "w"))
            print(f"  done in {time.monotonic() - started:.1f} s", flush=True)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE checkout_sessions")
        results[size] = [timed(client, url, params) for _, url, params in pages]

    small, large = SIZES[0], SIZES[-1]
    print()
    print(f"{'page':<26}{small:>12,} rows{large:>14,} rows{'ratio':>9}")
    worst = 0.0
    for index, (name, _, _) in enumerate(pages):
        ratio = results[large][index] / results[small][index]
        worst = max(worst, ratio)
        print(f"{name:<26}{results[small][index]:>13.1f} ms{results[large][index]:>13.1f} ms{ratio:>8.2f}x")
    print(f"\nmedian of {RUNS} requests each, after 3 warm-ups; worst ratio {worst:.2f}x (target <= 2x)")
    return 0 if worst <= 2 else 1


if __name__ == "__main__":
    sys.exit(main())
