"""The subscription list filtered to those that cancel at the end of their period: a partial index in the list's order
(newest first), so the filtered page and its capped count read only those rows, not a million others.

PostgreSQL only, built CONCURRENTLY, as 0004_search_indexes.
"""

from django.db import migrations

INDEXES = {
    "accounts_sub_cancelling": "accounts_subscription (id DESC) WHERE cancel_at_period_end",
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
        ("accounts", "0004_search_indexes"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
