"""Give generated orders everything a real paid order leaves behind, for scale tests of the back office:
`backoffice_generate_sessions --count N` first, then `backoffice_generate_related`.

For each completed session that has no subscription yet: its user, customer and membership (one per e-mail address),
subscription, hosting account, provisioning job and attempt (about 1 % failed, 1 % still retrying), three e-mails,
Stripe's `checkout.session.completed` event and its webhook delivery, the first invoice, and for about 1 % a refund;
every session (paid or not) gets its event. PostgreSQL only: each table is one INSERT ... SELECT over the sessions,
so a million orders take minutes, not hours.

Columns the statements below do not name get the model field's default (or NULL), so a field added later with a
default needs no change here; a new required field without a default stops the command with its name.
"""

import time

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, models, transaction

from accounts.models import Customer, CustomerMembership, Subscription, User
from billing.models import RefundRecord, SubscriptionInvoice
from provisioning.models import EmailNotification, HostingAccount, ProvisioningAttempt, ProvisioningJob

# The generated sessions only (backoffice_generate_sessions names them so), never an order someone really placed.
GENERATED = "s.stripe_session_id LIKE 'cs_test_gen%'"


def insert_select(model: type[models.Model], expressions: dict[str, str], source: str) -> int:
    """INSERT INTO the model's table the rows `SELECT <expressions> <source>`; other columns get their defaults.

    Rows that would break a unique constraint are skipped (ON CONFLICT DO NOTHING): generated e-mails and customer
    ids sometimes repeat, as real ones do."""
    columns, selects, params = [], [], []
    for field in model._meta.concrete_fields:
        column = field.column
        if column in expressions:
            columns.append(f'"{column}"')
            selects.append(expressions[column].replace("%", "%%"))  # SQL's modulo and LIKE, not placeholders
        elif field.primary_key and isinstance(field, models.AutoField):
            continue
        elif field.unique and field.has_default():
            # One default for every row would make all but the first a conflict, skipped without a word.
            raise CommandError(f"{model.__name__}.{field.name} is unique: name its value here")
        elif field.null and not field.has_default():
            continue
        elif (default := field.get_default()) is not None:  # a CharField without a default gives ""
            columns.append(f'"{column}"')
            selects.append("%s")
            params.append(field.get_db_prep_save(default, connection))
        else:
            raise CommandError(f"{model.__name__}.{field.name} is required and has no default: name it here")
    unknown = set(expressions) - {field.column for field in model._meta.concrete_fields}
    if unknown:
        raise CommandError(f"{model.__name__} has no column {sorted(unknown)}")
    sql = (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) SELECT {', '.join(selects)} {source.replace('%', '%%')} "
        "ON CONFLICT DO NOTHING"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


