"""Production: every secret must come from the environment; a missing one stops start-up."""

import re

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import env

DEBUG = False
SECRET_KEY = env.str("DJANGO_SECRET_KEY")
# A key anyone can read (a default from this repository, Django's generated "django-insecure-" ones) or a weak one
# (Django's own rule, check W009: at least 50 characters, at least 5 distinct) would let anyone forge sessions and
# password-reset links: refuse to start rather than warn.
if (
    SECRET_KEY in ("compose-local-only-not-a-secret", "local-development-only-not-a-secret", "test-only-not-a-secret")
    or SECRET_KEY.startswith("django-insecure-")
    or len(SECRET_KEY) < 50
    or len(set(SECRET_KEY)) < 5
):
    raise ImproperlyConfigured(
        "DJANGO_SECRET_KEY is a known default or too weak: use at least 50 random characters, e.g. "
        "python -c 'import secrets; print(secrets.token_urlsafe(64))'"
    )
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS")
# No SQLite and no in-process tasks in production: both must be named. DATABASES is base's (with
# DATABASE_CONN_MAX_AGE); only the embedded default is refused here.
if not env.str("DATABASE_URL", default="") or DATABASES["default"]["ENGINE"].endswith("sqlite3"):  # noqa: F405
    raise ImproperlyConfigured("Set DATABASE_URL to PostgreSQL: production never runs on the embedded SQLite.")
if not env.str("REDIS_URL"):
    raise ImproperlyConfigured("Set REDIS_URL: production needs Redis for the cache, throttling and Celery.")
CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS", default=["https://migrahosting.com", "https://www.migrahosting.com"]
)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY")
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
# A secret (sk_) or restricted (rk_) key of the mode STRIPE_LIVE_MODE names; a publishable key, a webhook secret or a
# key of the other mode would fail on the first call, or worse, charge for real while we think it is a test.
if not re.fullmatch(rf"(sk|rk)_{'live' if STRIPE_LIVE_MODE else 'test'}_[A-Za-z0-9]{{24,}}", STRIPE_SECRET_KEY):
    raise ImproperlyConfigured(
        f"STRIPE_SECRET_KEY must be a {'live' if STRIPE_LIVE_MODE else 'test'} secret or restricted key "
        f"(sk_{'live' if STRIPE_LIVE_MODE else 'test'}_... or rk_{'live' if STRIPE_LIVE_MODE else 'test'}_...), "
        "matching STRIPE_LIVE_MODE"
    )
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET_KEY
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY if STRIPE_LIVE_MODE else ""

DJANGO_NUM_PROXIES = env.int("DJANGO_NUM_PROXIES", default=1)
REST_FRAMEWORK["NUM_PROXIES"] = DJANGO_NUM_PROXIES  # noqa: F405
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=True)
SECURE_REDIRECT_EXEMPT = [r"^api/health/$", r"^api/ready/$", r"^metrics$"]  # probes and scrapes on the inside
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 30)
# Off by default (check --deploy's W005 and W021): they bind every subdomain of the parent domain, for years once
# preloaded; only whoever runs the whole domain can promise that (README, Configuration).
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=False)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=False)
SECURE_CONTENT_TYPE_NOSNIFF = True
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# One JSON object a log line, for a log shipper (LOG_FORMAT=plain for a person reading docker logs).
LOG_FORMAT = env.str("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING["handlers"]["console"]["formatter"] = LOG_FORMAT  # noqa: F405

EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.smtp.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=587)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=True)
