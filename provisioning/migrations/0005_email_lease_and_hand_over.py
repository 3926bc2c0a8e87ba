from django.db import migrations, models
from django.db.models import F


def sending_emails_count_as_handed_over(apps, schema_editor):
    # Before this migration nothing recorded whether a `sending` e-mail had reached the mail server: assume it may
    # have, so that none of them is ever sent again automatically (staff still see them under "Needs attention").
    EmailNotification = apps.get_model("provisioning", "EmailNotification")
    EmailNotification.objects.filter(status="sending").update(handed_over_at=F("updated_at"))


class Migration(migrations.Migration):

    dependencies = [
        ("provisioning", "0004_change_plan_jobs"),
    ]

    operations = [
        migrations.AddField(
            model_name="emailnotification",
            name="lease_expires_at",
            field=models.DateTimeField(
                blank=True, null=True,
                help_text="While sending: until when the worker that claimed it holds it. Past it, the e-mail is "
                          "tried again (under the same Message-ID)."),
        ),
        migrations.AddField(
            model_name="emailnotification",
            name="handed_over_at",
            field=models.DateTimeField(
                blank=True, null=True,
                help_text="When the message started to go to the mail server, on the latest attempt: from then on "
                          "the customer may have it, and a retry can be a second copy (same Message-ID)."),
        ),
        migrations.RunPython(sending_emails_count_as_handed_over, migrations.RunPython.noop),
    ]
