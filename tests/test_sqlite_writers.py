"""The embedded default (SQLite, `make run`) serialises writers instead of failing them: processes that read and
then write in one transaction (the webhook, the success page's poll, the billing sweep) all get through.

Real processes on a real SQLite file, whatever database the rest of the suite uses."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRITER = """
import django
django.setup()
from datetime import datetime, timezone
from django.db import transaction
from billing.models import StripeClock
failures = 0
for _ in range(150):
    try:
        with transaction.atomic():
            StripeClock.objects.filter(scope="race").first()  # a read, then a write: the lock upgrade SQLite refuses
            StripeClock.objects.update_or_create(scope="race", defaults={"now": datetime.now(timezone.utc)})
    except Exception as error:
        failures += 1
        last = error
print(failures, repr(last) if failures else "")
"""


def test_four_processes_writing_at_once_on_sqlite_all_get_through(tmp_path):
    env = {key: value for key, value in os.environ.items() if key not in ("REDIS_URL", "CELERY_BROKER_URL")}
    env.update(DJANGO_SETTINGS_MODULE="config.settings.local", DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}")
    subprocess.run([sys.executable, "manage.py", "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)

    writers = [subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True) for _ in range(4)]
    outputs = [writer.communicate(timeout=300)[0].strip().splitlines()[-1] for writer in writers]

    assert [output.split(" ", 1)[0] for output in outputs] == ["0"] * 4, outputs
