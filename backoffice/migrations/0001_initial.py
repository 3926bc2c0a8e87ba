from django.db import migrations, models


class Migration(migrations.Migration):
    initial = True
    dependencies = []

    operations = [
        migrations.CreateModel(
            name="SupportAction",
            fields=[("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID"))],
            options={
                "managed": False,
                "default_permissions": (),
                "permissions": [
                    ("retry_provisioning_job", "Can run a failed provisioning job again"),
                    ("resend_set_password_email", "Can send the set-password e-mail again"),
                    ("expire_checkout_session", "Can expire a pending checkout session at Stripe"),
                    ("refresh_checkout_session", "Can re-read a checkout session from Stripe and fulfil it"),
                ],
            },
        ),
    ]
