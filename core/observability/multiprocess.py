"""Where the processes of one gunicorn share their Prometheus counters (prometheus_client's multiprocess mode).

Each gunicorn worker is a process with counters of its own, and a scrape reaches one of them at random; in
multiprocess mode every process writes its values to files in PROMETHEUS_MULTIPROC_DIR and /metrics adds them all
up. Imported by config/wsgi.py before anything loads prometheus_client, which reads the variable once, at import.
"""

import os
import shutil
import tempfile
from pathlib import Path

ENV = "PROMETHEUS_MULTIPROC_DIR"
_PREFIX = "checkout-service-metrics-"


def multiprocess_dir_default() -> str:
    """PROMETHEUS_MULTIPROC_DIR as set, or a directory of this gunicorn (named after its master process, the parent of
    every worker), made if missing. Directories left by masters that are gone are removed."""
    path = os.environ.get(ENV)
    if not path:
        master = os.getppid()
        path = str(Path(tempfile.gettempdir()) / f"{_PREFIX}{master}")
        for old in Path(tempfile.gettempdir()).glob(f"{_PREFIX}*"):
            pid = old.name.removeprefix(_PREFIX)
            if pid.isdigit() and int(pid) != master and not _alive(int(pid)):
                shutil.rmtree(old, ignore_errors=True)
        os.environ[ENV] = path
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
