"""Deletes the Stripe keys dj-stripe stored that are not the configured one (after a key is rolled).

dj-stripe keeps every key it was used with in `djstripe_apikey`, in clear: it finds the key's account by the key's
value while processing each event, and no setting turns that off. The current key has to stay; a rolled or revoked
one has no business in the database (or its backups)."""

from django.conf import settings
from django.core.management.base import BaseCommand
from djstripe.models import APIKey


class Command(BaseCommand):
    help = "Delete the Stripe API keys dj-stripe stored other than STRIPE_SECRET_KEY (run after rolling the key)."

    def handle(self, *args, **options):
        current = settings.STRIPE_SECRET_KEY
        deleted, _ = APIKey.objects.exclude(secret=current).delete()
        self.stdout.write(
            f"Deleted {deleted} stored Stripe key(s) other than the configured one "
            f"({APIKey.objects.filter(secret=current).count()} kept)."
        )
