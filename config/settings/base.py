"""Settings shared by every environment; each value comes from the environment (see README, Configuration)."""

from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent.parent

env = environ.Env()

# --- Core -----------------------------------------------------------------------------------------------------------
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=[])

DJANGO_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
]
THIRD_PARTY_APPS = [
    "corsheaders",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI's files served by us: no CDN, works offline and under a strict CSP
    "djstripe",
    "axes",  # sign-in protection (below)
]
# backoffice last: it is the top floor, reading every other app (the admin's dashboard, search, support tools).
LOCAL_APPS = ["core", "accounts", "catalog", "checkout", "provisioning", "billing", "backoffice"]
INSTALLED_APPS = DJANGO_APPS + THIRD_PARTY_APPS + LOCAL_APPS

MIDDLEWARE = [
    # First: every later log line of the request carries its id (README, Operations).
    "core.observability.request_id.RequestIdMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "corsheaders.middleware.CorsMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # A locked, restarting or dropped database is a 503 with Retry-After on any page, never a 500 (core/failures.py).
    "core.failures.DatabaseUnavailableMiddleware",
    "axes.middleware.AxesMiddleware",  # turns a lockout into the sign-in page's 429 (core/login_lockout.py)
    # Last, so they see the status every other middleware settled on (core/observability/).
    "core.observability.metrics.WebhookMetricsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
AUTH_USER_MODEL = "accounts.User"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database -------------------------------------------------------------------------------------------------------
DATABASE_URL = env.str("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")
_SQLITE = DATABASE_URL.startswith("sqlite")
DATABASES = {
    "default": {
        **env.db_url_config(DATABASE_URL),
        "CONN_MAX_AGE": env.int("DATABASE_CONN_MAX_AGE", default=60),
        "CONN_HEALTH_CHECKS": True,
        # The embedded default (`make run`): the API, the webhook and the billing sweep write at once. Each
        # transaction takes the write lock when it begins (IMMEDIATE), so writers queue for up to `timeout` seconds
        # instead of failing at once with "database is locked" when a reader tries to become a writer; WAL lets reads
        # go on meanwhile.
        **(
            {
                "OPTIONS": {
                    "transaction_mode": "IMMEDIATE",
                    "timeout": 20,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                }
            }
            if _SQLITE
            else {}
        ),
    }
}
# Password `manage.py db_app_role` gives the role web and workers connect as (rows only, no schema changes); read where
# that command runs, as the owner, after migrating.
DATABASE_APP_PASSWORD = env.str("DATABASE_APP_PASSWORD", default="")

# --- Cache (throttling counters, Stripe coupon sync marks) ------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
CACHES = {
    "default": {
        "BACKEND": "core.cache.DegradingRedisCache",  # Redis down: misses, not errors
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 1},
    }
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
}

# --- Passwords, i18n, static ----------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The back office writes dates one way, lists and pages alike (config/formats/en/formats.py).
FORMAT_MODULE_PATH = ["config.formats"]

STATIC_URL = "static/"
# Where collectstatic writes; nginx serves /static/ from it in production (deploy/nginx/).
STATIC_ROOT = env.path("DJANGO_STATIC_ROOT", default=BASE_DIR / "staticfiles")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Django REST framework -------------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["core.parsers.JSONParserDepthSafe"],
    "EXCEPTION_HANDLER": "core.exceptions.api_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
    # Behind exactly this many reverse proxies the client IP is taken from X-Forwarded-For (0: REMOTE_ADDR).
    "NUM_PROXIES": env.int("DJANGO_NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "checkout_create": env.str("THROTTLE_CHECKOUT_CREATE", default="20/min"),
        "checkout_read": env.str("THROTTLE_CHECKOUT_READ", default="120/min"),
    },
}

SPECTACULAR_SETTINGS = {
    "TITLE": "Checkout and provisioning API",
    "DESCRIPTION": "Public checkout API of the hosting storefront: create a Stripe Checkout Session for a plan, "
    "read its status.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums", "config.schema.plan_ids_enum"],
    "ENUM_NAME_OVERRIDES": {"BillingCycleAcceptedEnum": "checkout.apis.BILLING_CYCLES_ACCEPTED"},
}

