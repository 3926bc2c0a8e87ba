"""Fill checkout_sessions with realistic fake orders for scale tests: `backoffice_generate_sessions --count 1000000`.

Spread over the last 365 days (more recent days a little busier), with the catalog's products and prices, a mix of
statuses, and e-mails and domains drawn from a large pool. PostgreSQL: COPY in batches (about 100,000 rows a
second); elsewhere bulk_create. Never for production data: the rows are fake orders.
"""

import io
import json
import random
import time
import uuid
from datetime import timedelta

from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from catalog.models import Price
from checkout.models import CheckoutSession

FIRST_NAMES = ("Jane", "John", "Ana", "Li", "Sam", "Max", "Eva", "Noah", "Maria", "Omar", "Yuki", "Lena")
LAST_NAMES = ("Smith", "Garcia", "Chen", "Novak", "Okafor", "Silva", "Kowalski", "Haddad", "Tanaka", "Berg")
STATUSES = [("completed", 62), ("expired", 28), ("pending", 4), ("payment_failed", 5), ("needs_review", 1)]
COLUMNS = (
    "id",
    "created_at",
    "updated_at",
    "stripe_session_id",
    "stripe_customer_id",
    "email",
    "customer_name",
    "product_code",
    "billing_cycle",
    "amount",
    "currency",
    "coupon_code",
    "domain_info",
    "status",
    "metadata",
    "completed_at",
    "price_id",
    "amount_discount",
    "trial_days",
    "stripe_url",
    "expires_at",
    "request_fingerprint",
)


class Command(BaseCommand):
    help = "Generate fake checkout sessions quickly (COPY on PostgreSQL), spread over the last 365 days."

    def add_arguments(self, parser):
        parser.add_argument("--count", type=int, required=True)
        parser.add_argument("--batch-size", type=int, default=50_000)
        parser.add_argument("--seed", type=int, default=None)
        parser.add_argument("--days", type=int, default=365)

    def handle(self, *args, count, batch_size, seed, days, **options):
        rng = random.Random(seed)
        prices = list(Price.objects.select_related("product").filter(active=True))
        if not prices:
            call_command("catalog_load", verbosity=0)
            prices = list(Price.objects.select_related("product").filter(active=True))
        statuses = [status for status, weight in STATUSES for _ in range(weight)]
        now = timezone.now()
        started = time.monotonic()
        made = 0
        while made < count:
            size = min(batch_size, count - made)
            rows = [self._row(rng, prices, statuses, now, days) for _ in range(size)]
            if connection.vendor == "postgresql":
                self._copy(rows)
            else:
                CheckoutSession.objects.bulk_create(
                    [CheckoutSession(**dict(zip(COLUMNS, row, strict=True))) for row in rows], batch_size=2_000
                )
            made += size
            self.stdout.write(f"{made:,} of {count:,} sessions ({made / (time.monotonic() - started):,.0f}/s)")
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute(f"ANALYZE {CheckoutSession._meta.db_table}")
        self.stdout.write(self.style.SUCCESS(f"{count:,} sessions in {time.monotonic() - started:.1f} s"))

    @staticmethod
    def _row(rng, prices, statuses, now, days):
        # sqrt skews toward recent days: a growing business.
        created = now - timedelta(seconds=int((rng.random() ** 1.3) * days * 86400))
        price = rng.choice(prices)
        status = rng.choice(statuses)
        if status == "pending" and created < now - timedelta(days=1):
            status = "expired"
        number = rng.randrange(50_000_000)
        session_id = uuid.UUID(int=rng.getrandbits(128), version=4)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        email = f"{first.lower()}.{number}@{rng.choice(('example.com', 'mail.test', 'corp.example', 'shop.test'))}"
        completed = created + timedelta(seconds=rng.randint(40, 900)) if status == "completed" else None
        stripe_id = f"cs_test_gen{session_id.hex}"
        return (
            session_id,
            created,
            completed or created,
            stripe_id,
            f"cus_gen{number:08d}" if status == "completed" else None,
            email,
            f"{first} {last}",
            price.product.code,
            price.billing_cycle,
            price.unit_amount,
            price.currency,
            None,
            {"mode": "new-or-transfer", "value": f"site{number}.example"},
            status,
            {},
            completed,
            price.pk,
            0,
            None,
            f"https://checkout.stripe.test/c/pay/{stripe_id}",
            created + timedelta(hours=24),
            uuid.UUID(int=rng.getrandbits(128)).hex + uuid.UUID(int=rng.getrandbits(128)).hex,
        )

    @staticmethod
    def _copy(rows):
        def text(value):
            if value is None:
                return "\\N"
            if isinstance(value, dict):
                value = json.dumps(value)
            elif hasattr(value, "isoformat"):
                value = value.isoformat()
            return str(value).replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")

        buffer = io.StringIO()
        for row in rows:
            buffer.write("\t".join(text(value) for value in row))
            buffer.write("\n")
        table = CheckoutSession._meta.db_table
        with connection.cursor() as cursor, cursor.copy(f"COPY {table} ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            copy.write(buffer.getvalue())
