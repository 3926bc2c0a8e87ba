from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    verbose_name = "Billing"

    def ready(self):
        # The dj-stripe receivers; the tasks, which the services send by name.
        from billing import tasks, webhooks  # noqa: F401
