"""The settings modules as cookiecutter-django keeps them: one list of apps, each setting assigned once per module, and
production adjusting base instead of rebuilding it (so a knob of base, such as DATABASE_CONN_MAX_AGE, works there)."""

import ast
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

from tests.security.test_production_secrets import GOOD_SECRET_KEY, GOOD_STRIPE_KEY, ROOT

SETTINGS = sorted((ROOT / "config" / "settings").glob("*.py"))


def _assigned_names(module: Path) -> Counter:
    """Top-level names a module assigns, `X = ...`, `X += ...` and `X[...] = ...` alike, also inside an `if`."""
    counts: Counter = Counter()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.FunctionDef):
            continue
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AugAssign | ast.AnnAssign)
            else []
        )
        for target in targets:
            while isinstance(target, ast.Subscript):
                target = target.value
            if isinstance(target, ast.Name) and target.id.isupper():
                counts[target.id] += 1
    return counts


@pytest.mark.parametrize("module", SETTINGS, ids=lambda path: path.name)
def test_no_setting_is_assigned_twice_in_one_module(module):
    twice = {name: count for name, count in _assigned_names(module).items() if count > 1}

    assert twice == {}, f"{module.name} assigns these more than once: one place for each"


def test_every_app_is_in_one_of_the_three_lists():
    from django.conf import settings

    import config.settings.base as base

    assert settings.INSTALLED_APPS == base.DJANGO_APPS + base.THIRD_PARTY_APPS + base.LOCAL_APPS
    assert "backoffice" in base.LOCAL_APPS and base.LOCAL_APPS[-1] == "backoffice"


def _production(**overrides) -> subprocess.CompletedProcess:
    import os

    environment = {
        **os.environ,
        "DJANGO_SECRET_KEY": GOOD_SECRET_KEY,
        "DJANGO_ALLOWED_HOSTS": "api.example.com",
        "DATABASE_URL": "postgres://app@db.internal:5432/checkout",
        "REDIS_URL": "redis://redis.internal:6379/0",
        "STRIPE_SECRET_KEY": GOOD_STRIPE_KEY,
        **overrides,
    }
    environment = {key: value for key, value in environment.items() if value is not None}
    code = "import config.settings.production as p; d = p.DATABASES['default']; print(d['CONN_MAX_AGE'], d['HOST'])"
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True, timeout=60
    )


def test_production_honours_database_conn_max_age():
    result = _production(DATABASE_CONN_MAX_AGE="0")

    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["0", "db.internal"]


@pytest.mark.parametrize("database_url", [None, "", "sqlite:////tmp/production.sqlite3"])
def test_production_refuses_to_run_without_postgresql(database_url):
    result = _production(DATABASE_URL=database_url)

    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DATABASE_URL" in result.stderr
