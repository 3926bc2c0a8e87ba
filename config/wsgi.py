"""WSGI entry point for gunicorn."""

import os

from django.core.wsgi import get_wsgi_application

from core.observability.multiprocess import multiprocess_dir
from core.wsgi import ChunkedBodyMiddleware

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.production")
# Before anything loads prometheus_client: gunicorn's workers add their metrics up in one directory (README,
# Operations).
os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))

application = ChunkedBodyMiddleware(get_wsgi_application())
