"""Permissions for the support actions; the back office owns no tables of its own."""

from django.db import models


class SupportAction(models.Model):
    """No table: only the holder of the support actions' permissions (`backoffice.<codename>`)."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("retry_provisioning_job", "Can run a failed provisioning job again"),
            ("resend_set_password_email", "Can send the set-password e-mail again"),
            ("expire_checkout_session", "Can expire a pending checkout session at Stripe"),
            ("refresh_checkout_session", "Can re-read a checkout session from Stripe and fulfil it"),
        ]