# --- CORS: only the marketing site may call the public API from a browser --------------------------------------------
CORS_ALLOWED_ORIGINS = env.list(
    "CORS_ALLOWED_ORIGINS",
    default=[
        "https://migrahosting.com",
        "https://www.migrahosting.com",
        "http://localhost:5173",
        "http://127.0.0.1:5173",
        "http://localhost:3000",
    ],
)
CORS_URLS_REGEX = r"^/api/(checkout|catalog)/.*$"
CORS_ALLOW_METHODS = ["GET", "POST", "OPTIONS"]
CORS_ALLOW_HEADERS = ["accept", "content-type", "idempotency-key"]

# --- Stripe (dj-stripe reads the STRIPE_* names below) ---------------------------------------------------------------
STRIPE_API_VERSION = env.str("STRIPE_API_VERSION", default="2026-05-27.dahlia")
STRIPE_LIVE_MODE = env.bool("STRIPE_LIVE_MODE", default=False)
STRIPE_SECRET_KEY = env.str("STRIPE_SECRET_KEY", default="")
STRIPE_TEST_SECRET_KEY = "" if STRIPE_LIVE_MODE else STRIPE_SECRET_KEY
STRIPE_LIVE_SECRET_KEY = STRIPE_SECRET_KEY if STRIPE_LIVE_MODE else ""
# Where the Stripe API is: real Stripe by default, the project's sandbox in development and tests.
STRIPE_API_BASE = env.str("STRIPE_API_BASE", default="https://api.stripe.com")
if STRIPE_API_BASE != "https://api.stripe.com":
    # The name dj-stripe reads; set only when it is not real Stripe, as dj-stripe warns (W002) whenever
    # production settings carry it.
    STRIPE_API_HOST = STRIPE_API_BASE
STRIPE_TIMEOUT_SECONDS = env.float("STRIPE_TIMEOUT_SECONDS", default=10.0)
STRIPE_MAX_NETWORK_RETRIES = env.int("STRIPE_MAX_NETWORK_RETRIES", default=1)
DJSTRIPE_FOREIGN_KEY_TO_FIELD = "id"
DJSTRIPE_USE_NATIVE_JSONFIELD = True
DJSTRIPE_WEBHOOK_VALIDATION = "verify_signature"
# dj-stripe lets an X-Djstripe-Webhook-Secret header replace the stored secret when DEBUG is on (for `stripe
# listen`). Our webhook view drops that header unless this is set, and only local settings set it.
STRIPE_WEBHOOK_ALLOW_SECRET_HEADER = False
# The public address Stripe posts webhooks to (`manage.py stripe_webhook_register` registers <this>/api/webhooks/...).
STRIPE_WEBHOOK_BASE_URL = env.str("STRIPE_WEBHOOK_BASE_URL", default="")
# The event types our endpoint is registered for: the first payment (checkout) and the subscription's life (billing).
# Only what a decision needs: each delivery costs a request and dj-stripe's re-read, so `invoice.created`,
# `invoice.finalized`, `invoice.updated` and `invoice.payment_succeeded` (the twin of `invoice.paid`) are left out; a
# renewal is then two deliveries instead of five. `manage.py stripe_webhook_register` adds any missing type to an
# endpoint that already exists.
STRIPE_WEBHOOK_EVENTS = [
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "checkout.session.expired",
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.marked_uncollectible",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "test_helpers.test_clock.ready",
]

# --- Checkout ---------------------------------------------------------------------------------------------------------
CHECKOUT_SUCCESS_URL = env.str(
    "CHECKOUT_SUCCESS_URL", default="https://migrahosting.com/checkout/success?session_id={CHECKOUT_SESSION_ID}"
)
CHECKOUT_CANCEL_URL = env.str("CHECKOUT_CANCEL_URL", default="https://migrahosting.com/checkout/cancel")
# Stripe accepts 30 minutes to 24 hours.
CHECKOUT_SESSION_TTL_MINUTES = env.int("CHECKOUT_SESSION_TTL_MINUTES", default=24 * 60)
CHECKOUT_CURRENCY = env.str("CHECKOUT_CURRENCY", default="usd")
CHECKOUT_MAX_BODY_BYTES = env.int("CHECKOUT_MAX_BODY_BYTES", default=16 * 1024)

