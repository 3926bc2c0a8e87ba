"""The database's connections killed (a failover, a restart, pg_terminate_backend): the request that was using one
answers 503 with a retry hint, in the API's JSON or as a page for people, never a 500 or a traceback."""

import psycopg
import pytest
from django.db import connection

from tests.checkout.conftest import CREATE_URL, order
from tests.conftest import database_is_postgres

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not database_is_postgres(), reason="kills PostgreSQL connections; CI runs it on PostgreSQL"),
]


def kill_our_connection() -> None:
    """Terminate the backend behind Django's connection from another connection, as an operator or failover does."""
    connection.ensure_connection()
    pid = connection.connection.info.backend_pid
    settings = connection.settings_dict
    with psycopg.connect(
        host=settings["HOST"], port=settings["PORT"], user=settings["USER"], dbname=settings["NAME"], autocommit=True
    ) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", [pid])


@pytest.fixture
def dead_connection():
    kill_our_connection()
    yield
    connection.close()  # the test client keeps the connection across requests; the next test needs a live one


def assert_unavailable(response):
    assert response.status_code == 503, response.content[:500]
    assert response["Retry-After"] == "5"


def test_create_session_on_a_killed_connection_is_a_503_with_retry_after(api, dead_connection):
    response = api.post(CREATE_URL, order(), format="json")

    assert_unavailable(response)
    assert response.json()["code"] == "service_unavailable"


def test_reading_a_session_on_a_killed_connection_is_a_503_with_retry_after(api, dead_connection):
    response = api.get("/api/checkout/session/cs_test_whatever")

    assert_unavailable(response)
    assert response.json()["code"] == "service_unavailable"


def test_a_staff_page_on_a_killed_connection_is_a_503_page_not_a_debug_page(client, admin_user, settings):
    settings.DEBUG = True  # make run's setting: the debug page is what staff saw
    client.force_login(admin_user)
    kill_our_connection()
    try:
        response = client.get("/admin/checkout/checkoutsession/")
    finally:
        connection.close()

    assert_unavailable(response)
    assert b"Busy for a moment" in response.content
    assert b"Traceback" not in response.content


def test_after_the_blip_the_next_request_works_again(api, catalog, stripe_sandbox):
    kill_our_connection()
    assert api.get("/api/checkout/session/cs_test_whatever").status_code == 503
    connection.close_if_unusable_or_obsolete()  # what Django does at the start of every request outside the test client

    assert api.get("/api/checkout/session/cs_test_whatever").status_code == 404
