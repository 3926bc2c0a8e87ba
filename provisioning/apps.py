from django.apps import AppConfig


class ProvisioningConfig(AppConfig):
    name = "provisioning"
    verbose_name = "Provisioning"

    def ready(self):
        # The system checks; the tasks, which the outbox sends by name.
        from provisioning import checks, tasks  # noqa: F401
