"""Creates or updates the PostgreSQL role the web and worker processes connect as: rows yes, schema no.

Run it as the owner role, the one `migrate` runs as (compose's `migrate` service does, after migrating). It is
idempotent: run it after every deploy. What the role gets:

- LOGIN with the password given (never on the command line: an environment variable holds it);
- CONNECT on this database, USAGE on the schema, no CREATE on it (PUBLIC's CREATE on `public` is revoked too, which
  PostgreSQL before 15 grants by default);
- SELECT, INSERT, UPDATE, DELETE on every table there now, USAGE and SELECT on every sequence;
- the same, through ALTER DEFAULT PRIVILEGES, on every table and sequence the owner creates later (the next
  migrations), so a deploy never has to re-run this to keep the app working;
- no TRUNCATE, REFERENCES or TRIGGER, and nothing it could own: ALTER, DROP, CREATE TABLE are refused.
"""

import os

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from psycopg import sql


def db_app_role_statements(*, role: str, password: str, owner: str, database: str, schema: str) -> list[sql.Composed]:
    role_id, owner_id, schema_id = sql.Identifier(role), sql.Identifier(owner), sql.Identifier(schema)
    return [
        sql.SQL("""DO $do$ BEGIN
                   IF NOT EXISTS (SELECT FROM pg_catalog.pg_roles WHERE rolname = {role_name}) THEN
                     CREATE ROLE {role} LOGIN;
                   END IF;
                 END $do$""").format(role_name=sql.Literal(role), role=role_id),
        # Only what an owner with CREATEROLE (a managed database's admin user) may set; a role made here is never a
        # superuser, and handle() refuses one that somehow is.
        sql.SQL("ALTER ROLE {} WITH LOGIN NOCREATEDB NOCREATEROLE PASSWORD {}").format(role_id, sql.Literal(password)),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(sql.Identifier(database), role_id),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM PUBLIC").format(schema_id),
        sql.SQL("REVOKE CREATE ON SCHEMA {} FROM {}").format(schema_id, role_id),
        sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(schema_id, role_id),
        sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {} TO {}").format(schema_id, role_id),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {} TO {}").format(schema_id, role_id),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {}"
        ).format(owner_id, schema_id, role_id),
        sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA {} GRANT USAGE, SELECT ON SEQUENCES TO {}").format(
            owner_id, schema_id, role_id
        ),
    ]


class Command(BaseCommand):
    help = (
        "Create or update the database role the web and workers use: it reads and writes rows, and cannot change "
        "the schema. Run as the owner role (the one migrations run as); idempotent."
    )

    def add_arguments(self, parser):
        parser.add_argument("--role", default="checkout_app", help="Name of the role (default: checkout_app).")
        parser.add_argument(
            "--password-env",
            default=None,
            help="Environment variable holding its password (default: the DATABASE_APP_PASSWORD "
            "setting, read from the variable of that name).",
        )
        parser.add_argument("--schema", default="public")

    def handle(self, *args, role, password_env, schema, **options):
        if connection.vendor != "postgresql":
            raise CommandError(f"db_app_role needs PostgreSQL; this database is {connection.vendor}.")
        password = os.environ.get(password_env, "") if password_env else settings.DATABASE_APP_PASSWORD
        if not password:
            raise CommandError(f"Set {password_env or 'DATABASE_APP_PASSWORD'} to the password the role should have.")
        with connection.cursor() as cursor:
            cursor.execute("SELECT current_user, current_database()")
            owner, database = cursor.fetchone()
        if owner == role:
            raise CommandError(f"Run this as the owner role (the one migrations run as), not as {role}.")
        statements = db_app_role_statements(role=role, password=password, owner=owner, database=database, schema=schema)
        # All or nothing; psycopg's own cursor, for its SQL composition.
        with transaction.atomic(), connection.connection.cursor() as cursor:
            for statement in statements:
                cursor.execute(statement)
                cursor.execute(
                    "SELECT rolsuper OR rolbypassrls OR rolreplication FROM pg_catalog.pg_roles WHERE rolname = %s",
                    [role],
                )
                if cursor.fetchone()[0]:
                    raise CommandError(f"{role} is a superuser or bypasses row security: not an application role.")
        self.stdout.write(
            f"Role {role} may read and write the rows of {database}.{schema} (owner {owner}); it "
            "cannot change the schema."
        )
