"""Times sequential `checkout.sessions.create` calls through stripe-python: `python -m stripe_sandbox.bench [-n 500]`.

Starts its own sandbox process (as the service uses it) unless `--url` names a running one."""

import argparse
import statistics
import subprocess
import sys
import time

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
    args = parser.parse_args(argv)

    process = None
    url = args.url
    if url is None:
        process, url = _start_sandbox()
    try:
        durations = time_calls(url, args.n)
    finally:
        if process is not None:
            process.terminate()
            process.wait()
    ms = sorted(d * 1000 for d in durations)
    print(
        f"{args.n} sequential checkout.sessions.create calls: {statistics.fmean(ms):.2f} ms/call "
        f"(median {statistics.median(ms):.2f}, p95 {ms[int(len(ms) * 0.95)]:.2f}, max {ms[-1]:.2f})"
    )


if __name__ == "__main__":
    main()
