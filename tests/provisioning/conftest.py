"""Fixtures of the provisioning tests: quick retries, tasks in-process, a real control panel over HTTP, and a real
Celery app whose broker cannot be reached."""

import hashlib
import hmac
import itertools
import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email import message_from_bytes
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from celery import Celery

from config.celery import app as celery_app


@pytest.fixture(autouse=True)
def provisioning_settings(settings):
    settings.PROVISIONING_BACKEND = "simulated"
    settings.PROVISIONING_MAX_ATTEMPTS = 5
    # A retry is due at once, so a job's whole life plays out inside one test.
    settings.PROVISIONING_RETRY_BASE_SECONDS = 0
    settings.PROVISIONING_RETRY_CAP_SECONDS = 0
    settings.ADMINS = [("Staff", "staff@migrahosting.test")]
    settings.SITE_URL = "http://testserver"
    return settings


@pytest.fixture(autouse=True)
def tasks_run_in_process():
    """Tasks run in the test's process and transaction, even when REDIS_URL is set: these tests are about what the
    tasks do. The broker path has its own tests (test_outbox: a broker that refuses; test_real_worker)."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


_unreachable_broker_numbers = itertools.count()


@pytest.fixture
def run_job(django_capture_on_commit_callbacks):
    """Run a job's task as the worker would, its after-commit sends included; the job as it ended."""
    from provisioning.tasks import provisioning_job_run_task

    def run(job):
        with django_capture_on_commit_callbacks(execute=True):
            provisioning_job_run_task.delay(job.pk)
        job.refresh_from_db()
        return job

    return run


@pytest.fixture
def unreachable_broker():
    """The project's Celery configuration with the broker on a closed port and tasks really sent (not eager): the
    tasks the project sends resolve through this app while the test runs."""
    app = Celery("unreachable-broker", set_as_current=False)
    app.config_from_object("django.conf:settings", namespace="CELERY")
    # A database number of its own per test: the outbox's pause after a failure is kept per broker URL.
    app.conf.update(broker_url=f"redis://127.0.0.1:1/{next(_unreachable_broker_numbers)}", task_always_eager=False)
    app.set_current()
    yield app
    celery_app.set_current()
    app.close()


# --- A control panel: a real HTTP server on a free port ---------------------------------------------------------------


@dataclass
class Received:
    headers: dict
    body: bytes
    signature_valid: bool

    @property
    def json(self) -> dict:
        return json.loads(self.body)


@dataclass
class ControlPanel:
    """Checks the signature with its own code (not the project's), makes one account per idempotency key, carries out
    suspend/unsuspend/terminate, and gives the queued answers first: `panel.answer(500)`,
    `panel.answer(200, delay=2)`."""

    url: str = ""
    secret: str = "panel-shared-secret"
    received: list[Received] = field(default_factory=list)
    accounts: dict[str, dict] = field(default_factory=dict)
    _answers: list[tuple[int, object, float]] = field(default_factory=list)
    _before_answers: list = field(default_factory=list)

    def answer(self, status: int, body: object = None, *, delay: float = 0.0) -> None:
        self._answers.append((status, body, delay))

    def before_next_answer(self, action) -> None:
        """Call `action()` when the next request has arrived, before it is answered (e.g. to cut the caller's
        database connection while it waits for the panel)."""
        self._before_answers.append(action)

    def signature_valid(self, header: str, body: bytes) -> bool:
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        if "t" not in parts or "v1" not in parts or abs(time.time() - int(parts["t"])) > 300:
            return False
        expected = hmac.new(self.secret.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, parts["v1"])

    def respond(self, headers: dict, body: bytes) -> tuple[int, object, float]:
        valid = self.signature_valid(headers.get("X-Signature", ""), body)
        self.received.append(Received(headers=headers, body=body, signature_valid=valid))
        if self._before_answers:
            self._before_answers.pop(0)()
        if not valid:
            return 401, {"error": "bad signature"}, 0.0
        status, answer, delay = self._answers.pop(0) if self._answers else (200, None, 0.0)
        if answer is None:
            answer = self._answer(body) if status < 300 else {"error": f"status {status}"}
        return status, answer, delay

    def _answer(self, body: bytes) -> dict:
        order = json.loads(body)
        if "action" in order:  # suspend, unsuspend, terminate: done (the panel keeps no state here)
            return {"done": order["action"]}
        return self._account(body)

    def _account(self, body: bytes) -> dict:
        order = json.loads(body)
        return self.accounts.setdefault(
            order["idempotency_key"],
            {
                "username": f"panel{len(self.accounts) + 1}",
                "server": "cp01.panel.test",
                "domain": order["domain"],
                "reference": f"acct-{len(self.accounts) + 1}",
            },
        )


class _PanelHandler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        status, answer, delay = self.server.panel.respond(dict(self.headers), body)
        time.sleep(delay)
        payload = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up waiting: what a timeout test wants

    def log_message(self, *args):
        pass


@pytest.fixture
def control_panel(settings):
    """A control panel on 127.0.0.1:<free port>, and the HTTP backend configured to call it."""
    panel = ControlPanel()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _PanelHandler)
    server.daemon_threads = True
    server.panel = panel
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    panel.url = f"http://127.0.0.1:{server.server_address[1]}/api/accounts"
    settings.PROVISIONING_BACKEND = "http"
    settings.PROVISIONING_HTTP_URL = panel.url
    settings.PROVISIONING_HTTP_SECRET = panel.secret
    settings.PROVISIONING_HTTP_TIMEOUT_SECONDS = 2.0
    yield panel
    server.shutdown()
    server.server_close()


# --- A mail server whose every step a test can steer --------------------------------------------------------------


class _Smtp(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib. `server.on_connect()` runs when a client connects (returning False drops the
    connection before the greeting); `server.on_message()` runs once a message is in, before it is acknowledged
    (returning False drops the connection instead of answering); `server.data_reply` is that answer."""

    def handle(self):
        if self.server.on_connect() is False:
            return
        self.wfile.write(b"220 smtp.test ESMTP\r\n")
        data, in_data = [], False
        for line in self.rfile:
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    self.server.messages.append(message_from_bytes(b"".join(data)))
                    data = []
                    if self.server.on_message() is False:
                        return
                    self.wfile.write(self.server.data_reply)
                else:
                    data.append(line)
                continue
            command = line[:4].upper()
            if command == b"DATA":
                in_data = True
                self.wfile.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
            elif command == b"QUIT":
                self.wfile.write(b"221 Bye\r\n")
                return
            else:
                self.wfile.write(b"250 smtp.test\r\n")


class _SmtpServer(socketserver.ThreadingTCPServer):
    daemon_threads = True

    @property
    def messages_received(self) -> int:
        return len(self.messages)


@pytest.fixture
def smtp(settings):
    """A mail server on 127.0.0.1:<free port> that records every message, and Django's SMTP backend pointed at it."""
    server = _SmtpServer(("127.0.0.1", 0), _Smtp)
    server.messages = []
    server.on_connect = lambda: None
    server.on_message = lambda: None
    server.data_reply = b"250 2.0.0 queued\r\n"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = server.server_address
    settings.EMAIL_USE_TLS = False
    settings.EMAIL_TIMEOUT = 5
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def smtp_failing_after_data(smtp):
    """The server takes the message, then answers the end of DATA with a temporary error, as a server can after it
    has in fact queued the message."""
    smtp.data_reply = b"451 4.3.0 Local error in processing\r\n"
    return smtp
