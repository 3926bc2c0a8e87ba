"""Tests: PostgreSQL and Redis when DATABASE_URL / REDIS_URL are set, SQLite and in-process otherwise."""

from .base import *  # noqa: F403
from .base import REST_FRAMEWORK, env

DEBUG = False
SECRET_KEY = "test-only-not-a-secret"
ALLOWED_HOSTS = ["testserver", "localhost", "127.0.0.1"]
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STRIPE_SECRET_KEY = "sk_test_testsuite000000000000000000000"
STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
# Each test session starts its own sandbox and points STRIPE_API_BASE at it (tests/conftest.py).
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="http://127.0.0.1:12111")
STRIPE_API_HOST = STRIPE_API_BASE
STRIPE_MAX_NETWORK_RETRIES = 0
STRIPE_TIMEOUT_SECONDS = 5.0

CHECKOUT_SUCCESS_URL = "https://shop.test/success?session_id={CHECKOUT_SESSION_ID}"
CHECKOUT_CANCEL_URL = "https://shop.test/cancel"
CORS_ALLOWED_ORIGINS = ["https://migrahosting.com"]

REST_FRAMEWORK = {
    **REST_FRAMEWORK,
    "DEFAULT_THROTTLE_RATES": {"checkout_create": "1000/min", "checkout_read": "1000/min"},
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

# Tasks run in the test process unless a test starts a real worker (the end-to-end tests do, and switch this off
# for themselves); a REDIS_URL in CI must not send every test's tasks to a queue nobody reads.
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=True)
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.locmem.EmailBackend")
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", default="")
