"""Times the sandbox through stripe-python: `python -m stripe_sandbox.bench [-n 500]` times sequential
`checkout.sessions.create` calls; `--webhooks` times paying each session (create + complete) with every webhook
delivered to a local receiver that answers 200 at once, until the last delivery is done.

Starts its own sandbox process (as the service uses it) unless `--url` names a running one."""

import argparse
import json
import multiprocessing
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import stripe

API_KEY = "sk_test_" + "bench" * 5

SESSION_PARAMS = {
    "mode": "subscription",
    "success_url": "https://shop.test/success?session_id={CHECKOUT_SESSION_ID}",
    "cancel_url": "https://shop.test/cancel",
    "customer_email": "bench@example.com",
    "metadata": {"order": "bench"},
    "line_items": [
        {
            "quantity": 1,
            "price_data": {
                "currency": "usd",
                "unit_amount": 799,
                "recurring": {"interval": "month"},
                "product_data": {"name": "Shared hosting", "metadata": {"plan": "basic"}},
            },
        }
    ],
}


def time_calls(url: str, n: int) -> list[float]:
    """Seconds taken by each of `n` sequential creations, after a few warm-up calls."""
    client = stripe.StripeClient(API_KEY, base_addresses={"api": url}, max_network_retries=0)
    for _ in range(10):
        client.v1.checkout.sessions.create(params=SESSION_PARAMS)
    durations = []
    for _ in range(n):
        start = time.perf_counter()
        client.v1.checkout.sessions.create(params=SESSION_PARAMS)
        durations.append(time.perf_counter() - start)
    return durations


class _Receiver(BaseHTTPRequestHandler):
    """Answers every webhook 200 at once, in one write, on a kept-alive connection; GET tells how many came."""

    protocol_version = "HTTP/1.1"
    count = 0
    lock = threading.Lock()

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with _Receiver.lock:
            _Receiver.count += 1
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    def do_GET(self):
        body = str(_Receiver.count).encode()
        self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)

    def log_message(self, format, *args):
        pass


def _serve_receiver(ports: multiprocessing.Queue) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.daemon_threads = True
    ports.put(server.server_address[1])
    server.serve_forever()


def _start_receiver() -> tuple[multiprocessing.Process, str]:
    """The receiver in its own process, as the service's webhook handler would be, so it takes no CPU from here."""
    ports: multiprocessing.Queue = multiprocessing.Queue()
    process = multiprocessing.Process(target=_serve_receiver, args=(ports,), daemon=True)
    process.start()
    return process, f"http://127.0.0.1:{ports.get(timeout=10)}"


def _control(url: str, path: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{url}/_sandbox/{path}", data=data, method="POST" if data else "GET")
    with urllib.request.urlopen(request, timeout=120) as response:
        return json.loads(response.read())


def time_paid_sessions(url: str, n: int, *, webhooks: bool) -> dict:
    """Create and pay `n` sessions one after another, with a webhook endpoint for every event or without any
    endpoint (the baseline); the figures."""
    receiver, receiver_url = _start_receiver()
    client = stripe.StripeClient(API_KEY, base_addresses={"api": url}, max_network_retries=0)
    try:
        _control(url, "reset", {})
        if webhooks:
            client.v1.webhook_endpoints.create(params={"url": f"{receiver_url}/hooks", "enabled_events": ["*"]})
        for _ in range(10):  # warm-up
            session = client.v1.checkout.sessions.create(params=SESSION_PARAMS)
            client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete")
        while not _control(url, "deliveries/wait", {"timeout": 60})["idle"]:
            pass
        first_attempt = len(_control(url, "deliveries")["data"])
        durations = []
        start = time.perf_counter()
        for _ in range(n):
            begin = time.perf_counter()
            session = client.v1.checkout.sessions.create(params=SESSION_PARAMS)
            client.raw_request("post", f"/v1/test_helpers/checkout/sessions/{session.id}/complete")
            durations.append(time.perf_counter() - begin)
        api_done = time.perf_counter() - start
        while not _control(url, "deliveries/wait", {"timeout": 60})["idle"]:
            pass
        all_done = time.perf_counter() - start
        attempts = _control(url, "deliveries")["data"][first_attempt:]
        with urllib.request.urlopen(receiver_url, timeout=10) as response:
            received = int(response.read())
    finally:
        receiver.terminate()
        receiver.join()
    return {
        "durations": durations,
        "api_seconds": api_done,
        "total_seconds": all_done,
        "deliveries": len(attempts),
        "failed": sum(not attempt["succeeded"] for attempt in attempts),
        "received": received - first_attempt,
        "delivery_ms": [attempt["duration_ms"] for attempt in attempts],
    }


def _start_sandbox() -> tuple[subprocess.Popen, str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "stripe_sandbox", "--port", "0"], stdout=subprocess.PIPE, text=True
    )
    line = process.stdout.readline().strip()
    prefix = "stripe-sandbox listening on "
    if not line.startswith(prefix):
        process.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return process, line.removeprefix(prefix)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stripe_sandbox.bench")
    parser.add_argument("-n", type=int, default=500, help="number of calls (default 500)")
    parser.add_argument("--url", help="a running sandbox (default: start one)")
    parser.add_argument(
        "--webhooks", action="store_true", help="pay each session and deliver its webhooks (resets the sandbox)"
    )
    args = parser.parse_args(argv)

    process = None
    url = args.url
    if url is None:
        process, url = _start_sandbox()
    try:
        if args.webhooks:
            baseline = time_paid_sessions(url, args.n, webhooks=False)
            figures = time_paid_sessions(url, args.n, webhooks=True)
        else:
            durations = time_calls(url, args.n)
    finally:
        if process is not None:
            process.terminate()
            process.wait()
    if not args.webhooks:
        print(f"{args.n} sequential checkout.sessions.create calls: {_summary(durations)}")
        return
    print(
        f"{args.n} sessions created and paid one after another, no webhook endpoint: "
        f"{_summary(baseline['durations'])} per session (create + complete), {baseline['api_seconds']:.2f} s in all"
    )
    print(
        f"{args.n} sessions created and paid one after another, an endpoint for every event: "
        f"{_summary(figures['durations'])} per session, {figures['api_seconds']:.2f} s in all"
    )
    print(
        f"{figures['deliveries']} webhook deliveries ({figures['failed']} failed, {figures['received']} received), "
        f"all done {figures['total_seconds']:.2f} s after the first request "
        f"({figures['deliveries'] / figures['total_seconds']:.0f} deliveries/s); each delivery "
        f"{_summary([ms / 1000 for ms in figures['delivery_ms']])}"
    )


def _summary(durations: list[float]) -> str:
    ms = sorted(d * 1000 for d in durations)
    return (
        f"{statistics.fmean(ms):.2f} ms mean (median {statistics.median(ms):.2f}, p95 {ms[int(len(ms) * 0.95)]:.2f}, "
        f"max {ms[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
