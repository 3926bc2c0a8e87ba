"""The service as the benchmarks run it: production settings, a fresh database and Redis db, gunicorn with 4 workers,
and the processes' start, readiness and stop. bench.run, bench.renewals and bench.catalog each build theirs from here.
"""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def production_env(*, database_url: str, redis_url: str) -> dict[str, str]:
    """This process's environment with config.settings.production on the given database and Redis db: a throwaway
    secret, plain HTTP on 127.0.0.1, a test Stripe key, warnings only in the log."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": "bench-only-not-a-secret-signs-nothing-kept-0123456789abcdefgh",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_NUM_PROXIES": "0",
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "STRIPE_SECRET_KEY": "sk_test_benchmark000000000000000000000",
        "LOG_LEVEL": "WARNING",
    }


def database_recreate(*, database_url: str, redis_url: str, env: dict[str, str]) -> None:
    """Drop and create the database, flush the Redis db, then migrate and load the catalog, so that every run starts
    from the same rows."""
    import psycopg
    import redis

    name = urlsplit(database_url).path.lstrip("/")
    admin = database_url.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(redis_url).flushdb()
    for command in (["migrate", "--noinput"], ["catalog_load"]):
        subprocess.run([PY, "manage.py", *command], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)


def start(*args: str, env: dict[str, str]) -> subprocess.Popen:
    """A background process in a session of its own, so that stop() ends it with every child it forks."""
    return subprocess.Popen(
        args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def gunicorn_start(*, port: int, env: dict[str, str]) -> subprocess.Popen:
    """gunicorn as production runs it: 4 sync workers."""
    return start(
        PY,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--workers",
        "4",
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        env=env,
    )


def celery_worker_start(*, env: dict[str, str]) -> subprocess.Popen:
    """One Celery worker process, concurrency 2 (the cores of these machines)."""
    return start(
        PY,
        "-m",
        "celery",
        "-A",
        "config",
        "worker",
        "-c",
        "2",
        "-l",
        "warning",
        "--without-gossip",
        "--without-mingle",
        env=env,
    )


def stop(processes: list[subprocess.Popen], timeout: float = 30) -> None:
    """SIGTERM to each process's session, then wait for each; one that has already ended is passed over."""
    for process in processes:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for process in processes:
        process.wait(timeout=timeout)


def poll(condition: Callable[[], object], *, timeout: float, interval: float) -> object | None:
    """condition()'s first true value within timeout seconds, or None."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    return None


def wait_until(what: str, condition: Callable[[], object], timeout: float, interval: float = 0.25) -> object:
    value = poll(condition, timeout=timeout, interval=interval)
    if not value:
        raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
    return value


def wait_for(url: str, seconds: float = 30) -> None:
    """Until a GET of url answers with a success (urllib raises an OSError for a refused connection and for an error
    status alike)."""

    def answers() -> bool:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return True
        except OSError:
            return False

    if not poll(answers, timeout=seconds, interval=0.2):
        raise SystemExit(f"{url} did not answer within {seconds} s")


def json_output(args: list[str]) -> dict:
    """Run a load process (bench.load, bench.catalog --load) from the repository's root and read the JSON it prints."""
    return json.loads(subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout)
