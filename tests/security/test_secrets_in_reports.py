"""Secrets stay out of log lines and error reports (the debug page and the error e-mail are drawn by the same
reporter): the Stripe key, a webhook secret, the control panel's HMAC secret, Django's key and the password in a
connection URL, whether they come in a message, an exception's text, a request's META or a frame's variables."""

import io
import logging
import sys

import pytest
from django.conf import settings
from django.core import mail
from django.test import RequestFactory
from django.utils.log import AdminEmailHandler
from django.views.debug import get_exception_reporter_class
from djstripe.models.api import get_api_key_details_by_prefix

from core.security import SecretsLogFilter

WEBHOOK_SECRET = "whsec_" + "W3bh00kS3cr3t" * 3
PROVISIONING_SECRET = "hmac-" + "Pr0v1s10n1ngS3cr3t" * 2
DATABASE_PASSWORD = "Db-Pa55word-" + "x" * 12
DATABASE_URL = f"postgres://checkout:{DATABASE_PASSWORD}@db.internal:5432/checkout"


@pytest.fixture
def secrets(settings):
    settings.PROVISIONING_HTTP_SECRET = PROVISIONING_SECRET
    settings.CELERY_BROKER_URL = f"redis://:{DATABASE_PASSWORD}@redis.internal:6379/0"
    return [settings.STRIPE_SECRET_KEY, WEBHOOK_SECRET, PROVISIONING_SECRET, settings.SECRET_KEY, DATABASE_PASSWORD]


@pytest.fixture
def console_output():
    """What the console handler that settings.LOGGING configured writes, as it would reach docker logs."""
    handler = next(h for h in logging.getLogger().handlers if any(isinstance(f, SecretsLogFilter) for f in h.filters))
    stream = io.StringIO()
    previous = handler.setStream(stream)
    yield stream
    handler.setStream(previous)


def leaked(text: str, secrets: list[str]) -> list[str]:
    return [secret[:12] for secret in secrets if secret in text]


def test_every_handler_the_settings_configure_masks_secrets():
    assert all("secrets" in handler.get("filters", []) for handler in settings.LOGGING["handlers"].values())


def test_log_lines_mask_secrets_in_messages_and_tracebacks(console_output, secrets):
    logger = logging.getLogger("tests.security")
    logger.warning("Calling Stripe with %s", settings.STRIPE_SECRET_KEY)
    logger.warning(
        "Endpoint secret %s, panel secret %s, database %s", WEBHOOK_SECRET, PROVISIONING_SECRET, DATABASE_URL
    )
    try:
        # dj-stripe names the whole key in its error when a key is malformed.
        get_api_key_details_by_prefix(settings.STRIPE_SECRET_KEY + "!")
    except Exception:
        logger.exception("dj-stripe refused the key")

    output = console_output.getvalue()

    assert "Calling Stripe with ********************" in output
    assert "dj-stripe refused the key" in output and "InvalidStripeAPIKey" in output
    assert "postgres://checkout:********************@db.internal" in output
    assert leaked(output, secrets) == []


def _report(request, *, debug: bool, settings) -> tuple[str, str]:
    settings.DEBUG = debug
    api_key = settings.STRIPE_SECRET_KEY  # noqa: F841 (a frame variable the report lists)
    endpoint_secret = WEBHOOK_SECRET  # noqa: F841
    connection = {"url": DATABASE_URL}  # noqa: F841 (named like nothing secret; its value still is)
    try:
        raise RuntimeError(f"Stripe refused {settings.STRIPE_SECRET_KEY} for {PROVISIONING_SECRET}")
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        return reporter.get_traceback_html(), reporter.get_traceback_text()


@pytest.mark.parametrize("debug", [True, False])
def test_the_error_page_and_e_mail_show_no_secret(secrets, settings, debug):
    # runserver hands the process environment to every request as META; a proxy may send anything.
    request = RequestFactory().post(
        "/api/checkout/create-session",
        {"password": "hunter2-hunter2", "webhook_secret": WEBHOOK_SECRET},
        HTTP_AUTHORIZATION=f"Bearer {settings.STRIPE_SECRET_KEY}",
    )
    request.META.update(
        {
            "STRIPE_SECRET_KEY": settings.STRIPE_SECRET_KEY,
            "DATABASE_URL": DATABASE_URL,
            "PROVISIONING_HTTP_SECRET": PROVISIONING_SECRET,
            "DJANGO_SECRET_KEY": settings.SECRET_KEY,
        }
    )

    html, text = _report(request, debug=debug, settings=settings)

    assert "Stripe refused" in html and "api_key" in html and "endpoint_secret" in html
    assert leaked(html, secrets) == [] and leaked(text, secrets) == []


def test_the_error_e_mail_to_admins_shows_no_secret(secrets, settings):
    settings.ADMINS = [("Ops", "ops@example.com")]
    request = RequestFactory().get("/boom", HTTP_X_WEBHOOK_SECRET=WEBHOOK_SECRET)
    request.META["DATABASE_URL"] = DATABASE_URL
    logger = logging.getLogger("tests.security.mail")
    logger.addHandler(handler := AdminEmailHandler(include_html=True))
    try:
        try:
            raise ValueError(f"panel said no to {PROVISIONING_SECRET}, key {settings.STRIPE_SECRET_KEY}")
        except ValueError:
            logger.error("Internal Server Error: /boom", exc_info=True, extra={"status_code": 500, "request": request})
    finally:
        logger.removeHandler(handler)

    message = mail.outbox[-1]
    bodies = message.body + "".join(content for content, _ in message.alternatives) + message.subject
    assert "panel said no to" in bodies
    assert leaked(bodies, secrets) == []
