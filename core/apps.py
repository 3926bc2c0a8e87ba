from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self):
        import stripe

        from core.observability.metrics import InstrumentedRequestsClient, webhook_signals_connect

        # dj-stripe calls Stripe through stripe-python's module-level client: the same timing as our own client's
        # (core/stripe_api.py), with stripe-python's defaults otherwise.
        if not isinstance(stripe.default_http_client, InstrumentedRequestsClient):
            stripe.default_http_client = InstrumentedRequestsClient(
                verify_ssl_certs=stripe.verify_ssl_certs, proxy=stripe.proxy
            )
        webhook_signals_connect()
