"""The back office: the Django admin as catalog and support staff use it (dashboard, order timeline, support actions)."""

from django.apps import AppConfig


class BackOfficeConfig(AppConfig):
    name = "backoffice"
    verbose_name = "Back office"

    def ready(self):
        from django.contrib import admin

        from backoffice.login import AdminLoginForm
        from core.security import admin_site_lock_down

        # The project keeps Django's default site (every app registers with it); only its looks, its first page and
        # its login form change.
        admin.site.site_header = "MigraHosting back office"
        admin.site.site_title = "MigraHosting back office"
        admin.site.index_title = "Last 30 days"
        admin.site.index_template = "backoffice/index.html"
        admin.site.login_form = AdminLoginForm
        # dj-stripe's pages read-only and for superusers, without its API keys or any secret; axes' for superusers.
        admin_site_lock_down(admin.site)
