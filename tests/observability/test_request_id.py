"""The request id: taken from the proxy when sane, made up otherwise, echoed, and on every log line of the request."""

import logging
import re

import pytest

from core.observability.request_id import request_id_sanitize

pytestmark = pytest.mark.django_db

OUR_ID = re.compile(r"[0-9a-f]{32}")


def test_the_proxys_request_id_is_echoed_and_on_the_requests_log_lines(client, log_output):
    response = client.get("/api/no-such-endpoint/", HTTP_X_REQUEST_ID="7f3a9c0e1b2d4e5f8a6b7c8d9e0f1a2b")

    assert response.status_code == 404
    assert response["X-Request-ID"] == "7f3a9c0e1b2d4e5f8a6b7c8d9e0f1a2b"
    # Django's own line about the 404 is written after the middleware chain returned: it still carries the id
    [record] = [r for r in log_output.records() if r["logger"] == "django.request"]
    assert record["request_id"] == "7f3a9c0e1b2d4e5f8a6b7c8d9e0f1a2b"


@pytest.mark.parametrize(
    "sent",
    [
        "a" * 65,  # too long
        "abc def",  # a space
        "abc\nERROR forged line",  # a line break that would forge a log line
        'abc"}',  # a quote that would break out of a JSON field
        "ünïcode",
        "",
    ],
)
def test_an_insane_request_id_is_replaced_by_one_of_ours(client, sent):
    response = client.get("/api/health/", HTTP_X_REQUEST_ID=sent)

    assert OUR_ID.fullmatch(response["X-Request-ID"])


def test_without_a_request_id_each_request_gets_its_own(client):
    first = client.get("/api/health/")["X-Request-ID"]
    second = client.get("/api/health/")["X-Request-ID"]

    assert OUR_ID.fullmatch(first) and OUR_ID.fullmatch(second) and first != second


def test_a_uuid_with_dashes_and_64_characters_are_accepted():
    assert request_id_sanitize("0b6f1c3e-5d7a-4f43-9a59-6c1f7f4c2a10") == "0b6f1c3e-5d7a-4f43-9a59-6c1f7f4c2a10"
    assert request_id_sanitize("A" * 64) == "A" * 64


def test_a_log_line_outside_any_request_says_so(log_output):
    logging.getLogger("checkout.test").warning("between requests")

    [record] = log_output.records()
    assert record["request_id"] == "-"


def test_a_json_line_carries_level_logger_message_request_id_and_the_traceback(client, log_output):
    logger = logging.getLogger("checkout.test")
    try:
        raise ValueError("the card network is down")
    except ValueError:
        logger.exception("Charging %s failed", "cs_test_1")

    [record] = log_output.records()
    assert record["level"] == "ERROR"
    assert record["logger"] == "checkout.test"
    assert record["message"] == "Charging cs_test_1 failed"
    assert record["request_id"] == "-"
    assert "timestamp" in record
    assert "Traceback (most recent call last)" in record["exc_info"]
    assert "ValueError: the card network is down" in record["exc_info"]


def test_the_plain_format_names_the_request_id_too(client, log_output):
    log_output.configure("plain")

    client.get("/api/nothing-here/", HTTP_X_REQUEST_ID="plain-123")

    assert "WARNING django.request [plain-123] Not Found: /api/nothing-here/" in log_output.text()
