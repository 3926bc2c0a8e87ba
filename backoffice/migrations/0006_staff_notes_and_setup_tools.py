"""Staff notes on customers, and the permissions of the setup tools, the CSV export and the audit log page; support
and billing get theirs (as backoffice.roles says). The audit log is in no group: a superuser grants it per person."""

from django.contrib.auth.management import create_permissions

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

SUPPORT = [("backoffice", codename) for codename in (
    "fix_failed_setup", "mark_set_up_by_hand", "run_provisioning_job_now", "export_csv",
    "add_staffnote", "change_staffnote", "view_staffnote")]
BILLING = [("backoffice", codename) for codename in ("export_csv", "add_staffnote", "change_staffnote", "view_staffnote")]


def _permissions(apps, wanted):
    Permission = apps.get_model("auth", "Permission")
    return [Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in wanted]


def groups_update(apps, schema_editor):
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    for name, wanted in (("Support", SUPPORT), ("Billing", BILLING)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*_permissions(apps, wanted))


def groups_revert(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, wanted in (("Support", SUPPORT), ("Billing", BILLING)):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, wanted))


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_subscription_billing_state'),
        ('backoffice', '0005_plan_move_permissions'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AlterModelOptions(
            name='supportaction',
            options={'default_permissions': (), 'managed': False, 'permissions': [('retry_provisioning_job', 'Can run a failed provisioning job again'), ('resend_set_password_email', 'Can send the set-password e-mail again'), ('expire_checkout_session', 'Can expire a pending checkout session at Stripe'), ('refresh_checkout_session', 'Can re-read a checkout session from Stripe and fulfil it'), ('fix_failed_setup', "Can correct a failed setup's domain or plan details and run it again"), ('mark_set_up_by_hand', 'Can record a failed setup as done by hand in the control panel'), ('run_provisioning_job_now', 'Can run a waiting provisioning job now'), ('export_csv', 'Can export a filtered list as CSV'), ('view_audit_log', "Can read the team's audit log")]},
        ),
        migrations.CreateModel(
            name='StaffNote',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('created_at', models.DateTimeField(auto_now_add=True, db_index=True)),
                ('updated_at', models.DateTimeField(auto_now=True)),
                ('author_name', models.CharField(max_length=150)),
                ('body', models.TextField(max_length=5000)),
                ('pinned', models.BooleanField(default=False)),
                ('author', models.ForeignKey(null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('customer', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='staff_notes', to='accounts.customer')),
            ],
            options={
                'ordering': ('-pinned', '-created_at', '-id'),
                'default_permissions': ('add', 'change', 'view'),
                'indexes': [models.Index(fields=['customer', '-pinned', '-created_at'], name='backoffice_note_customer')],
            },
        ),
        migrations.RunPython(groups_update, groups_revert),
    ]
