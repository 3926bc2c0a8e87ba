"""The tester's own control panel and mail server for the chaos run, in the run's process: each records everything
it was sent, so the run can count what the outside world received (not what our database says it sent)."""

import email
import hashlib
import hmac
import json
import socketserver
import threading
import time
from dataclasses import dataclass, field
from email import policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SIGNATURE_TOLERANCE_SECONDS = 300


@dataclass
class PanelFaults:
    """What the panel does wrong, switched by the run: answer each call `delay` seconds late (a slow panel, so that
    a worker can be killed while it waits), and refuse with 503 the first attempt of every new key seen before
    `fail_first_attempt_until` (a monotonic time), which sends those jobs into retries with a countdown."""

    delay: float = 0.0
    fail_first_attempt_until: float = 0.0


@dataclass
class ControlPanel:
    """The control panel's side of provisioning/backends/http.py: one signed POST per call, accounts made once per
    Idempotency-Key (a repeated key is answered as the first time), 2xx for suspend/unsuspend/terminate/change_plan.

    An account is made before the (possibly delayed) answer goes out, as a real panel does: a worker killed while
    waiting leaves an account we never heard of, and its retry must get the same account back, not a second one."""

    secret: str
    faults: PanelFaults = field(default_factory=PanelFaults)
    calls: list[dict] = field(default_factory=list)  # every call: time, key, attempt, action, domain, answer status
    creations: list[dict] = field(default_factory=list)  # accounts made: key, domain, e-mail, subscription, job, time
    refused_first_attempts: int = 0
    bad_signatures: int = 0
    in_flight: int = 0
    _answers: dict[str, dict] = field(default_factory=dict)
    _refused_keys: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: ThreadingHTTPServer | None = None

    def start(self, port: int) -> str:
        panel = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = panel.handle(
                    body, self.headers.get("X-Signature", ""), self.headers.get("Idempotency-Key", "")
                )
                data = json.dumps(answer).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:
                    pass  # the worker that asked is gone (killed mid-call): the account exists all the same

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return f"http://127.0.0.1:{port}/provision"

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()

    def _signature_ok(self, body: bytes, header: str) -> bool:
        parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
        timestamp, signature = parts.get("t", ""), parts.get("v1", "")
        if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > SIGNATURE_TOLERANCE_SECONDS:
            return False
        expected = hmac.new(self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, signature)

    def handle(self, body: bytes, signature: str, key: str) -> tuple[int, dict]:
        if not self._signature_ok(body, signature):
            with self._lock:
                self.bad_signatures += 1
            return 401, {"error": "bad signature"}
        request = json.loads(body)
        action = request.get("action", "provision")
        with self._lock:
            self.in_flight += 1
            delay = self.faults.delay
        status = 500
        try:
            status, answer = self._answer(request, action, key)
            time.sleep(delay)
            return status, answer
        finally:
            with self._lock:
                self.in_flight -= 1
                self.calls.append(
                    {
                        "time": time.time(),
                        "key": key,
                        "attempt": request.get("attempt"),
                        "action": action,
                        "domain": request.get("domain"),
                        "status": status,
                    }
                )

    def _answer(self, request: dict, action: str, key: str) -> tuple[int, dict]:
        with self._lock:
            if action != "provision" or key in self._answers:
                return 200, self._answers.get(key, {})
            if key not in self._refused_keys and time.monotonic() < self.faults.fail_first_attempt_until:
                self._refused_keys.add(key)
                self.refused_first_attempts += 1
                return 503, {"error": "busy, try again"}
            number = len(self.creations) + 1
            answer = {
                "username": f"u{number:05d}",
                "server": "web1.panel.test",
                "domain": request.get("domain"),
                "reference": f"acct_{number}",
            }
            self._answers[key] = answer
            self.creations.append(
                {
                    "time": time.time(),
                    "key": key,
                    "domain": request.get("domain"),
                    "customer_email": request.get("customer_email"),
                    "subscription_id": request.get("subscription_id"),
                    "job_id": request.get("job_id"),
                    "attempt": request.get("attempt"),
                }
            )
            return 200, answer


@dataclass
class SmtpSink:
    """Just enough SMTP (RFC 5321 without extensions) for Django's SMTP backend: every message it accepts is kept,
    with its recipients, subject and the X-Notification-Id header that names the outbox row it came from."""

    messages: list[dict] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: socketserver.ThreadingTCPServer | None = None

    def start(self, port: int) -> None:
        sink = self

        class Handler(socketserver.StreamRequestHandler):
            def reply(self, line: str) -> None:
                self.wfile.write(line.encode() + b"\r\n")

            def handle(self):
                self.reply("220 chaos-smtp ready")
                sender, recipients = "", []
                while line := self.rfile.readline():
                    command = line.decode(errors="replace").strip()
                    verb = command[:4].upper()
                    if verb in ("HELO", "EHLO"):
                        self.reply("250 chaos-smtp")
                    elif verb == "MAIL":
                        sender, recipients = command[10:].strip(" <>"), []
                        self.reply("250 OK")
                    elif verb == "RCPT":
                        recipients.append(command[8:].strip(" <>"))
                        self.reply("250 OK")
                    elif verb == "DATA":
                        self.reply("354 end with <CRLF>.<CRLF>")
                        data = bytearray()
                        while (chunk := self.rfile.readline()) not in (b".\r\n", b".\n", b""):
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        sink.record(sender, recipients, bytes(data))
                        self.reply("250 OK queued")
                    elif verb in ("RSET", "NOOP"):
                        self.reply("250 OK")
                    elif verb == "QUIT":
                        self.reply("221 bye")
                        return
                    else:
                        self.reply("502 not implemented")

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._server = Server(("127.0.0.1", port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()

    def record(self, sender: str, recipients: list[str], data: bytes) -> None:
        message = email.message_from_bytes(data, policy=policy.default)
        with self._lock:
            self.messages.append(
                {
                    "time": time.time(),
                    "from": sender,
                    "to": recipients,
                    "subject": str(message.get("Subject", "")),
                    "notification_id": str(message.get("X-Notification-Id", "")),
                    "message_id": str(message.get("Message-ID", "")),
                }
            )

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.messages)
