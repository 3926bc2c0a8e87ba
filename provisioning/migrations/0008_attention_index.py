"""The index behind the back office's "Needs attention" filters (backoffice/attention.py): provision jobs of one status,
newest first, so that "the newest 500 failed setups" reads 500 index entries however many jobs there are.

PostgreSQL only (SQLite is for development, where the table is small), built CONCURRENTLY so that a deployment does
not block the workers while a large table is indexed.
"""

from django.db import migrations

INDEXES = {
    "provisioning_job_provision_status_created":
        "provisioning_provisioningjob (status, created_at DESC) WHERE action = 'provision'",
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
        ("provisioning", "0007_email_to_index"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
