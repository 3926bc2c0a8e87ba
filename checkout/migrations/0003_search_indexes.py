"""Indexes behind the back office's search (backoffice/search.py) on checkout sessions (orders): exact and prefix (`LIKE 'x%'`) lookups of
the buyer's name, the domain of e-mail addresses and Stripe ids (the e-mail address and the order's domain have theirs in backoffice.0003), each served by a pattern-ops index whatever the database's collation.

PostgreSQL only (SQLite is for development, where the tables are small), built CONCURRENTLY so that a deployment does
not block checkouts while a large table is indexed. Plain SQL, outside the migration state: the expressions
(lower(), the last word of a name, the domain of an e-mail address) are written exactly as the search's queries
produce them, which the planner needs to match them.
"""

from django.db import migrations

INDEXES = {
    "checkout_cs_name_prefix": "checkout_sessions (lower(customer_name) text_pattern_ops)",
    "checkout_cs_name_last": r"checkout_sessions (lower(regexp_replace(customer_name, '^.*\s', '')) text_pattern_ops)",
    "checkout_cs_email_domain": "checkout_sessions (lower(split_part(email, '@', 2)) text_pattern_ops)",
    "checkout_cs_stripe_session_prefix": "checkout_sessions (stripe_session_id varchar_pattern_ops)",
    "checkout_cs_stripe_customer_prefix": "checkout_sessions (stripe_customer_id varchar_pattern_ops)",
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
        ("checkout", "0002_idempotency_key"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
