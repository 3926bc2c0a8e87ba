"""Least privilege in the database: `manage.py db_app_role`, run by the owner (the role migrations run as), makes a role
that reads and writes rows and cannot change the schema, including tables that later migrations create.

A fresh database owned by a fresh owner role (not a superuser: it may create roles, as a managed PostgreSQL's admin
user may); the commands run as real processes against it, and the app role's connection is plain psycopg."""

import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import errors

ROOT = Path(__file__).resolve().parents[2]
DATABASE_URL = os.environ.get("DATABASE_URL", "")

pytestmark = [
    pytest.mark.postgres,
    pytest.mark.skipif(not DATABASE_URL.startswith("postgres"), reason="needs PostgreSQL (DATABASE_URL)"),
]


def _server(url: str) -> dict:
    info = psycopg.conninfo.conninfo_to_dict(url)
    return {key: info[key] for key in ("host", "port") if key in info}


@pytest.fixture
def fresh_database():
    """A new database owned by a new owner role; both dropped afterwards with the app role."""
    suffix = uuid.uuid4().hex[:10]
    names = {"database": f"h3_role_db_{suffix}", "owner": f"h3_owner_{suffix}", "app": f"h3_app_{suffix}"}
    server = _server(DATABASE_URL)
    admin_url = DATABASE_URL
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE \"{names['owner']}\" LOGIN CREATEROLE PASSWORD 'owner-pw'")
        admin.execute(f'CREATE DATABASE "{names["database"]}" OWNER "{names["owner"]}"')
        # PostgreSQL 15: the public schema belongs to pg_database_owner, i.e. our owner role.
    yield {**names, **server}
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{names["database"]}" WITH (FORCE)')
        for role in (names["app"], names["owner"]):
            admin.execute(f'DROP ROLE IF EXISTS "{role}"')


def _url(db: dict, role: str, password: str) -> str:
    return f"postgres://{role}:{password}@{db.get('host', '127.0.0.1')}:{db.get('port', 5432)}/{db['database']}"


def manage(db: dict, *args: str, **env) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _url(db, db["owner"], "owner-pw"),
        **env,
    }
    environment.pop("REDIS_URL", None)
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def connect_as_app(db: dict):
    return psycopg.connect(_url(db, db["app"], "app-pw-1"), autocommit=True)


def test_the_app_role_writes_rows_and_cannot_change_the_schema(fresh_database):
    db = fresh_database
    manage(db, "migrate", "contenttypes", "--noinput")
    manage(db, "db_app_role", "--role", db["app"], "--password-env", "TEST_APP_PASSWORD", TEST_APP_PASSWORD="app-pw-1")

    with connect_as_app(db) as app:
        row_id = app.execute(
            "INSERT INTO django_content_type (app_label, model) VALUES ('x', 'y') RETURNING id"
        ).fetchone()[0]
        app.execute("UPDATE django_content_type SET model = 'z' WHERE id = %s", [row_id])
        assert app.execute("SELECT model FROM django_content_type WHERE id = %s", [row_id]).fetchone() == ("z",)
        app.execute("DELETE FROM django_content_type WHERE id = %s", [row_id])

        refused = {}
        for name, statement in {
            "create table": "CREATE TABLE mine (id int)",
            "alter table": "ALTER TABLE django_content_type ADD COLUMN extra int",
            "drop table": "DROP TABLE django_content_type",
            "truncate": "TRUNCATE django_content_type",
            "create index": "CREATE INDEX ON django_content_type (model)",
            "create role": "CREATE ROLE intruder",
        }.items():
            try:
                app.execute(statement)
                refused[name] = False
            except errors.InsufficientPrivilege:
                refused[name] = True
    assert refused == dict.fromkeys(refused, True), refused


def test_tables_a_later_migration_creates_are_usable_and_the_command_is_idempotent(fresh_database):
    db = fresh_database
    manage(db, "migrate", "contenttypes", "--noinput")
    manage(db, "db_app_role", "--role", db["app"], "--password-env", "TEST_APP_PASSWORD", TEST_APP_PASSWORD="app-pw-1")

    manage(db, "migrate", "auth", "--noinput")  # new tables and sequences, created by the owner
    again = manage(
        db, "db_app_role", "--role", db["app"], "--password-env", "TEST_APP_PASSWORD", TEST_APP_PASSWORD="app-pw-1"
    )

    with connect_as_app(db) as app:
        group_id = app.execute("INSERT INTO auth_group (name) VALUES ('support') RETURNING id").fetchone()[0]
        app.execute("DELETE FROM auth_group WHERE id = %s", [group_id])
        with pytest.raises(errors.InsufficientPrivilege):
            app.execute("ALTER TABLE auth_group ADD COLUMN extra int")
    assert "cannot change the schema" in again.stdout


def test_the_command_refuses_to_run_without_a_password(fresh_database):
    db = fresh_database
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": _url(db, db["owner"], "owner-pw"),
        "DATABASE_APP_PASSWORD": "",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "db_app_role", "--role", db["app"]],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode != 0 and "DATABASE_APP_PASSWORD" in result.stderr
