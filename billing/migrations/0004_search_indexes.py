"""Indexes behind the back office's search (backoffice/search.py) on our invoices and refunds: exact and prefix (`LIKE 'x%'`) lookups of
Stripe's invoice (in_), payment intent (pi_) and charge (ch_) ids, each served by a pattern-ops index whatever the database's collation.

PostgreSQL only (SQLite is for development, where the tables are small), built CONCURRENTLY so that a deployment does
not block Stripe's events while a large table is indexed. Plain SQL, outside the migration state: the expressions
(lower(), the last word of a name, the domain of an e-mail address) are written exactly as the search's queries
produce them, which the planner needs to match them.
"""

from django.db import migrations

INDEXES = {
    "billing_invoice_stripe_prefix": "billing_subscriptioninvoice (stripe_invoice_id varchar_pattern_ops)",
    "billing_invoice_intent_prefix": "billing_subscriptioninvoice (stripe_payment_intent_id varchar_pattern_ops)",
    "billing_refund_charge_prefix": "billing_refundrecord (stripe_charge_id varchar_pattern_ops)",
    "billing_refund_intent_prefix": "billing_refundrecord (stripe_payment_intent_id varchar_pattern_ops)",
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
        ("billing", "0003_plan_changes"),
    ]

    operations = [migrations.RunPython(indexes_create, indexes_drop)]
