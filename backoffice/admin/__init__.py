"""Every model's page in the Django admin, which is the back office: one module per app it shows, registered here
(Django's autodiscovery imports this package). The apps themselves know nothing of the admin; the back office reads
and calls them (their models, selectors and services), never the other way round."""

from backoffice.admin import accounts, billing, catalog, checkout, notes, provisioning  # noqa: F401 (registers)
