"""Webhook delivery: each event goes to every enabled endpoint that wants it, from background threads, signed as
Stripe signs, and is retried with exponential backoff while the endpoint fails; every attempt is recorded.

First attempts to one endpoint go out in the order the events were created, one at a time by default or up to
`lane_concurrency` at once (as live Stripe, which sends concurrently and guarantees no order at all); retries and
other endpoints run concurrently.
"""

import hashlib
import heapq
import hmac
import http.client
import itertools
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from stripe_sandbox.store import Store
from stripe_sandbox.wire import encode_json

USER_AGENT = "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
ATTEMPT_LOG_SIZE = 50_000
RESPONSE_HEAD_LIMIT = 64 * 1024
RESPONSE_BODY_LIMIT = 64 * 1024  # a longer answer is not read: the connection is closed instead


@dataclass(frozen=True)
class DeliveryConfig:
    """Live Stripe retries for three days: 60 s doubling over 13 attempts spans about 2.8 days."""

    retry_base: float = 60.0  # seconds between the first and second attempts; each later wait doubles
    max_attempts: int = 13
    timeout: float = 10.0  # seconds to connect and to wait for the answer
    workers: int = 8
    lane_concurrency: int = 1  # first attempts on the wire at once per endpoint (taken in event order)

    def delay_after(self, attempt: int) -> float:
        return self.retry_base * 2 ** (attempt - 1)


class _Payload:
    """An event's JSON body, encoded once by whichever delivery needs it first and shared by all of them."""

    def __init__(self, event: dict):
        self.event = event
        self._body: bytes | None = None

    def body(self, lock: threading.Condition) -> bytes:
        if self._body is None:
            with lock:  # the lock under which deliveries change the event's pending_webhooks
                self._body = encode_json(self.event)
        return self._body


@dataclass
class _Delivery:
    payload: _Payload
    endpoint_id: str
    generation: int
    counts_as_pending: bool  # part of the event's first fan-out (a redelivery is not)
    attempts: int = 0
    sequence: int = field(default_factory=itertools.count().__next__)

    @property
    def event_id(self) -> str:
        return self.payload.event["id"]


class _Connections(threading.local):
    def __init__(self):
        self.by_origin: dict[tuple, socket.socket] = {}


