"""Plan moves (catalog.PlanMove): catalog managers edit them like the rest of the catalog; support and billing read
them (as backoffice.roles says)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

MANAGERS = [("catalog", f"{action}_planmove") for action in ("add", "change", "view")]
READERS = [("catalog", "view_planmove")]


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
    for name, wanted in (("Catalog managers", MANAGERS), ("Support", READERS), ("Billing", READERS)):
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*_permissions(apps, wanted))


def groups_revert(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    for name, wanted in (("Catalog managers", MANAGERS), ("Support", READERS), ("Billing", READERS)):
        group = Group.objects.filter(name=name).first()
        if group is not None:
            group.permissions.remove(*_permissions(apps, wanted))


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0004_billing_group"),
        ("catalog", "0002_plan_moves"),
    ]

    operations = [migrations.RunPython(groups_update, groups_revert)]
