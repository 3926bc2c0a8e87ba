"""The admin's login form. Guessing is stopped by django-axes (settings AXES_*, core/login_lockout.py): failures are
counted per account and client IP together, in the database; this form only says how long a locked-out login waits."""

from django.contrib.admin.forms import AdminAuthenticationForm

from core.login_lockout import LockoutMessageFormMixin


class AdminLoginForm(LockoutMessageFormMixin, AdminAuthenticationForm):
    pass
