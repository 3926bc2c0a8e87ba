"""Run the billing sweep (what Celery beat runs every BILLING_SWEEP_INTERVAL_SECONDS): once, or every N seconds
where no beat runs (`make run`)."""

import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from billing.services import billing_sweep


class Command(BaseCommand):
    help = "Suspensions due, termination warnings and terminations, refunds of failed setups, unfinished actions."

    def add_arguments(self, parser):
        parser.add_argument(
            "--every", type=float, default=0.0, help="Run again every this many seconds until stopped (default: once)."
        )

    def handle(self, *args, every: float, **options):
        while True:
            counts = billing_sweep()
            if any(counts.values()) or not every:
                self.stdout.write(" ".join(f"{name}={count}" for name, count in counts.items()))
            if not every:
                return
            close_old_connections()
            time.sleep(every)
