"""An index behind the back office's dashboard (backoffice.selectors.dashboard_figures): the last 30 days' orders per
day and status, and the completed ones' revenue per product, read as an index-only scan of one `created_at` range
instead of a sequential scan of the whole table (505 ms at 500,000 orders without it).

The INCLUDE columns are every column those two queries read, so the heap is not visited (once vacuum has marked the
pages all-visible, which autovacuum does). PostgreSQL only, built CONCURRENTLY so that a deployment does not block
checkouts while a large table is indexed; plain SQL outside the migration state, as in 0003.
"""

from django.db import migrations

NAME = "checkout_cs_created_dashboard"
TARGET = "checkout_sessions (created_at) INCLUDE (status, product_code, currency, amount, amount_discount)"


def index_create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {NAME} ON {TARGET}")


def index_drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {NAME}")


class Migration(migrations.Migration):
    atomic = False
    dependencies = [
        ("checkout", "0003_search_indexes"),
    ]

    operations = [
        migrations.RunPython(index_create, index_drop, elidable=False),
    ]
