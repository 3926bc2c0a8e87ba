"""The staff roles: which permissions each group holds. Read by the data migration that creates the groups and by
the tests that prove each group can do its work and nothing else."""

CATALOG_MANAGERS = "Catalog managers"
SUPPORT = "Support"
BILLING = "Billing"

# What support needs to read to answer a customer: orders, people, subscriptions, jobs, e-mails, billing records.
_SUPPORT_READS = [
    ("checkout", "view_checkoutsession"),
    ("accounts", "view_user"),
    ("accounts", "view_customer"),
    ("accounts", "view_customermembership"),
    ("accounts", "view_subscription"),
    ("provisioning", "view_provisioningjob"),
    ("provisioning", "view_provisioningattempt"),
    ("provisioning", "view_hostingaccount"),
    ("provisioning", "view_emailnotification"),
    # Support answers "what does this plan cost": it reads the catalog, never edits it.
    ("catalog", "view_product"),
    ("catalog", "view_price"),
    ("catalog", "view_coupon"),
    ("catalog", "view_planmove"),
    ("billing", "view_subscriptioninvoice"),
    ("billing", "view_refundrecord"),
    ("billing", "view_billingaction"),
    ("backoffice", "view_staffnote"),
]

# (app_label, codename). No delete anywhere: prices and products that sessions used are protected, and switching
# something off (active) is how catalog staff retire it.
ROLE_PERMISSIONS: dict[str, list[tuple[str, str]]] = {
    CATALOG_MANAGERS: [
        *[
            ("catalog", f"{action}_{model}")
            for model in ("product", "price", "coupon", "planmove")
            for action in ("add", "change", "view")
        ],
        ("checkout", "view_checkoutsession"),
    ],
    SUPPORT: [
        *_SUPPORT_READS,
        ("backoffice", "retry_provisioning_job"),
        ("backoffice", "resend_set_password_email"),
        ("backoffice", "expire_checkout_session"),
        ("backoffice", "refresh_checkout_session"),
        ("backoffice", "fix_failed_setup"),
        ("backoffice", "mark_set_up_by_hand"),
        ("backoffice", "run_provisioning_job_now"),
        ("backoffice", "export_csv"),
        ("backoffice", "add_staffnote"),
        ("backoffice", "change_staffnote"),
        # Cancelling and suspending are everyday support; money back and deleting a customer's data are not.
        ("billing", "cancel_subscription"),
        ("billing", "suspend_account"),
    ],
    BILLING: [
        *_SUPPORT_READS,
        ("billing", "cancel_subscription"),
        ("billing", "suspend_account"),
        ("billing", "refund_payment"),
        ("billing", "terminate_account"),
        ("backoffice", "export_csv"),
        ("backoffice", "add_staffnote"),
        ("backoffice", "change_staffnote"),
    ],
}


def staff_groups_sync() -> None:
    """Create the groups (or put their permissions back) as ROLE_PERMISSIONS says; safe to run any number of times.

    The data migration did this on deployment; this is for a database whose rows were flushed (tests with
    transactions) or whose groups someone edited by hand.
    """
    from django.apps import apps
    from django.contrib.auth.management import create_permissions
    from django.contrib.auth.models import Group, Permission
    from django.contrib.contenttypes.management import create_contenttypes

    # A flush without post_migrate leaves no permissions at all: make them as migrate would (the content type cache
    # may still hold the ids of before the flush).
    from django.contrib.contenttypes.models import ContentType
    from django.db.models import Q

    ContentType.objects.clear_cache()
    for app_config in apps.get_app_configs():
        create_contenttypes(app_config, verbosity=0)
        create_permissions(app_config, verbosity=0)
    for name, wanted in ROLE_PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=name)
        query = Q(pk__in=[])
        for app_label, codename in wanted:
            query |= Q(content_type__app_label=app_label, codename=codename)
        permissions = list(Permission.objects.filter(query))
        if len(permissions) != len(wanted):
            found = {(p.content_type.app_label, p.codename) for p in permissions}
            raise LookupError(f"missing permissions for {name}: {sorted(set(wanted) - found)}; run migrate")
        group.permissions.set(permissions)
