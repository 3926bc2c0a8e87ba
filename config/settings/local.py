"""Development: `make run`. SQLite, tasks in-process, the Stripe sandbox on 127.0.0.1:12111."""

from .base import *  # noqa: F403
from .base import env

DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="local-development-only-not-a-secret")
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="sk_test_sandbox0000000000000000000000")
STRIPE_TEST_SECRET_KEY = STRIPE_SECRET_KEY
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="http://127.0.0.1:12111")
STRIPE_API_HOST = STRIPE_API_BASE

# Our own result pages; production keeps base's defaults (the marketing site's pages) unless told otherwise.
CHECKOUT_SUCCESS_URL = env.str(
    "CHECKOUT_SUCCESS_URL", default="http://127.0.0.1:8000/checkout/success/?session_id={CHECKOUT_SESSION_ID}"
)
CHECKOUT_CANCEL_URL = env.str("CHECKOUT_CANCEL_URL", default="http://127.0.0.1:8000/checkout/cancel/")

STRIPE_WEBHOOK_ALLOW_SECRET_HEADER = DEBUG
STRIPE_WEBHOOK_BASE_URL = env.str("STRIPE_WEBHOOK_BASE_URL", default="http://127.0.0.1:8000")
