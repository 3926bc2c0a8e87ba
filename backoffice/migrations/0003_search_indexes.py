"""Indexes behind the back office's filters and searches on tables of other apps (and dj-stripe's).

PostgreSQL only (SQLite is for development, where the tables are small), built CONCURRENTLY so that a deployment does
not block checkouts while a large table is indexed. Plain SQL, outside the migration state, so the owning apps'
models and migrations stay as they are.
"""

from django.db import migrations

INDEXES = {
    # Search by e-mail: exact (`=` on lower(email)) and prefix (`LIKE 'jane@%'`) from one index.
    "backoffice_cs_email_lower": "checkout_sessions (lower(email) text_pattern_ops)",
    # Search by domain, the same way.
    "backoffice_cs_domain_lower": "checkout_sessions (lower(domain_info ->> 'value') text_pattern_ops)",
    # Each filter together with the list's order (newest first), so a filtered page is an index range scan.
    "backoffice_cs_status_created": "checkout_sessions (status, created_at DESC)",
    "backoffice_cs_product_created": "checkout_sessions (product_code, created_at DESC)",
    "backoffice_cs_cycle_created": "checkout_sessions (billing_cycle, created_at DESC)",
    # A session's Stripe events: the object id inside the event's payload.
    "backoffice_djstripe_event_object_id": "djstripe_event ((data #>> '{object,id}'))",
    # A session's webhook deliveries, including failed ones that never became an Event: the first checkout session
    # id in the raw body.
    "backoffice_djstripe_trigger_session_id":
        "djstripe_webhookeventtrigger ((substring(body, '\"(cs_(?:test|live)_[A-Za-z0-9]+)\"')))",
}


def indexes_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, target in INDEXES.items():
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {target}")


def indexes_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("backoffice", "0002_staff_groups"),
        ("checkout", "0001_initial"),
        ("djstripe", "0003_2_11"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
