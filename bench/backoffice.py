"""The back office at scale: every list filter, the global search by each kind of key (exact and prefix), the customer
page, an order's page and the first megabyte of each CSV export, timed with 1,000 and with 1,000,000 orders on
PostgreSQL, side by side with their ratio (the target: at most 2x).

    .venv/bin/python -m bench.backoffice [--sizes 1000,1000000] [--json PATH]

The orders are not the sessions table alone: each paid order gets its user, customer, membership, subscription,
hosting account, provisioning job and attempts, three e-mails, invoice, sometimes a refund, Stripe's event and its
webhook delivery (`backoffice_generate_sessions`, then `backoffice_generate_related`).

Needs PostgreSQL: BENCH_BACKOFFICE_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/backoffice_bench) is
dropped and created afresh. Pages are rendered in-process through Django's test client (no HTTP server), so the
figures are the server's own time: the queries and the template. The same objects are looked up at both sizes (the
first generated orders stay when more are added).
"""

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATABASE_URL = os.environ.get("BENCH_BACKOFFICE_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/backoffice_bench")
RUNS = 9
CSV_BYTES = 1 << 20

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.test")
os.environ.pop("REDIS_URL", None)


def database_url_for(size: int) -> str:
    """One database per size, `<name>_<size>`: each made the same way (the first 1,000 orders are the same rows), so a
    later run can keep them (--reuse) and time again without generating a million orders anew."""
    parts = urlsplit(DATABASE_URL)
    return parts._replace(path=f"{parts.path}_{size}").geturl()


def database_prepare(url: str, *, reuse: bool) -> bool:
    """Drop and create the database unless reuse and it exists; True when it is new (to migrate and fill)."""
    import psycopg

    parts = urlsplit(url)
    name = parts.path.lstrip("/")
    admin_url = parts._replace(path="/postgres").geturl()
    with psycopg.connect(admin_url, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if reuse and exists:
            return False
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return True


def timed(client, url: str, params: dict | None = None, *, read_bytes: int = 0) -> float:
    """Median milliseconds of RUNS requests after 2 warm-ups; with read_bytes, until that much of a streamed body has
    come, as milliseconds per read_bytes."""

    def once() -> float:
        started = time.perf_counter()
        response = client.get(url, params or {})
        # 302: an exact id found one object, and the search sends staff straight to its page.
        assert response.status_code in (200, 302), (url, params, response.status_code)
        got = 0
        if read_bytes:
            for chunk in response.streaming_content:
                got += len(chunk)
                if got >= read_bytes:
                    break
            response.close()
        elapsed = time.perf_counter() - started
        if read_bytes:
            # With fewer orders than a megabyte holds, the whole file is all there is: per megabyte, the two sizes
            # compare the same work (a 240 KB file at 1,000 orders against the first megabyte at a million).
            return elapsed * read_bytes / got
        return elapsed

    for _ in range(2):
        once()
    return statistics.median(once() for _ in range(RUNS)) * 1000


def filter_urls(client, changelist_url: str) -> list[tuple[str, dict]]:
    """Every choice of every list filter on a changelist, as the admin renders its links (so a filter added later is
    timed without a change here)."""
    from urllib.parse import parse_qsl

    changelist = client.get(changelist_url).context["cl"]
    found = []
    for spec in changelist.filter_specs:
        for choice in spec.choices(changelist):
            params = dict(parse_qsl(choice["query_string"].lstrip("?")))
            if params:
                found.append((f"{spec.title}: {choice['display']}", params))
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,1000000")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures to this file")
    parser.add_argument("--reuse", action="store_true", help="keep the databases of an earlier run if they exist")
    arguments = parser.parse_args()
    sizes = [int(size) for size in arguments.sizes.split(",")]

    results: dict[int, dict[str, float]] = {}
    shown: dict[int, dict[str, int | None]] = {}  # rows a list page drew: a page of 6 rows against one of 100
    pages: list[tuple[str, str, dict | None, int]] = []
    for size in sizes:
        results[size] = {}
        # Each size in a process of its own: Django binds to one database per process.
        url = database_url_for(size)
        fresh = database_prepare(url, reuse=arguments.reuse)
        import subprocess

        out = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.backoffice",
                "--one-size",
                str(size),
                "--database-url",
                url,
                *(["--fresh"] if fresh else []),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=7200,
        )
        if out.returncode != 0:
            print(out.stdout, out.stderr, sep="\n")
            return 2
        measured = json.loads(out.stdout.strip().splitlines()[-1])
        results[size] = {name: ms for name, ms, _ in measured}
        shown[size] = {name: count for name, _, count in measured}
        if not pages:
            pages = [(name, "", None, 0) for name, _, _ in measured]
        print(f"{size:,} orders: {len(measured)} pages timed", flush=True)

    small, large = sizes[0], sizes[-1]
    print()
    print(f"{'page':<58}{small:>10,} rows{large:>12,} rows{'ratio':>8}  rows drawn")
    worst = 0.0
    rows = []
    for name, *_ in pages:
        ratio = results[large][name] / results[small][name]
        worst = max(worst, ratio)
        drawn = (shown[small][name], shown[large][name])
        rows.append(
            {
                "page": name,
                "small_ms": results[small][name],
                "large_ms": results[large][name],
                "ratio": ratio,
                "rows_drawn": drawn,
            }
        )
        flag = "  <-- over 2x" if ratio > 2 else ""
        counts = f"  {drawn[0]} -> {drawn[1]}" if drawn[0] is not None else ""
        print(
            f"{name[:57]:<58}{results[small][name]:>11.1f} ms{results[large][name]:>11.1f} ms{ratio:>7.2f}x"
            f"{counts}{flag}"
        )
    print(f"\nmedian of {RUNS} requests each, after 2 warm-ups; worst ratio {worst:.2f}x (target <= 2x)")
    if arguments.json_path:
        Path(arguments.json_path).write_text(
            json.dumps({"sizes": [small, large], "runs": RUNS, "worst_ratio": worst, "pages": rows}, indent=2) + "\n"
        )
    return 0 if worst <= 2 else 1