# --- Celery ----------------------------------------------------------------------------------------------------------
# In-process tasks still pass through a producer from kombu's pool (Celery serialises eager calls the way it would
# send them), and kombu warns "No hostname was supplied" for each new pooled connection to a URL without a host:
# `memory://localhost/` names the one the memory transport would assume anyway.
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL or "memory://localhost/")
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=not bool(REDIS_URL))
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Longer than any countdown or retry delay we use, so an unacknowledged message is not redelivered while still due.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", default=2 * 60 * 60),
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
}
CELERY_BROKER_CONNECTION_TIMEOUT = 2
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# --- E-mail -----------------------------------------------------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="MigraHosting <billing@migrahosting.com>")
SERVER_EMAIL = env.str("SERVER_EMAIL", default=DEFAULT_FROM_EMAIL)
# Who is alerted (mail_admins) when an order needs review or a provisioning job has failed for good:
# "Name <address>" entries separated by commas.
ADMINS = [
    (name.strip(), address.strip(" >"))
    for name, address in (entry.split("<") for entry in env.list("DJANGO_ADMINS", default=[]) if "<" in entry)
]

# --- Logging ----------------------------------------------------------------------------------------------------------
# LOG_FORMAT: "plain" (one readable line) or "json" (one JSON object a line: timestamp, level, logger, message,
# request_id, exc_info). Production defaults to json (config/settings/production.py).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be plain or json, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "core.observability.request_id.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(message)s %(request_id)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": True,
        },
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    # stripe-python logs every request at INFO: too loud for production logs.
    "loggers": {"django.db.backends": {"level": "WARNING"}, "stripe": {"level": "WARNING"}},
}

# --- Provisioning (provisioning/: jobs, backends, e-mails; the set-password page in accounts/) ----------------------
# Our own address, for links in e-mails (the set-password page) and in staff alerts.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")
# Where a customer whose payment failed starts a new order (the marketing site).
STOREFRONT_URL = env.str("STOREFRONT_URL", default="https://migrahosting.com").rstrip("/")
# "simulated" (no control panel: accounts derived from the order), "http" (the control panel's API), or the dotted
# path of a class with the same interface (provisioning/backends/base.py).
PROVISIONING_BACKEND = env.str("PROVISIONING_BACKEND", default="simulated")
PROVISIONING_HTTP_URL = env.str("PROVISIONING_HTTP_URL", default="")
PROVISIONING_HTTP_SECRET = env.str("PROVISIONING_HTTP_SECRET", default="")
PROVISIONING_HTTP_TIMEOUT_SECONDS = env.float("PROVISIONING_HTTP_TIMEOUT_SECONDS", default=10.0)
PROVISIONING_MAX_ATTEMPTS = env.int("PROVISIONING_MAX_ATTEMPTS", default=5)
# Delay before retry n: min(cap, base * 2**(n-1)), half of it random. The cap stays far below the broker's
# visibility timeout, or Redis would hand a waiting retry to a second worker.
PROVISIONING_RETRY_BASE_SECONDS = env.float("PROVISIONING_RETRY_BASE_SECONDS", default=30.0)
PROVISIONING_RETRY_CAP_SECONDS = env.float("PROVISIONING_RETRY_CAP_SECONDS", default=15 * 60.0)
# How long a worker may hold a job; afterwards it counts as abandoned (worker killed) and is run again.
# Longer than the slowest backend call (the HTTP backend's timeouts), which the task's time limit enforces.
PROVISIONING_LEASE_SECONDS = env.int("PROVISIONING_LEASE_SECONDS", default=5 * 60)
# A job or e-mail whose task was sent (or created) longer ago than this and has not started is sent again.
PROVISIONING_OUTBOX_STALE_SECONDS = env.int("PROVISIONING_OUTBOX_STALE_SECONDS", default=30)
PROVISIONING_SWEEP_INTERVAL_SECONDS = env.float("PROVISIONING_SWEEP_INTERVAL_SECONDS", default=30.0)
# A provisioning job that failed for good and that no one resolved within this many hours is refunded in full and its
# subscription cancelled (0 turns this off): a customer is never charged for a service we could not deliver.
PROVISIONING_AUTO_REFUND_AFTER_HOURS = env.int("PROVISIONING_AUTO_REFUND_AFTER_HOURS", default=24)

# --- Billing after the first payment (billing/) ------------------------------------------------------------------------
# Suspend the service when a renewal is still unpaid this many days after its first failed payment (Stripe's times).
BILLING_SUSPEND_AFTER_DAYS = env.int("BILLING_SUSPEND_AFTER_DAYS", default=5)
# Terminate the service this many days after its subscription ended (0: on the event itself)...
BILLING_TERMINATE_AFTER_DAYS = env.int("BILLING_TERMINATE_AFTER_DAYS", default=14)
# ... with a warning e-mail this many days before.
BILLING_TERMINATION_WARNING_DAYS = env.int("BILLING_TERMINATION_WARNING_DAYS", default=3)
BILLING_SWEEP_INTERVAL_SECONDS = env.float("BILLING_SWEEP_INTERVAL_SECONDS", default=60.0)

