"""Production settings refuse to start with a secret key anyone can know or guess, and with a Stripe key that is not a
secret or restricted key of the configured mode. Each case imports config.settings.production in a fresh process."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GOOD_SECRET_KEY = "Zq3-pL9_vT0xR7mK2nB8cW4yH6jF1dS5aG0eU3iO7tQ9rE2wY8uN4mL6kJ1hX5vC"
GOOD_STRIPE_KEY = "sk_test_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3"


def load_production_settings(**overrides) -> subprocess.CompletedProcess:
    environment = {
        **os.environ,
        "DJANGO_SECRET_KEY": GOOD_SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
        "DATABASE_URL": "postgres://app@db.internal:5432/checkout",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "STRIPE_SECRET_KEY": GOOD_STRIPE_KEY,
        **overrides,
    }
    return subprocess.run(
        [sys.executable, "-c", "import config.settings.production"],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_good_values_load():
    result = load_production_settings()

    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    "secret_key",
    [
        "compose-local-only-not-a-secret",  # the old compose default
        "django-insecure-" + "k" * 20 + "0123456789abcdefghijklmnopqrstuvwxyz",  # what startproject generates
        GOOD_SECRET_KEY[:49],  # one short of Django's 50
        "abcd" * 20,  # long, but 4 distinct characters
    ],
)
def test_a_known_short_or_repetitive_secret_key_is_refused(secret_key):
    result = load_production_settings(DJANGO_SECRET_KEY=secret_key)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    assert secret_key not in result.stderr  # the refusal does not print the key it refused


def test_the_compose_default_is_long_enough_to_start_the_local_stack():
    compose_default = next(
        line.split("=", 1)[1]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line.startswith("DJANGO_SECRET_KEY=")
    )

    assert f"${{DJANGO_SECRET_KEY:-{compose_default}}}" in (ROOT / "docker-compose.yml").read_text()
    assert load_production_settings(DJANGO_SECRET_KEY=compose_default).returncode == 0


@pytest.mark.parametrize(
    "stripe_key",
    [
        "pk_test_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3",  # publishable
        "whsec_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3",  # a webhook secret
        "sk_live_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3",  # live key while STRIPE_LIVE_MODE is false
        "sk_test_short",
        "sandbox",
    ],
)
def test_a_stripe_key_that_is_not_a_secret_or_restricted_key_of_the_mode_is_refused(stripe_key):
    result = load_production_settings(STRIPE_SECRET_KEY=stripe_key)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "STRIPE_SECRET_KEY" in result.stderr
    assert stripe_key not in result.stderr


@pytest.mark.parametrize(
    "stripe_key, live",
    [
        ("sk_test_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3", "false"),
        ("rk_test_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3", "false"),
        ("sk_live_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3", "true"),
        ("rk_live_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3", "true"),
    ],
)
def test_secret_and_restricted_keys_of_the_mode_are_accepted(stripe_key, live):
    result = load_production_settings(STRIPE_SECRET_KEY=stripe_key, STRIPE_LIVE_MODE=live)

    assert result.returncode == 0, result.stderr
