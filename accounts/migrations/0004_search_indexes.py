"""Indexes behind the back office's search (backoffice/search.py) on customers, users and subscriptions: exact and prefix (`LIKE 'x%'`) lookups of
names, e-mail addresses and their domains, domains and Stripe ids, each served by a pattern-ops index whatever the database's collation.

PostgreSQL only (SQLite is for development, where the tables are small), built CONCURRENTLY so that a deployment does
not block sign-ups and renewals while a large table is indexed. Plain SQL, outside the migration state: the expressions
(lower(), the last word of a name, the domain of an e-mail address) are written exactly as the search's queries
produce them, which the planner needs to match them.
"""

from django.db import migrations

INDEXES = {
    # A name's start ("jane sm") and its last word's start ("smi", a surname).
    "accounts_customer_name_prefix": "accounts_customer (lower(name) text_pattern_ops)",
    "accounts_customer_name_last": r"accounts_customer (lower(regexp_replace(name, '^.*\s', '')) text_pattern_ops)",
    # An address's start (accounts_customer_email_ci serves `=` alone under a collation other than C), its domain.
    "accounts_customer_email_prefix": "accounts_customer (lower(email) text_pattern_ops)",
    "accounts_customer_email_domain": "accounts_customer (lower(split_part(email, '@', 2)) text_pattern_ops)",
    # Stripe ids: their unique indexes serve `=`; these serve the start of one.
    "accounts_customer_stripe_prefix": "accounts_customer (stripe_customer_id varchar_pattern_ops)",
    "accounts_user_name_prefix": "accounts_user (lower(full_name) text_pattern_ops)",
    "accounts_user_name_last": r"accounts_user (lower(regexp_replace(full_name, '^.*\s', '')) text_pattern_ops)",
    "accounts_user_email_prefix": "accounts_user (lower(email) text_pattern_ops)",
    "accounts_sub_stripe_prefix": "accounts_subscription (stripe_subscription_id varchar_pattern_ops)",
    "accounts_sub_customer_prefix": "accounts_subscription (stripe_customer_id varchar_pattern_ops)",
    # The service's domain, exact or its start, in any case.
    "accounts_sub_domain_prefix": "accounts_subscription (lower(domain) text_pattern_ops)",
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
        ("accounts", "0003_subscription_billing_state"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
