"""`python -m stripe_sandbox [--host H] [--port P] [--public-url URL] [--webhook-...]`: run the sandbox until
SIGTERM or SIGINT. Each webhook flag's default comes from the environment variable named in its help, then from
live Stripe's schedule (retries over about three days)."""

import argparse
import os
import signal
import sys
import threading

from stripe_sandbox.server import DEFAULT_HOST, DEFAULT_PORT, SandboxServer
from stripe_sandbox.store import BillingConfig
from stripe_sandbox.webhooks import DeliveryConfig

_DEFAULTS = DeliveryConfig()
_BILLING = BillingConfig()
AFTER_LAST_RETRY = ("cancel", "unpaid")
# Read by name here, so that a search for `os.environ.get("...")` finds every variable the sandbox reads.
ENVIRONMENT = {
    "STRIPE_SANDBOX_WEBHOOK_RETRY_BASE": os.environ.get("STRIPE_SANDBOX_WEBHOOK_RETRY_BASE"),
    "STRIPE_SANDBOX_WEBHOOK_MAX_ATTEMPTS": os.environ.get("STRIPE_SANDBOX_WEBHOOK_MAX_ATTEMPTS"),
    "STRIPE_SANDBOX_WEBHOOK_TIMEOUT": os.environ.get("STRIPE_SANDBOX_WEBHOOK_TIMEOUT"),
    "STRIPE_SANDBOX_WEBHOOK_WORKERS": os.environ.get("STRIPE_SANDBOX_WEBHOOK_WORKERS"),
    "STRIPE_SANDBOX_WEBHOOK_CONCURRENCY": os.environ.get("STRIPE_SANDBOX_WEBHOOK_CONCURRENCY"),
    "STRIPE_SANDBOX_RETRY_DAYS": os.environ.get("STRIPE_SANDBOX_RETRY_DAYS"),
    "STRIPE_SANDBOX_AFTER_LAST_RETRY": os.environ.get("STRIPE_SANDBOX_AFTER_LAST_RETRY"),
}


def retry_days(text: str) -> tuple[int, ...]:
    """`3,5,7`: days after the first failed payment, rising; empty for no retries."""
    try:
        days = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of days: {text}") from None
    if any(day <= 0 for day in days) or list(days) != sorted(set(days)):
        raise argparse.ArgumentTypeError(f"days must be positive and rising: {text}")
    return days


def _after_last_retry(text: str) -> str:
    if text not in AFTER_LAST_RETRY:
        raise ValueError(text)
    return text


def _env(name: str, convert, default):
    value = ENVIRONMENT[name]
    if value in (None, ""):
        return default
    try:
        return convert(value)
    except (ValueError, argparse.ArgumentTypeError):
        raise SystemExit(f"stripe-sandbox: {name}={value!r} is not a valid {convert.__name__}") from None


def _positive(convert):
    def parse(text: str):
        value = convert(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be greater than 0: {text}")
        return value

    parse.__name__ = convert.__name__
    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_sandbox", description="A local stand-in for the Stripe API."
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--public-url", help="base of the hosted checkout URLs (default: the URL it listens on)")
    webhooks = parser.add_argument_group("webhook deliveries")
    webhooks.add_argument(
        "--webhook-retry-base",
        type=_positive(float),
        default=_env("STRIPE_SANDBOX_WEBHOOK_RETRY_BASE", float, _DEFAULTS.retry_base),
        metavar="SECONDS",
        help="wait before the second attempt; each later wait doubles "
        f"(env STRIPE_SANDBOX_WEBHOOK_RETRY_BASE, default {_DEFAULTS.retry_base:g})",
    )
    webhooks.add_argument(
        "--webhook-max-attempts",
        type=_positive(int),
        default=_env("STRIPE_SANDBOX_WEBHOOK_MAX_ATTEMPTS", int, _DEFAULTS.max_attempts),
        metavar="N",
        help=f"attempts per event and endpoint (env STRIPE_SANDBOX_WEBHOOK_MAX_ATTEMPTS, default "
        f"{_DEFAULTS.max_attempts})",
    )
    webhooks.add_argument(
        "--webhook-timeout",
        type=_positive(float),
        default=_env("STRIPE_SANDBOX_WEBHOOK_TIMEOUT", float, _DEFAULTS.timeout),
        metavar="SECONDS",
        help=f"to connect and to get the answer (env STRIPE_SANDBOX_WEBHOOK_TIMEOUT, default {_DEFAULTS.timeout:g})",
    )
    webhooks.add_argument(
        "--webhook-workers",
        type=_positive(int),
        default=_env("STRIPE_SANDBOX_WEBHOOK_WORKERS", int, _DEFAULTS.workers),
        metavar="N",
        help=f"delivery threads (env STRIPE_SANDBOX_WEBHOOK_WORKERS, default {_DEFAULTS.workers})",
    )
    webhooks.add_argument(
        "--webhook-concurrency",
        type=_positive(int),
        default=_env("STRIPE_SANDBOX_WEBHOOK_CONCURRENCY", int, _DEFAULTS.lane_concurrency),
        metavar="N",
        help="first attempts on the wire at once per endpoint, taken in event order (live Stripe sends concurrently; "
        f"env STRIPE_SANDBOX_WEBHOOK_CONCURRENCY, default {_DEFAULTS.lane_concurrency}: one at a time, in order)",
    )
    renewals = parser.add_argument_group("failed renewal payments")
    renewals.add_argument(
        "--retry-days",
        type=retry_days,
        default=_env("STRIPE_SANDBOX_RETRY_DAYS", retry_days, _BILLING.retry_days),
        metavar="DAYS",
        help="retries of a failed renewal, in days after the first failure (env STRIPE_SANDBOX_RETRY_DAYS, default "
        f"{','.join(map(str, _BILLING.retry_days))})",
    )
    renewals.add_argument(
        "--after-last-retry",
        choices=AFTER_LAST_RETRY,
        default=_env("STRIPE_SANDBOX_AFTER_LAST_RETRY", _after_last_retry, _BILLING.after_last_retry),
        help="what the last failed retry does to the subscription (env STRIPE_SANDBOX_AFTER_LAST_RETRY, default "
        f"{_BILLING.after_last_retry})",
    )
    args = parser.parse_args(argv)
    config = DeliveryConfig(
        retry_base=args.webhook_retry_base,
        max_attempts=args.webhook_max_attempts,
        timeout=args.webhook_timeout,
        workers=args.webhook_workers,
        lane_concurrency=args.webhook_concurrency,
    )

    try:
        server = SandboxServer(
            host=args.host,
            port=args.port,
            public_url=args.public_url,
            webhooks=config,
            billing_config=BillingConfig(retry_days=args.retry_days, after_last_retry=args.after_last_retry),
        )
    except OSError as error:
        print(f"stripe-sandbox: cannot listen on {args.host}:{args.port}: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server.start_in_thread()
    # A parent process waits for exactly this line before using the sandbox.
    print(f"stripe-sandbox listening on {server.url}", flush=True)
    stop.wait()
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
