"""`python -m stripe_sandbox [--host H] [--port P] [--public-url URL]`: run the sandbox until SIGTERM or SIGINT."""

import argparse
import signal
import sys
import threading

from stripe_sandbox.server import DEFAULT_HOST, DEFAULT_PORT, SandboxServer


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m stripe_sandbox", description="A local stand-in for the Stripe API."
    )
    parser.add_argument("--host", default=DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
    parser.add_argument("--public-url", help="base of the hosted checkout URLs (default: the URL it listens on)")
    args = parser.parse_args(argv)

    try:
        server = SandboxServer(host=args.host, port=args.port, public_url=args.public_url)
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
