"""Where the processes of one gunicorn share their Prometheus counters (prometheus_client's multiprocess mode).

Each gunicorn worker is a process with counters of its own, and a scrape reaches one of them at random; in
multiprocess mode every process writes its values to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them all
up. config/wsgi.py sets the variable before anything loads prometheus_client, which reads it once, at import.
"""

import os
import shutil
import tempfile
from pathlib import Path

_PREFIX = "checkout-service-metrics-"


def multiprocess_dir(configured: str | None) -> str:
    """The directory as configured, or one of this gunicorn's (named after its master process, the parent of every
    worker); made if missing. Directories left by masters that are gone are removed."""
    path = configured
    if not path:
        master = os.getppid()
        path = str(Path(tempfile.gettempdir()) / f"{_PREFIX}{master}")
        for old in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
            pid = old.name.removeprefix(_PREFIX)
            if pid.isdigit() and int(pid) != master and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