class Command(BaseCommand):
    help = "Generate the users, customers, subscriptions, jobs, e-mails, events and invoices of generated orders."

    def handle(self, *args, **options):
        if connection.vendor != "postgresql":
            raise CommandError("PostgreSQL only (INSERT ... SELECT with md5 and jsonb)")
        started = time.monotonic()
        for name, step in self._steps():
            began = time.monotonic()
            with transaction.atomic():
                made = step()
            self.stdout.write(f"{name}: {made:,} rows in {time.monotonic() - began:.1f} s")
        with connection.cursor() as cursor:
            for model in (
                User,
                Customer,
                CustomerMembership,
                Subscription,
                HostingAccount,
                ProvisioningJob,
                ProvisioningAttempt,
                EmailNotification,
                SubscriptionInvoice,
                RefundRecord,
            ):
                cursor.execute(f"ANALYZE {model._meta.db_table}")
            cursor.execute("ANALYZE djstripe_event")
            cursor.execute("ANALYZE djstripe_webhookeventtrigger")
        self.stdout.write(self.style.SUCCESS(f"done in {time.monotonic() - started:.1f} s"))

    def _steps(self):
        # New paid orders: completed generated sessions without their subscription yet.
        paid = (
            f"FROM checkout_sessions s WHERE {GENERATED} AND s.status = 'completed' AND NOT EXISTS "
            "(SELECT 1 FROM accounts_subscription x WHERE x.checkout_session_id = s.id)"
        )
        return [
            (
                "users",
                lambda: insert_select(
                    User,
                    {
                        "password": "'!generated'",
                        "is_superuser": "false",
                        "email": "s.email",
                        "full_name": "s.customer_name",
                        "is_staff": "false",
                        "is_active": "true",
                        "date_joined": "s.completed_at",
                    },
                    f"FROM (SELECT DISTINCT ON (lower(s.email)) s.* {paid} ORDER BY lower(s.email), s.created_at) s",
                ),
            ),
            (
                "customers",
                lambda: insert_select(
                    Customer,
                    {
                        "created_at": "s.completed_at",
                        "updated_at": "s.completed_at",
                        "name": "s.customer_name",
                        "email": "s.email",
                        "stripe_customer_id": "s.stripe_customer_id",
                    },
                    f"FROM (SELECT DISTINCT ON (lower(s.email)) s.* {paid} ORDER BY lower(s.email), s.created_at) s "
                    "WHERE NOT EXISTS (SELECT 1 FROM accounts_customer c WHERE lower(c.email) = lower(s.email))",
                ),
            ),
            (
                "memberships",
                lambda: insert_select(
                    CustomerMembership,
                    {
                        "created_at": "c.created_at",
                        "updated_at": "c.created_at",
                        "role": "'owner'",
                        "customer_id": "c.id",
                        "user_id": "u.id",
                    },
                    "FROM accounts_customer c JOIN accounts_user u ON lower(u.email) = lower(c.email) "
                    "WHERE u.password = '!generated' AND NOT EXISTS "
                    "(SELECT 1 FROM accounts_customermembership m WHERE m.customer_id = c.id)",
                ),
            ),
            (
                "subscriptions",
                lambda: insert_select(
                    Subscription,
                    {
                        "created_at": "s.completed_at",
                        "updated_at": "s.completed_at",
                        "stripe_subscription_id": "'sub_gen' || md5(s.id::text)",
                        "stripe_customer_id": "coalesce(c.stripe_customer_id, s.stripe_customer_id, '')",
                        "status": "'active'",
                        "billing_cycle": "s.billing_cycle",
                        "amount": "s.amount",
                        "currency": "s.currency",
                        "current_period_start": "s.completed_at",
                        "current_period_end": "s.completed_at + interval '30 days'",
                        "domain": "coalesce(s.domain_info->>'value', '')",
                        "checkout_session_id": "s.id",
                        "customer_id": "c.id",
                        "price_id": "s.price_id",
                        "product_id": "p.product_id",
                    },
                    f"FROM checkout_sessions s JOIN catalog_price p ON p.id = s.price_id "
                    f"JOIN accounts_customer c ON lower(c.email) = lower(s.email) "
                    f"WHERE {GENERATED} AND s.status = 'completed' AND NOT EXISTS "
                    "(SELECT 1 FROM accounts_subscription x WHERE x.checkout_session_id = s.id)",
                ),
            ),
            *self._per_subscription_steps(),
        ]

    def _per_subscription_steps(self):
        # Subscriptions of generated orders that have no job yet; about 1 % failed, 1 % retrying (by md5 of the id).
        fresh = (
            "FROM accounts_subscription sub JOIN checkout_sessions s ON s.id = sub.checkout_session_id "
            f"WHERE {GENERATED} AND NOT EXISTS "
            "(SELECT 1 FROM provisioning_provisioningjob j WHERE j.subscription_id = sub.id)"
        )
        bucket = "('x' || substr(md5(sub.id::text), 1, 4))::bit(16)::int % 100"
        status = f"CASE {bucket} WHEN 0 THEN 'failed' WHEN 1 THEN 'retrying' ELSE 'succeeded' END"
        return [
            (
                "hosting accounts",
                lambda: insert_select(
                    HostingAccount,
                    {
                        "created_at": "sub.created_at",
                        "updated_at": "sub.created_at",
                        "username": "'u' || substr(md5(sub.id::text), 1, 10)",
                        "server": "'web' || (sub.id % 12) || '.gen'",
                        "domain": "sub.domain",
                        "panel_reference": "'acct-' || sub.id",
                        "subscription_id": "sub.id",
                    },
                    fresh + f" AND {bucket} > 1",
                ),
            ),
            (
                "jobs",
                lambda: insert_select(
                    ProvisioningJob,
                    {
                        "created_at": "sub.created_at",
                        "updated_at": "sub.created_at",
                        "action": "'provision'",
                        "status": status,
                        "idempotency_key": "md5(sub.id::text || 'job')::uuid",
                        "backend": "'fake'",
                        "attempts": f"CASE {bucket} WHEN 0 THEN 5 WHEN 1 THEN 2 ELSE 1 END",
                        "max_attempts": "5",
                        "last_error": f"CASE WHEN {bucket} < 2 THEN 'control panel timed out' ELSE '' END",
                        "started_at": "sub.created_at",
                        "finished_at": f"CASE WHEN {bucket} = 1 THEN NULL ELSE sub.created_at + interval '20 seconds' END",
                        "next_attempt_at": f"CASE WHEN {bucket} = 1 THEN sub.created_at + interval '5 minutes' END",
                        "subscription_id": "sub.id",
                    },
                    fresh,
                ),
            ),
            (
                "attempts",
                lambda: insert_select(
                    ProvisioningAttempt,
                    {
                        "number": "n",
                        "started_at": "j.created_at",
                        "finished_at": "j.created_at + interval '20 seconds'",
                        "succeeded": "j.status = 'succeeded' AND n = j.attempts",
                        "error": "CASE WHEN j.status = 'succeeded' AND n = j.attempts THEN '' ELSE j.last_error END",
                        "job_id": "j.id",
                    },
                    "FROM provisioning_provisioningjob j CROSS JOIN LATERAL generate_series(1, j.attempts) n "
                    "WHERE j.backend = 'fake' AND NOT EXISTS "
                    "(SELECT 1 FROM provisioning_provisioningattempt a WHERE a.job_id = j.id)",
                ),
            ),
            (
                "e-mails",
                lambda: insert_select(
                    EmailNotification,
                    {
                        "created_at": "sub.created_at",
                        "updated_at": "sub.created_at",
                        "purpose": "purpose",
                        "to": "s.email",
                        "status": "'sent'",
                        "attempts": "1",
                        "sent_at": "sub.created_at",
                        "checkout_session_id": "s.id",
                    },
                    "FROM accounts_subscription sub JOIN checkout_sessions s ON s.id = sub.checkout_session_id "
                    "CROSS JOIN unnest(ARRAY['set_password', 'order_confirmation', 'service_ready']) purpose "
                    f"WHERE {GENERATED} AND NOT EXISTS (SELECT 1 FROM provisioning_emailnotification e "
                    "WHERE e.checkout_session_id = s.id)",
                ),
            ),
            (
                "invoices",
                lambda: insert_select(
                    SubscriptionInvoice,
                    {
                        "created_at": "sub.created_at",
                        "updated_at": "sub.created_at",
                        "stripe_invoice_id": "'in_gen' || md5(sub.id::text)",
                        "number": "'GEN-' || lpad(sub.id::text, 8, '0')",
                        "billing_reason": "'subscription_create'",
                        "status": "'paid'",
                        "amount_due": "sub.amount",
                        "amount_paid": "sub.amount",
                        "amount_remaining": "0",
                        "currency": "sub.currency",
                        "attempt_count": "1",
                        "paid_at": "sub.created_at",
                        "period_start": "sub.current_period_start",
                        "period_end": "sub.current_period_end",
                        "stripe_payment_intent_id": "'pi_gen' || md5(sub.id::text)",
                        "stripe_created": "sub.created_at",
                        "stripe_state_at": "sub.created_at",
                        "subscription_id": "sub.id",
                    },
                    "FROM accounts_subscription sub JOIN checkout_sessions s ON s.id = sub.checkout_session_id "
                    f"WHERE {GENERATED} AND NOT EXISTS "
                    "(SELECT 1 FROM billing_subscriptioninvoice i WHERE i.subscription_id = sub.id)",
                ),
            ),
            (
                "refunds",
                lambda: insert_select(
                    RefundRecord,
                    {
                        "created_at": "sub.created_at + interval '2 days'",
                        "updated_at": "sub.created_at + interval '2 days'",
                        "stripe_refund_id": "'re_gen' || md5(sub.id::text)",
                        "stripe_charge_id": "'ch_gen' || md5(sub.id::text)",
                        "stripe_payment_intent_id": "'pi_gen' || md5(sub.id::text)",
                        "amount": "sub.amount",
                        "currency": "sub.currency",
                        "status": "'succeeded'",
                        "reason": "'requested_by_customer'",
                        "charge_fully_refunded": "true",
                        "stripe_created": "sub.created_at + interval '2 days'",
                        "subscription_id": "sub.id",
                    },
                    "FROM accounts_subscription sub JOIN checkout_sessions s ON s.id = sub.checkout_session_id "
                    f"WHERE {GENERATED} AND sub.id % 100 = 7 AND NOT EXISTS "
                    "(SELECT 1 FROM billing_refundrecord r WHERE r.subscription_id = sub.id)",
                ),
            ),
            ("events", self._events),
            ("webhook deliveries", self._deliveries),
        ]

    @staticmethod
    def _events() -> int:
        # dj-stripe's tables, outside our models' defaults: written as the webhook handler's rows look.
        with connection.cursor() as cursor:
            cursor.execute(f"""
                INSERT INTO djstripe_event (djstripe_created, djstripe_updated, stripe_data, id, livemode, created,
                    metadata, api_version, data, request_id, idempotency_key, type)
                SELECT s.updated_at, s.updated_at, '{{}}'::jsonb, 'evt_gen' || md5(s.id::text), false, s.updated_at,
                    '{{}}'::jsonb, '2025-03-31.basil',
                    jsonb_build_object('object', jsonb_build_object('id', s.stripe_session_id,
                        'object', 'checkout.session', 'customer', s.stripe_customer_id,
                        'payment_status', CASE WHEN s.status = 'completed' THEN 'paid' ELSE 'unpaid' END)),
                    '', '', CASE s.status WHEN 'completed' THEN 'checkout.session.completed'
                                          WHEN 'expired' THEN 'checkout.session.expired'
                                          ELSE 'checkout.session.async_payment_failed' END
                FROM checkout_sessions s
                WHERE {GENERATED} AND s.status <> 'pending'
                ON CONFLICT DO NOTHING""")
            return cursor.rowcount

    @staticmethod
    def _deliveries() -> int:
        with connection.cursor() as cursor:
            cursor.execute("""
                INSERT INTO djstripe_webhookeventtrigger (remote_ip, headers, body, valid, processed, exception,
                    traceback, djstripe_version, created, updated, event_id)
                SELECT '127.0.0.1', '{}'::jsonb,
                    jsonb_build_object('id', e.id, 'type', e.type, 'data', e.data)::text,
                    true, true, '', '', '2.10.3', e.created, e.created, e.id
                FROM djstripe_event e
                WHERE e.id LIKE 'evt_gen%' AND NOT EXISTS
                    (SELECT 1 FROM djstripe_webhookeventtrigger t WHERE t.event_id = e.id)""")
            return cursor.rowcount