def rows_drawn(client, url: str, params: dict | None) -> int | None:
    """How many rows a list page drew (None for other pages)."""
    response = client.get(url, params or {})
    response.close()  # a CSV export's stream, never read here
    context = getattr(response, "context", None)
    if context is None or "cl" not in context:
        return None
    return len(context["cl"].result_list)


def one_size(size: int, database_url: str, *, fresh: bool) -> None:
    """In this process: fill the database to `size` orders (when fresh), time every page, print [name, ms] pairs
    as JSON on the last line."""
    os.environ["DATABASE_URL"] = database_url
    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import setup_test_environment

    from accounts.models import User
    from checkout.models import CheckoutSession

    setup_test_environment()
    devnull = open(os.devnull, "w")  # noqa: SIM115 (for the whole process)
    if fresh:
        call_command("migrate", verbosity=0)
        call_command("catalog_load", verbosity=0)
        User.objects.create_superuser(email="bench@migrahosting.test", password="bench")
        # The first 1,000 orders are the same rows at every size (same seed), the objects the pages are timed on.
        for count, seed in ((min(size, 1000), 1000), (size - min(size, 1000), size)):
            if count > 0:
                call_command("backoffice_generate_sessions", count=count, seed=seed, stdout=devnull)
                call_command("backoffice_generate_related", stdout=devnull)
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    assert CheckoutSession.objects.count() == size, "a reused database of another size: run without --reuse"
    client = Client()
    client.force_login(User.objects.get(email="bench@migrahosting.test"))
    pages = pages_to_time(client)
    measured = [
        (name, timed(client, url, params, read_bytes=read_bytes), rows_drawn(client, url, params))
        for name, url, params, read_bytes in pages
    ]
    print(json.dumps(measured))


def pages_to_time(client):
    """The pages of the issue's table, on objects of the first generated orders."""
    from django.urls import NoReverseMatch, reverse

    from accounts.models import Subscription
    from billing.models import RefundRecord, SubscriptionInvoice
    from provisioning.models import HostingAccount

    subscription = Subscription.objects.select_related("checkout_session", "customer").order_by("id").first()
    customer = subscription.customer
    session = subscription.checkout_session
    account = (
        HostingAccount.objects.filter(subscription__customer=customer).first()
        or HostingAccount.objects.order_by("id").first()
    )
    invoice = SubscriptionInvoice.objects.filter(subscription=subscription).order_by("id").first()
    refund = RefundRecord.objects.order_by("id").first()

    pages: list[tuple[str, str, dict | None, int]] = []
    pages.append(("dashboard", reverse("admin:index"), None, 0))
    changelists = {
        "orders": "admin:checkout_checkoutsession_changelist",
        "customers": "admin:accounts_customer_changelist",
        "subscriptions": "admin:accounts_subscription_changelist",
        "jobs": "admin:provisioning_provisioningjob_changelist",
    }
    for label, name in changelists.items():
        url = reverse(name)
        pages.append((f"{label} list", url, None, 0))
        for title, params in filter_urls(client, url):
            pages.append((f"{label} list, {title}", url, params, 0))

    pages.append(("customer page", reverse("admin:accounts_customer_change", args=[customer.pk]), None, 0))
    pages.append(
        ("order page (timeline)", reverse("admin:checkout_checkoutsession_change", args=[session.pk]), None, 0)
    )

    try:
        search = reverse("backoffice:search")
    except NoReverseMatch:
        search = None
    keys = {
        "name": customer.name,
        "e-mail": customer.email,
        "e-mail domain": "@" + customer.email.split("@", 1)[1],
        "domain": subscription.domain,
        "www. domain": "www." + subscription.domain.upper(),
        "username": account.username if account else None,
        "cs_ id": session.stripe_session_id,
        "cus_ id": customer.stripe_customer_id,
        "sub_ id": subscription.stripe_subscription_id,
        "pi_ id": invoice.stripe_payment_intent_id if invoice else None,
        "in_ id": invoice.stripe_invoice_id if invoice else None,
        "ch_ id": refund.stripe_charge_id if refund else None,
    }
    if search:
        for kind, key in keys.items():
            if not key:
                continue
            pages.append((f"search {kind}, exact", search, {"q": key}, 0))
            if kind not in ("e-mail domain", "www. domain"):
                pages.append((f"search {kind}, prefix", search, {"q": key[: max(4, len(key) * 2 // 3)]}, 0))

    for label in ("orders", "customers", "subscriptions"):
        url = reverse(changelists[label])
        response = client.get(url)
        export = getattr(response, "context", None) and response.context.get("export_csv_url")
        if export:
            pages.append((f"{label} CSV export, per MB of the first MB", export, None, CSV_BYTES))
    return pages


if __name__ == "__main__":
    if "--one-size" in sys.argv:
        one = argparse.ArgumentParser()
        one.add_argument("--one-size", type=int)
        one.add_argument("--database-url")
        one.add_argument("--fresh", action="store_true")
        given = one.parse_args()
        one_size(given.one_size, given.database_url, fresh=given.fresh)
    else:
        sys.exit(main())
