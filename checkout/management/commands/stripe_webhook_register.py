import stripe
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from checkout.webhook_endpoints import webhook_endpoint_register


class Command(BaseCommand):
    help = "Register our Stripe webhook endpoint with the Stripe the settings point at, and store its secret."

    def add_arguments(self, parser):
        parser.add_argument(
            "--base-url",
            default=settings.STRIPE_WEBHOOK_BASE_URL,
            help="Public address of this service (default: STRIPE_WEBHOOK_BASE_URL).",
        )

    def handle(self, *args, base_url, **options):
        if not base_url:
            raise CommandError("Give --base-url or set STRIPE_WEBHOOK_BASE_URL: where Stripe can reach this service.")
        try:
            endpoint, created = webhook_endpoint_register(base_url=base_url)
        except stripe.StripeError as error:
            raise CommandError(
                f"Stripe at {settings.STRIPE_API_BASE} refused: {error.user_message or error}"
            ) from error
        verb = "Registered" if created else "Already registered"
        self.stdout.write(f"{verb}: {endpoint.id} -> {endpoint.url} (Stripe at {settings.STRIPE_API_BASE})")
