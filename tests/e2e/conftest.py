"""The whole service as separate processes: gunicorn, a Celery worker with beat, the Stripe sandbox delivering signed
webhooks, PostgreSQL and a Redis of the tests' own (so a test may stop it). The test process only drives them over
HTTP and reads the database.
"""

import contextlib
import json
import os
import random
import re
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import stripe
from django.core.management import call_command
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
STRIPE_KEY = "sk_test_testsuite000000000000000000000"

# Beat's periodic tasks (config/settings/base.py, CELERY_BEAT_SCHEDULE).
SWEEPS = ("provisioning.outbox_sweep", "billing.sweep")

needs_real_services = pytest.mark.skipif(
    not os.environ.get("DATABASE_URL", "").startswith("postgres") or shutil.which("redis-server") is None,
    reason="end-to-end tests need PostgreSQL (DATABASE_URL=postgres://...) and a redis-server binary",
)


def free_port() -> int:
    """A free local port; within E2E_PORT_RANGE (`18000-18999`) when set, so that parallel users of one machine can
    keep their stacks apart."""
    low, _, high = os.environ.get("E2E_PORT_RANGE", "").partition("-")
    candidates = random.sample(range(int(low), int(high) + 1), int(high) + 1 - int(low)) if high else [0]
    for port in candidates:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return probe.getsockname()[1]
    raise RuntimeError(f"no free port in E2E_PORT_RANGE={os.environ['E2E_PORT_RANGE']}")


def wait_for(condition, *, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


def tasks_finished(log: Path, task: str) -> int:
    """Runs of `task` that a worker's log (INFO) says ended: Celery logs each as succeeded or raised."""
    text = log.read_text(errors="replace") if log.exists() else ""
    return len(re.findall(rf"Task {re.escape(task)}\[[0-9a-f-]+\] (?:succeeded|raised)", text))


def wait_for_task_runs(log: Path, tasks: tuple[str, ...], *, runs: int, timeout: float) -> None:
    """Wait until the worker writing `log` has finished `runs` more runs of each task."""
    start = {task: tasks_finished(log, task) for task in tasks}
    wait_for(
        lambda: all(tasks_finished(log, task) >= start[task] + runs for task in tasks),
        timeout=timeout,
        interval=0.2,
        what=f"{runs} more runs of {', '.join(tasks)}",
    )


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class Redis:
    port: int
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(lambda: _port_open(self.port), timeout=10, what="redis-server")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()


def _port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Stack:
    api: str
    sandbox: str
    redis: Redis
    mail_dir: Path
    env: dict
    processes: dict = field(default_factory=dict)
    beat_process: bool = False
    worker_concurrency: int = 2

    # --- Stripe's side, as the customer and Stripe act -----------------------------------------------------------
    @property
    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(STRIPE_KEY, base_addresses={"api": self.sandbox})

    def control(self, method: str, path: str, body: dict | None = None, **params):
        response = requests.request(method, f"{self.sandbox}/_sandbox/{path}", json=body, params=params, timeout=30)
        response.raise_for_status()
        return response.json()

    def complete(self, session_id: str, payment_status: str = "paid") -> None:
        self.stripe.raw_request(
            "post", f"/v1/test_helpers/checkout/sessions/{session_id}/complete", payment_status=payment_status
        )

    def async_payment(self, session_id: str, result: str) -> None:
        self.stripe.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session_id}/async_payment", result=result)

    def deliveries(self, **filters) -> list[dict]:
        return self.control("GET", "deliveries", **filters)["data"]

    def wait_deliveries_idle(self, timeout: float = 30) -> None:
        assert self.control("POST", "deliveries/wait", {"timeout": timeout})["idle"], "webhook deliveries still pending"

    # --- Our side ----------------------------------------------------------------------------------------------
    def buy(self, email: str = "e2e@example.com", **overrides) -> str:
        body = {
            "planId": "starter",
            "billingCycle": "monthly",
            "customer": {"name": "End To End", "email": email},
            "domain": {"mode": "new-or-transfer", "value": email.split("@")[0] + ".example.com"},
        }
        body.update(overrides)
        response = requests.post(f"{self.api}/api/checkout/create-session", json=body, timeout=30)
        assert response.status_code == 200, response.text
        return response.json()["sessionId"]

    def sent_mail(self) -> list[str]:
        """Every message the worker sent, as text (Django's file e-mail backend writes one file per connection)."""
        messages = []
        for path in sorted(self.mail_dir.glob("*.log")):
            messages += [m for m in path.read_text().split("-" * 79) if m.strip()]
        return messages

    def wait_for_sweeps(self, runs: int = 2, *, tasks: tuple[str, ...] = SWEEPS, timeout: float = 60) -> None:
        """Wait until each of beat's sweeps has run `runs` more times in the worker: what a test that says "a few
        more sweeps change nothing" needs to have happened, where a fixed sleep may have seen none on a slow day."""
        wait_for_task_runs(self.mail_dir.parent / "worker.log", tasks, runs=runs, timeout=timeout)

    def kill(self, name: str) -> None:
        process = self.processes.pop(name)
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = open(self.mail_dir.parent / f"{name}.log", "ab")  # noqa: SIM115 (the process's, until it stops)
        process = subprocess.Popen(
            args, cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.processes[name] = process
        return process

    def start_worker(self) -> None:
        embedded_beat = [] if self.beat_process else ["--beat", "-s", str(self.mail_dir.parent / "beat-schedule")]
        self.start(
            "worker",
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "worker",
            *embedded_beat,
            "-l",
            "info",
            "-c",
            str(self.worker_concurrency),
            "--without-gossip",
            "--without-mingle",
        )

    def start_beat(self) -> None:
        """Celery beat as its own process, as deployed (docker-compose's `beat`)."""
        self.start(
            "beat",
            sys.executable,
            "-m",
            "celery",
            "-A",
            "config",
            "beat",
            "-l",
            "info",
            "-s",
            str(self.mail_dir.parent / "beat-schedule"),
        )

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    def stop_all(self) -> None:
        """Stop every process and its children; one that already exited (a test stopped it, or it died) is only
        reaped."""
        for name in list(self.processes):
            process = self.processes.pop(name)
            try:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=15)
            except ProcessLookupError:
                pass  # its whole process group is gone already
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


