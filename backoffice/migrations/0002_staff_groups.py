"""The two staff groups with exactly the permissions in backoffice.roles (as they were when this was written)."""

from django.contrib.auth.management import create_permissions
from django.db import migrations

ROLE_PERMISSIONS = {
    "Catalog managers": [
        *[("catalog", f"{action}_{model}") for model in ("product", "price", "coupon")
          for action in ("add", "change", "view")],
        ("checkout", "view_checkoutsession"),
    ],
    "Support": [
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
        ("backoffice", "retry_provisioning_job"),
        ("backoffice", "resend_set_password_email"),
        ("backoffice", "expire_checkout_session"),
        ("backoffice", "refresh_checkout_session"),
    ],
}


def groups_create(apps, schema_editor):
    # On a fresh database the permissions are only made by post_migrate, after every migration: make them now.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0, using=schema_editor.connection.alias)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for name, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        permissions = []
        for app_label, codename in wanted:
            permissions.append(Permission.objects.get(content_type__app_label=app_label, codename=codename))
        group.permissions.set(permissions)


def groups_delete(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name__in=ROLE_PERMISSIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("backoffice", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        ("accounts", "0002_customer_customermembership_customer_users_and_more"),
        ("catalog", "0001_initial"),
        ("checkout", "0001_initial"),
        ("provisioning", "0001_initial"),
    ]

    operations = [migrations.RunPython(groups_create, groups_delete)]
