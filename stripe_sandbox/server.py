"""The HTTP side: a threaded HTTP/1.1 keep-alive server that hands each request to the app and answers in one write."""

import socket
import sys
import threading
import traceback
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from stripe_sandbox import billing, fulfillment
from stripe_sandbox.app import Request, SandboxApp
from stripe_sandbox.responses import Response, json_response
from stripe_sandbox.store import BillingConfig, Store
from stripe_sandbox.webhooks import DeliveryConfig, Dispatcher
from stripe_sandbox.wire import StripeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 12111
EXPIRY_SWEEP_SECONDS = 1.0


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    # A benchmark opens many connections at once; the default backlog of 5 would refuse some.
    request_queue_size = 1024
    app: SandboxApp

    def get_request(self):
        sock, address = super().get_request()
        # Each response goes out in one write, so Nagle's algorithm could only delay it.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keeps connections alive between requests
    server: _HTTPServer

    def do_GET(self):
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.send_error(400, "Invalid Content-Length")
            return
        request = Request(
            method=self.command,
            target=self.path,
            headers=self.headers,
            body=self.rfile.read(length) if length > 0 else b"",
            client=f"{self.client_address[0]}:{self.client_address[1]}",
        )
        try:
            response = self.server.app.handle(request)
        except Exception:
            traceback.print_exc(file=sys.stderr)
            error = StripeError("An internal error occurred in the Stripe sandbox.", status=500, type="api_error")
            response = json_response(500, error.body())
        self._send(response)

    do_POST = do_DELETE = do_GET

    def _send(self, response: Response) -> None:
        lines = [
            f"HTTP/1.1 {response.status} {HTTPStatus(response.status).phrase}",
            f"Date: {formatdate(usegmt=True)}",
            "Server: stripe-sandbox",
            f"Content-Length: {len(response.body)}",
            *(f"{name}: {value}" for name, value in response.headers),
        ]
        if self.close_connection:
            lines.append("Connection: close")
        # Status line, headers and body in ONE write: written separately, a keep-alive client waits ~40 ms per call
        # for the delayed ACK of the first segment.
        self.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)

    def log_message(self, format, *args):
        # No access log: GET /_sandbox/requests has the API calls, and stdout carries only the "listening" line.
        pass


class SandboxServer:
    """The sandbox in this process: `SandboxServer(port=0).start_in_thread()`, then `.url`, then `.shutdown()`.

    Besides the HTTP server it runs the webhook delivery threads and a sweep that expires sessions every second.
    """

    def __init__(
        self,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        public_url: str | None = None,
        webhooks: DeliveryConfig | None = None,
        expiry_sweep_seconds: float | None = EXPIRY_SWEEP_SECONDS,
        billing_config: BillingConfig | None = None,
    ):
        """`expiry_sweep_seconds=None` runs no sweep: sessions then expire (and subscriptions renew) only when a
        request touches them."""
        self.store = Store(billing=billing_config)
        self.dispatcher = Dispatcher(self.store, webhooks)
        self.store.event_sink = self.dispatcher.enqueue
        self._httpd = _HTTPServer((host, port), _Handler)
        bound_host, bound_port = self._httpd.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}"
        self.public_url = (public_url or self.url).rstrip("/")
        self.store.public_url = self.public_url
        self._httpd.app = SandboxApp(store=self.store, public_url=self.public_url, dispatcher=self.dispatcher)
        self._thread: threading.Thread | None = None
        self._sweep_seconds = expiry_sweep_seconds
        self._sweeper: threading.Thread | None = None
        self._stop_sweeping = threading.Event()

    def start_in_thread(self) -> "SandboxServer":
        self.dispatcher.start()
        if self._sweep_seconds is not None:
            self._sweeper = threading.Thread(target=self._sweep, name="stripe-sandbox-expiry", daemon=True)
            self._sweeper.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="stripe-sandbox", daemon=True)
        self._thread.start()
        return self

    def _sweep(self) -> None:
        while not self._stop_sweeping.wait(self._sweep_seconds):
            with self.store.lock:
                fulfillment.expire_due_sessions(self.store)
                billing.run_sandbox_clock(self.store)

    def shutdown(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        if self._sweeper is not None:
            self._stop_sweeping.set()
            self._sweeper.join()
            self._sweeper = None
        self.dispatcher.stop()
        self._httpd.server_close()

    def __enter__(self) -> "SandboxServer":
        return self.start_in_thread()

    def __exit__(self, *exc_info) -> None:
        self.shutdown()
