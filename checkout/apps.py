from django.apps import AppConfig


class CheckoutConfig(AppConfig):
    name = "checkout"
    verbose_name = "Checkout"

    def ready(self):
        from checkout import webhooks  # noqa: F401  (connects the dj-stripe receivers)
