"""Billing's staff permissions: the Support group may cancel subscriptions and suspend accounts and reads the billing
records; a new Billing group may also refund and terminate (as backoffice.roles said when this was written)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

BILLING_READS = [
    ("billing", "view_subscriptioninvoice"),
    ("billing", "view_refundrecord"),
    ("billing", "view_billingaction"),
]
SUPPORT_ADDED = [*BILLING_READS, ("billing", "cancel_subscription"), ("billing", "suspend_account")]
BILLING = [
    ("checkout", "view_checkoutsession"),
    ("accounts", "view_user"),
    ("accounts", "view_customer"),
    ("accounts", "view_customermembership"),
    ("accounts", "view_subscription"),
    ("provisioning", "view_provisioningjob"),
    ("provisioning", "view_provisioningattempt"),
    ("provisioning", "view_hostingaccount"),
    ("provisioning", "view_emailnotification"),
    ("catalog", "view_product"),
    ("catalog", "view_price"),
    ("catalog", "view_coupon"),
    *BILLING_READS,
    ("billing", "cancel_subscription"),
    ("billing", "suspend_account"),
    ("billing", "refund_payment"),
    ("billing", "terminate_account"),
]


def _permissions(apps, wanted):
    Permission = apps.get_model("auth", "Permission")
    return [Permission.objects.get(content_type__app_label=app_label, codename=codename)
            for app_label, codename in wanted]


def groups_update(apps, schema_editor):
    # On a fresh database the permissions are only made by post_migrate, after every migration: make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    support, _ = Group.objects.get_or_create(name="Support")
    # Added, not set: whatever else someone gave Support by hand stays.
    support.permissions.add(*_permissions(apps, SUPPORT_ADDED))
    billing, _ = Group.objects.get_or_create(name="Billing")
    billing.permissions.set(_permissions(apps, BILLING))


def groups_revert(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Group.objects.filter(name="Billing").delete()
    support = Group.objects.filter(name="Support").first()
    if support is not None:
        support.permissions.remove(*_permissions(apps, SUPPORT_ADDED))


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0003_search_indexes"),
        ("billing", "0001_initial"),
        ("provisioning", "0002_billing_actions_and_account_status"),
    ]

    operations = [migrations.RunPython(groups_update, groups_revert)]
