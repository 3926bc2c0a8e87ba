# One image for every process of the service: web (gunicorn), worker and beat (Celery), the one-shot migrate job and
# the Stripe sandbox. docker-compose.yml picks the command; the default is the web server.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    DJANGO_SETTINGS_MODULE=config.settings.production

RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid app --home-dir /app --no-create-home --shell /usr/sbin/nologin app

WORKDIR /app

# Dependencies first, so a code change does not reinstall them. psycopg[binary] brings its own libpq.
COPY requirements.txt ./
RUN pip install -r requirements.txt

COPY . .

# Static files are baked into the image (WhiteNoise serves them). Production settings refuse to load without a secret
# key, allowed hosts, a Stripe key, a database and Redis; these build-only values are used for nothing else, no
# connection is made, and they never reach a container.
RUN DJANGO_SECRET_KEY=collectstatic-build-only-never-signs-anything-0123456789abcdef \
    DJANGO_ALLOWED_HOSTS=localhost \
    DATABASE_URL=postgres://build@localhost/build \
    REDIS_URL=redis://localhost:6379/0 \
    STRIPE_SECRET_KEY=sk_test_collectstaticbuildonly000000000 \
    python manage.py collectstatic --noinput

# Where compose's one-shot `static` service collects them again for nginx (DJANGO_STATIC_ROOT): a new named volume
# mounted here takes this directory's owner, so the app user may write into it.
RUN install -d -o app -g app /srv/static

# The code and the static files stay owned by root: the app user can read them, not change them.
USER app

EXPOSE 8000 12111

# 0.0.0.0 inside the container; docker-compose.yml publishes nginx only, never this port (deploy/nginx/).
CMD ["gunicorn", "config.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "4", "--access-logfile", "-"]