@pytest.fixture(scope="module")
def stack(request, django_db_setup, django_db_blocker, tmp_path_factory):
    """Started once per module; every test gets it reset by `e2e` below.

    A module may shape its stack with a module-level `STACK = {"env": {...}, "beat_process": True,
    "sandbox_args": [...]}`: settings of its own for every process, beat as a process of its own instead of inside
    the worker, flags for the sandbox."""
    options = getattr(request.module, "STACK", {})
    base = tmp_path_factory.mktemp("stack")
    mail_dir = base / "mail"
    mail_dir.mkdir()
    redis = Redis(port=free_port())
    redis.start()
    api_port = free_port()
    db = connection.settings_dict
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.test",
        "DATABASE_URL": f"postgres://{db['USER']}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "REDIS_URL": redis.url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(mail_dir),
        "SITE_URL": f"http://127.0.0.1:{api_port}",
        "PROVISIONING_RETRY_BASE_SECONDS": "0.2",
        "PROVISIONING_RETRY_CAP_SECONDS": "1",
        "PROVISIONING_LEASE_SECONDS": "4",
        "PROVISIONING_OUTBOX_STALE_SECONDS": "2",
        "PROVISIONING_SWEEP_INTERVAL_SECONDS": "1",
        "PYTHONUNBUFFERED": "1",
        **options.get("env", {}),
    }
    sandbox = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stripe_sandbox",
            "--port",
            str(free_port()),
            "--webhook-retry-base",
            "0.5",
            "--webhook-max-attempts",
            "8",
            "--webhook-timeout",
            "20",
            *options.get("sandbox_args", []),
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    ready, _, _ = select.select([sandbox.stdout], [], [], 20)
    sandbox_url = sandbox.stdout.readline().rsplit(" ", 1)[-1].strip() if ready else ""
    env["STRIPE_API_BASE"] = sandbox_url
    stack = Stack(
        api=f"http://127.0.0.1:{api_port}",
        sandbox=sandbox_url,
        redis=redis,
        mail_dir=mail_dir,
        env=env,
        beat_process=options.get("beat_process", False),
    )
    stack.processes["sandbox"] = sandbox
    stack.start(
        "web",
        sys.executable,
        "-m",
        "gunicorn",
        "config.wsgi:application",
        "--workers",
        "4",
        "--bind",
        f"127.0.0.1:{api_port}",
        "--timeout",
        "60",
    )
    stack.start_worker()
    if stack.beat_process:
        stack.start_beat()
    try:
        wait_for(lambda: _http_ok(f"{stack.api}/api/health/"), timeout=60, what="gunicorn")
        yield stack
    finally:
        stack.stop_all()
        redis.stop()


@pytest.fixture
def e2e(stack, transactional_db, settings):
    """A clean stack: sandbox and Redis emptied, the catalog loaded, our webhook endpoint registered with the sandbox."""
    from checkout.webhook_endpoints import webhook_endpoint_register

    # A process that a test stopped, or that died, is started again.
    if not stack.alive("worker"):
        stack.processes.pop("worker", None)
        stack.start_worker()
    if stack.beat_process and not stack.alive("beat"):
        stack.processes.pop("beat", None)
        stack.start_beat()
    if stack.redis.process is None or stack.redis.process.poll() is not None:
        stack.redis.start()
    stack.control("POST", "reset", {})
    stack.redis.flush()
    for path in stack.mail_dir.glob("*"):
        path.unlink()
    settings.STRIPE_API_BASE = settings.STRIPE_API_HOST = stack.sandbox
    call_command("catalog_load", verbosity=0)
    webhook_endpoint_register(base_url=stack.api)
    yield stack
    # Shown by pytest only when the test failed: what each process said, and every webhook delivery.
    for name in ("web", "worker", "beat"):
        log = stack.mail_dir.parent / f"{name}.log"
        if log.exists():
            print(f"--- {name} log (tail) ---\n" + "\n".join(log.read_text(errors="replace").splitlines()[-40:]))
    print(
        "--- deliveries ---\n"
        + "\n".join(f"{d['type']} attempt {d['attempt']}: {d['status']} {d['error'] or ''}" for d in stack.deliveries())
    )
    # No delivery may reach the web server while the tables are emptied: the reset drops what is queued, and the
    # wait returns once a request already on the wire has been answered too.
    stack.control("POST", "reset", {})
    stack.wait_deliveries_idle(timeout=15)


def signed(payload: dict, secret: str, timestamp: int | None = None) -> tuple[bytes, str]:
    body = json.dumps(payload).encode()
    timestamp = int(time.time()) if timestamp is None else timestamp
    signature = stripe.WebhookSignature._compute_signature(f"{timestamp}.{body.decode()}", secret)
    return body, f"t={timestamp},v1={signature}"
