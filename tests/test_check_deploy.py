"""`manage.py check --deploy` with production settings and real-looking values: every warning it still gives is one
the README explains (and turns off)."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def check_deploy(**extra) -> str:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "api.migrahosting.com",
        "DATABASE_URL": os.environ.get("DATABASE_URL") or "postgres://app@db.internal:5432/checkout",
        "REDIS_URL": os.environ.get("REDIS_URL") or "redis://redis.internal:6379/0",
        "STRIPE_SECRET_KEY": "rk_live_" + "a1B2c3D4" * 12,
        "STRIPE_LIVE_MODE": "true",
        "DJANGO_CSRF_TRUSTED_ORIGINS": "https://api.migrahosting.com",
        **extra,
    }
    env.pop("STRIPE_API_BASE", None)
    done = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "ERROR"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout + done.stderr


def test_the_only_deploy_warnings_are_the_ones_the_readme_explains():
    output = check_deploy()

    warnings = set(re.findall(r"\(([a-z_]+\.W\d+)\)", output))
    readme = (ROOT / "README.md").read_text()
    assert warnings == {"security.W005", "security.W021"}, output
    assert all(f"`{warning}`" in readme for warning in warnings)


def test_with_hsts_for_subdomains_and_preload_the_check_is_clean():
    output = check_deploy(DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS="true", DJANGO_SECURE_HSTS_PRELOAD="true")

    assert "no issues" in output, output
