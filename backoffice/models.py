"""The back office's own records: the permissions of the support actions, and staff notes on customers."""

from django.conf import settings
from django.db import models

from core.models import TimeStampedModel


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
            ("fix_failed_setup", "Can correct a failed setup's domain or plan details and run it again"),
            ("mark_set_up_by_hand", "Can record a failed setup as done by hand in the control panel"),
            ("run_provisioning_job_now", "Can run a waiting provisioning job now"),
            ("export_csv", "Can export a filtered list as CSV"),
            ("view_audit_log", "Can read the team's audit log"),
        ]

    def __str__(self) -> str:
        return "Support actions"


class StaffNote(TimeStampedModel):
    """What one staff member wrote about a customer. Notes are kept, not edited: a pinned note shows on every order of
    the customer until someone unpins it."""

    customer = models.ForeignKey("accounts.Customer", on_delete=models.CASCADE, related_name="staff_notes")
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    # Kept beside the link so that a note still says who wrote it after that staff account is deleted.
    author_name = models.CharField(max_length=150)
    body = models.TextField(max_length=5000)
    pinned = models.BooleanField(default=False)

    class Meta:
        default_permissions = ("add", "change", "view")
        ordering = ("-pinned", "-created_at", "-id")
        indexes = [models.Index(fields=("customer", "-pinned", "-created_at"), name="backoffice_note_customer")]

    def __str__(self) -> str:
        return f"Note by {self.author_name} on {self.created_at:%Y-%m-%d}"
