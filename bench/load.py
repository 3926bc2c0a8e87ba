"""A small HTTP load generator, run as its own process: N requests over C threads, then latency figures as JSON.

`python -m bench.load --url URL [--method POST --body-template JSON] --requests N --concurrency C`
In a body template, `{n}` becomes the request's sequence number, so every request can be distinct.
Its figures (summary, percentile) and its threads (threaded) are also those of bench.catalog's own load.
"""

import argparse
import http.client
import json
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit


def run(
    url: str, method: str, body_template: str | None, requests: int, concurrency: int, paths: list[str] | None = None
) -> dict:
    target = urlsplit(url)
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    def worker():
        connection = None
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            path = paths[n % len(paths)] if paths else target.path
            body = body_template.replace("{n}", str(n)).encode() if body_template else None
            headers = {"Content-Type": "application/json"} if body else {}
            started = time.perf_counter()
            for _attempt in range(2):
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection(target.hostname, target.port, timeout=30)
                        connection.connect()
                        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connection.request(method, path, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    if response.getheader("Connection", "").lower() == "close":
                        connection.close()
                        connection = None
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    # gunicorn's sync workers close idle keep-alive connections: reconnect once.
                    if connection is not None:
                        connection.close()
                    connection = None
                    status = 0
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1

    seconds = threaded(worker, concurrency)
    return summary(latencies, statuses, seconds)


def threaded(worker: Callable[[], None], concurrency: int) -> float:
    """Run worker in concurrency threads at once; the wall-clock seconds until the last one ends."""
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started


def percentile(values: list[float], fraction: float) -> float:
    """The value below which that fraction of values lie: the sorted list's element at int(len * fraction), the last
    one at most. p50 and p99 alike, so the two are read the same way (for an even count, p50 is the upper of the two
    middle values rather than their mean)."""
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * fraction))]


def summary(latencies: list[float], statuses: dict[int, int], seconds: float) -> dict:
    """A load's figures from each request's latency (seconds) and the count of each HTTP status (0: no answer)."""
    return {
        "requests": len(latencies),
        "seconds": seconds,
        "rps": len(latencies) / seconds,
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True)
    parser.add_argument("--method", default="GET")
    parser.add_argument("--body-template")
    parser.add_argument("--paths-file", help="one path a line, used in turn instead of the URL's path")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    paths = Path(args.paths_file).read_text().split() if args.paths_file else None
    json.dump(run(args.url, args.method, args.body_template, args.requests, args.concurrency, paths), sys.stdout)


if __name__ == "__main__":
    main()