CELERY_BEAT_SCHEDULE = {
    "provisioning-outbox-sweep": {
        "task": "provisioning.outbox_sweep",
        "schedule": PROVISIONING_SWEEP_INTERVAL_SECONDS,
        # A sweep nobody ran in time is superseded by the next one.
        "options": {"expires": PROVISIONING_SWEEP_INTERVAL_SECONDS},
    },
    "billing-sweep": {
        "task": "billing.sweep",
        "schedule": BILLING_SWEEP_INTERVAL_SECONDS,
        "options": {"expires": BILLING_SWEEP_INTERVAL_SECONDS},
    },
}

# --- Back office (the Django admin: backoffice/) ---------------------------------------------------------------------
# Where the admin lives; something other than the default keeps it out of drive-by scans.
ADMIN_URL = env.str("DJANGO_ADMIN_URL", default="admin/").strip("/") + "/"
# --- End of back office ------------------------------------------------------------------------------------------------
# --- Client area (accounts/: sign-in, sign-out, password reset under /account/) -------------------------------------
LOGIN_URL = "accounts:login"
LOGIN_REDIRECT_URL = "accounts:services"
LOGOUT_REDIRECT_URL = "accounts:login"
# Links in the set-password and password-reset e-mails work this long (Django's default, 3 days, stated here).
PASSWORD_RESET_TIMEOUT = env.int("PASSWORD_RESET_TIMEOUT", default=3 * 24 * 60 * 60)
# Reset-link requests allowed per window, per address and per client IP (accounts/forms.py): counters of their own
# in the cache, which never lock anyone out of signing in.
PASSWORD_RESET_WINDOW_SECONDS = 15 * 60
PASSWORD_RESET_MAX_PER_ADDRESS = 5
PASSWORD_RESET_MAX_PER_IP = 20
# --- End of client area ----------------------------------------------------------------------------------------------
# --- Sign-in protection (django-axes: the admin's login and the client area's sign-in) ------------------------------
# Failures are counted per account AND client IP together, in the database (no Redis needed): a guesser locks only
# himself out of that account, never its owner signing in from elsewhere, nor everyone else behind his address.
AUTHENTICATION_BACKENDS = ["core.login_lockout.LoginLockoutBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_HANDLER = "axes.handlers.database.AxesDatabaseHandler"
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = timedelta(minutes=15)
# The cool-off runs from the failure that locked: attempts while locked are refused without extending it.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True  # a successful sign-in forgets that account's earlier typos from that client
AXES_USERNAME_FORM_FIELD = "username"  # the forms' field name (it holds the e-mail address)
AXES_USERNAME_CALLABLE = "core.login_lockout.login_username"
AXES_CLIENT_IP_CALLABLE = "core.login_lockout.client_ip"  # as the API's throttle: DJANGO_NUM_PROXIES from the right
AXES_LOCKOUT_CALLABLE = "core.login_lockout.lockout_response"
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "csrfmiddlewaretoken"]
AXES_DISABLE_ACCESS_LOG = True  # no row per successful sign-in: only failures are kept, until their cool-off ends
# --- End of sign-in protection ---------------------------------------------------------------------------------------
# --- Secrets out of sight (core/security.py): masked in log lines, error pages and error e-mails ----------------------
DEFAULT_EXCEPTION_REPORTER_FILTER = "core.security.SecretsExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "core.security.SecretsExceptionReporter"
LOGGING.setdefault("filters", {})["secrets"] = {"()": "core.security.SecretsLogFilter"}
for _handler in LOGGING["handlers"].values():
    _handler["filters"] = [*_handler.get("filters", []), "secrets"]
# --- End of secrets out of sight ---------------------------------------------------------------------------------------
# --- Observability (core/observability/: request ids, Prometheus metrics, readiness; README, Operations) -------------
# Who may read /metrics: a client whose address is in one of these networks (the client address as the API's throttle
# sees it, DJANGO_NUM_PROXIES from the right of X-Forwarded-For), or one that sends `Authorization: Bearer <token>`.
METRICS_ALLOWED_NETWORKS = env.list(
    "METRICS_ALLOWED_NETWORKS",
    default=["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fc00::/7"],
)
METRICS_BEARER_TOKEN = env.str("METRICS_BEARER_TOKEN", default="")
# --- End of observability ---------------------------------------------------------------------------------------------