class Dispatcher:
    """Queues deliveries (`enqueue`, called as events are created) and runs them on `config.workers` threads.

    Each endpoint has a lane of first attempts, run one at a time in order; a failed attempt goes to a schedule
    of retries instead, which any thread runs when due. Pausing holds everything not yet on the wire.
    """

    def __init__(self, store: Store, config: DeliveryConfig | None = None):
        self.store = store
        self.config = config or DeliveryConfig()
        self._cond = threading.Condition()
        self._lanes: dict[str, deque[_Delivery]] = {}  # first attempts waiting, per endpoint
        self._lane_runners: dict[str, int] = {}  # threads working each lane (at most config.lane_concurrency)
        self._ready: deque = deque()  # ("lane", endpoint id) or ("retry", delivery): work for a free thread
        self._retries: list[tuple[float, int, _Delivery]] = []  # (due on the monotonic clock, sequence, delivery)
        self._pending = 0  # deliveries not yet finished (delivered, given up or dropped)
        self._in_flight = 0  # attempts on the wire now, whatever their generation (a reset does not recall them)
        self._paused = False
        self._stopping = False
        self._generation = 0
        self._attempts: deque[dict] = deque(maxlen=ATTEMPT_LOG_SIZE)
        self._connections = _Connections()
        self._threads: list[threading.Thread] = []

    # Lifecycle

    def start(self) -> None:
        for number in range(self.config.workers):
            thread = threading.Thread(target=self._work, name=f"stripe-sandbox-webhooks-{number}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout=self.config.timeout + 1)
        self._threads.clear()

    # What the rest of the sandbox calls

    def enqueue(self, event: dict, endpoint_ids: list[str], *, counts_as_pending: bool = True) -> None:
        """Queue `event` for each endpoint; only appends to queues (it runs under the store's lock)."""
        payload = _Payload(event)
        with self._cond:
            for endpoint_id in endpoint_ids:
                delivery = _Delivery(payload, endpoint_id, self._generation, counts_as_pending)
                lane = self._lanes.setdefault(endpoint_id, deque())
                lane.append(delivery)
                self._pending += 1
                if self._lane_runners.get(endpoint_id, 0) < min(self.config.lane_concurrency, len(lane)):
                    self._lane_runners[endpoint_id] = self._lane_runners.get(endpoint_id, 0) + 1
                    self._ready.append(("lane", endpoint_id))
            self._cond.notify(len(endpoint_ids))

    def pause(self) -> None:
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def reset(self) -> None:
        """Forget queued deliveries, scheduled retries and the attempt log; answers to requests already on the wire
        are ignored (`wait_idle` still waits for them). Also resumes."""
        with self._cond:
            self._generation += 1
            self._lanes.clear()
            self._lane_runners.clear()
            self._ready.clear()
            self._retries.clear()
            self._pending = 0
            self._attempts.clear()
            self._paused = False
            self._cond.notify_all()

    def status(self) -> dict:
        with self._cond:
            return {"paused": self._paused, "pending": self._pending, "in_flight": self._in_flight}

    def attempts(self) -> list[dict]:
        with self._cond:
            return list(self._attempts)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no delivery is pending and none is on the wire (True) or `timeout` seconds pass (False).

        After a reset nothing is pending, but a request sent before it may still be in the receiver's hands: idle
        means that it has been answered too, so a caller may then clear what such a request would write."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._pending or self._in_flight:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(remaining)
            return True

    # The delivery threads

    def _work(self) -> None:
        while True:
            with self._cond:
                item = self._next_item()
                if item is None:
                    return
                generation = self._generation
            kind, value = item
            if kind == "lane":
                self._run_lane(value, generation)
            else:
                self._attempt(value)

    def _next_item(self):
        """The next piece of work, waiting for it (and for due retries) as long as needed; None when stopping."""
        while True:
            if self._stopping:
                return None
            now = time.monotonic()
            while self._retries and self._retries[0][0] <= now:
                _, _, delivery = heapq.heappop(self._retries)
                self._ready.append(("retry", delivery))
            if self._ready and not self._paused:
                return self._ready.popleft()
            timeout = self._retries[0][0] - now if self._retries else None
            self._cond.wait(timeout)

    def _run_lane(self, endpoint_id: str, generation: int) -> None:
        with self._cond:
            lane = self._lanes.get(endpoint_id)
            if generation != self._generation or lane is None:
                return
            if not lane:
                self._lane_leave(endpoint_id)
                return
            delivery = lane.popleft()
        self._attempt(delivery)
        with self._cond:
            if generation != self._generation:
                return
            if lane:
                # Back of the queue: other endpoints and due retries get their turn between our events.
                self._ready.append(("lane", endpoint_id))
                self._cond.notify()
            else:
                self._lane_leave(endpoint_id)

    def _lane_leave(self, endpoint_id: str) -> None:
        """A thread stops working an empty lane (under the condition's lock); the last one out removes it."""
        runners = self._lane_runners.get(endpoint_id, 1) - 1
        if runners > 0:
            self._lane_runners[endpoint_id] = runners
            return
        self._lane_runners.pop(endpoint_id, None)
        if not self._lanes.get(endpoint_id):
            self._lanes.pop(endpoint_id, None)

    def _attempt(self, delivery: _Delivery) -> None:
        with self._cond:
            if delivery.generation != self._generation:
                return  # taken from its queue just before a reset: it never goes on the wire
            self._in_flight += 1
        try:
            self._send(delivery)
        finally:
            with self._cond:
                self._in_flight -= 1
                self._cond.notify_all()

    def _send(self, delivery: _Delivery) -> None:
        with self.store.lock:
            endpoint = self.store.find("webhook_endpoint", delivery.endpoint_id)
            secret = self.store.attached.get((delivery.endpoint_id, "secret"))
        if endpoint is None or endpoint["status"] != "enabled":
            # Deleted or disabled since the event was queued: Stripe stops sending to it.
            self._finish(delivery)
            return
        body = delivery.payload.body(self._cond)
        delivery.attempts += 1
        started = time.time()
        clock = time.perf_counter()
        status = error = None
        try:
            status = self._post(endpoint["url"], body, secret)
        except (OSError, http.client.HTTPException, ValueError) as exc:
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = (time.perf_counter() - clock) * 1000
        succeeded = status is not None and 200 <= status < 300
        retry_in = None
        if not succeeded and delivery.attempts < self.config.max_attempts:
            retry_in = self.config.delay_after(delivery.attempts)
        with self._cond:
            if delivery.generation != self._generation:
                return  # the sandbox was reset meanwhile
            if succeeded and delivery.counts_as_pending:
                # Under this lock, not the store's: only deliveries change it, and an API call can read it anytime.
                event = delivery.payload.event
                event["pending_webhooks"] = max(event["pending_webhooks"] - 1, 0)
            self._attempts.append(
                {
                    "event": delivery.event_id,
                    "type": delivery.payload.event["type"],
                    "endpoint": delivery.endpoint_id,
                    "url": endpoint["url"],
                    "attempt": delivery.attempts,
                    "status": status,
                    "error": error,
                    "succeeded": succeeded,
                    "duration_ms": round(duration_ms, 3),
                    "time": started,
                    "next_attempt_at": started + retry_in if retry_in is not None else None,
                }
            )
            if retry_in is not None:
                heapq.heappush(self._retries, (time.monotonic() + retry_in, delivery.sequence, delivery))
                self._cond.notify()
            else:
                self._pending -= 1
                self._cond.notify_all()

    def _finish(self, delivery: _Delivery) -> None:
        with self._cond:
            if delivery.generation == self._generation:
                self._pending -= 1
                self._cond.notify_all()

    # HTTP

    def _post(self, url: str, body: bytes, secret: str | None) -> int:
        """POST the signed body; the HTTP status of the answer. Reuses a kept-alive connection when it can."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url}")
        timestamp = int(time.time())
        signature = hmac.new((secret or "").encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        head = (
            f"POST {target} HTTP/1.1\r\n"
            f"Host: {parts.netloc}\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "Accept: */*; q=0.5, application/xml\r\n"
            "Cache-Control: no-cache\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Stripe-Signature: t={timestamp},v1={signature}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        request = head.encode("latin-1") + body
        origin = (parts.scheme, parts.hostname, parts.port)
        connections = self._connections.by_origin
        sock = connections.pop(origin, None)
        if sock is not None:
            try:
                return self._exchange(sock, request, origin)
            except (OSError, http.client.HTTPException):
                # A kept-alive connection the receiver had closed meanwhile: try once more on a new one.
                sock.close()
        return self._exchange(self._connect(parts), request, origin)

    def _connect(self, parts) -> socket.socket:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        sock = socket.create_connection((parts.hostname, port), timeout=self.config.timeout)
        # The request goes out in one write; Nagle's algorithm could only hold it back.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if parts.scheme == "https":
            sock = ssl.create_default_context().wrap_socket(sock, server_hostname=parts.hostname)
        return sock

    def _exchange(self, sock: socket.socket, request: bytes, origin: tuple) -> int:
        try:
            sock.sendall(request)
            status, keep_alive = _read_response(sock)
        except BaseException:
            sock.close()
            raise
        if keep_alive:
            self._connections.by_origin[origin] = sock
        else:
            sock.close()
        return status


def _read_response(sock: socket.socket) -> tuple[int, bool]:
    """The status of the HTTP response on `sock`, and whether the connection can carry another request.

    Only the status matters, so this is far lighter than http.client's parser: the body is read (and dropped) only
    when its length is known, so that the connection can be reused; otherwise the connection is closed.
    """
    buffer = bytearray()
    while (end := buffer.find(b"\r\n\r\n")) < 0:
        if len(buffer) > RESPONSE_HEAD_LIMIT:
            raise http.client.LineTooLong("response headers")
        chunk = sock.recv(65536)
        if not chunk:
            raise http.client.RemoteDisconnected("the receiver closed the connection without an answer")
        buffer += chunk
    status_line, *header_lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
    version, _, rest = status_line.partition(" ")
    code = rest[:3]
    if not version.startswith("HTTP/") or not code.isdigit():
        raise http.client.BadStatusLine(status_line)
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
    length = headers.get("content-length")
    if not keep_alive or "transfer-encoding" in headers or length is None or not length.isdigit():
        return int(code), False
    remaining = int(length) - (len(buffer) - end - 4)
    if remaining > RESPONSE_BODY_LIMIT:
        return int(code), False
    while remaining > 0:
        chunk = sock.recv(min(remaining, 65536))
        if not chunk:
            return int(code), False
        remaining -= len(chunk)
    return int(code), remaining == 0
