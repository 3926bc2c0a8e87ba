"""`make bench`, catalog part: GET /api/catalog/ served by gunicorn (4 workers, production settings, PostgreSQL, Redis)
beside /api/health/ in the same run, as a ratio of requests per second (target: at least 0.8), and the share of 304
answers for clients that send back the ETag they were given, while staff change a price once halfway.

Needs PostgreSQL and Redis: BENCH_CATALOG_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/catalog_bench,
dropped and created afresh) and BENCH_CATALOG_REDIS_URL (default redis://127.0.0.1:6379/14, flushed); gunicorn listens
on BENCH_CATALOG_PORT (default 19150).
"""

import argparse
import http.client
import json
import os
import socket
import sys
import threading
import time

from bench.load import summary, threaded
from bench.stack import PY, database_recreate, gunicorn_start, json_output, production_env, stop, wait_for

PORT = int(os.environ.get("BENCH_CATALOG_PORT", "19150"))
API = f"http://127.0.0.1:{PORT}"
DATABASE_URL = os.environ.get("BENCH_CATALOG_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/catalog_bench")
REDIS_URL = os.environ.get("BENCH_CATALOG_REDIS_URL", "redis://127.0.0.1:6379/14")
REQUESTS = int(os.environ.get("BENCH_CATALOG_REQUESTS", "4000"))
ROUNDS = 3
CONCURRENCY = 8

ENV = production_env(database_url=DATABASE_URL, redis_url=REDIS_URL)


# --- The load: its own process, threads with keep-alive connections; a client may keep and send its ETag -------------


def load(path: str, requests: int, concurrency: int, send_etag: bool, edit_at: int | None = None) -> dict:
    counter = iter(range(requests))
    lock = threading.Lock()
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    etags_seen: set[str] = set()

    def client():
        connection, etag = None, None
        while True:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            if n == edit_at:
                price_edit()
            headers = {"If-None-Match": etag} if send_etag and etag else {}
            started = time.perf_counter()
            status = 0
            for _ in range(2):
                try:
                    if connection is None:
                        connection = http.client.HTTPConnection("127.0.0.1", PORT, timeout=30)
                        connection.connect()
                        connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    connection.request("GET", path, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    status = response.status
                    if response.status == 200 and response.getheader("ETag"):
                        etag = response.getheader("ETag")
                    break
                except (ConnectionError, http.client.HTTPException, OSError):
                    # gunicorn's sync workers close idle keep-alive connections: reconnect once.
                    if connection is not None:
                        connection.close()
                    connection = None
            elapsed = time.perf_counter() - started
            with lock:
                latencies.append(elapsed)
                statuses[status] = statuses.get(status, 0) + 1
                if etag:
                    etags_seen.add(etag)

    seconds = threaded(client, concurrency)
    return {**summary(latencies, statuses, seconds), "etags": len(etags_seen)}


def measured(path: str, requests: int, send_etag: bool = False, edit_at: int | None = None) -> dict:
    args = [PY, "-m", "bench.catalog", "--load", path, "--requests", str(requests), "--concurrency", str(CONCURRENCY)]
    args += (["--send-etag"] if send_etag else []) + (["--edit-at", str(edit_at)] if edit_at is not None else [])
    return json_output(args)


# --- The service ------------------------------------------------------------------------------------------------------


def price_edit() -> None:
    """What a staff member's save in the admin does to the rows: a new amount and a new updated_at."""
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        connection.execute(
            "UPDATE catalog_price SET unit_amount = unit_amount + 1, updated_at = now() "
            "WHERE id = (SELECT min(id) FROM catalog_price WHERE active)"
        )


def main() -> None:
    print("catalog: fresh database, migrations, catalog ...", flush=True)
    database_recreate(database_url=DATABASE_URL, redis_url=REDIS_URL, env=ENV)
    gunicorn = gunicorn_start(port=PORT, env=ENV)
    try:
        wait_for(f"{API}/api/health/")
        for path in ("/api/health/", "/api/catalog/"):  # warm every worker: imports, connections, the built answer
            measured(path, 400)

        # Alternating rounds, so that a slower moment of the machine weighs on both endpoints alike.
        totals = {"/api/health/": [], "/api/catalog/": []}
        for _ in range(ROUNDS):
            for path in totals:
                totals[path].append(measured(path, REQUESTS))

        # Clients that send back their ETag; a price is edited halfway through, so each must fetch the new one once.
        conditional = measured("/api/catalog/", REQUESTS, send_etag=True, edit_at=REQUESTS // 2)
    finally:
        stop([gunicorn])

    def rps(runs: list[dict]) -> float:
        return sum(r["requests"] for r in runs) / sum(r["seconds"] for r in runs)

    health = rps(totals["/api/health/"])
    print(f"\n{'endpoint':44} {'req/s':>8} {'x health':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses")
    rows = [
        ("GET /api/health/", totals["/api/health/"]),
        ("GET /api/catalog/", totals["/api/catalog/"]),
        ("GET /api/catalog/ sending its ETag", [conditional]),
    ]
    for name, runs in rows:
        statuses: dict[str, int] = {}
        for r in runs:
            for status, count in r["statuses"].items():
                statuses[status] = statuses.get(status, 0) + count
        print(
            f"{name:44} {rps(runs):8.0f} {rps(runs) / health:9.2f} {runs[-1]['p50_ms']:8.1f} "
            f"{runs[-1]['p99_ms']:8.1f}  {statuses}"
        )
    ratio = rps(totals["/api/catalog/"]) / health
    share_304 = conditional["statuses"].get("304", 0) / conditional["requests"]
    print(
        f"\ncatalog / health: {ratio:.2f} (target >= 0.8){'' if ratio >= 0.8 else '  BELOW TARGET'}; "
        f"{ROUNDS} alternating rounds of {REQUESTS} requests, {CONCURRENCY} clients"
    )
    print(
        f"304 share for clients sending their ETag: {share_304:.1%} of {conditional['requests']} "
        f"({conditional['etags']} ETags seen: a price was edited halfway, so each client fetched the new one once)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", help="run as the load process: GET this path and print figures as JSON")
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=CONCURRENCY)
    parser.add_argument("--send-etag", action="store_true")
    parser.add_argument("--edit-at", type=int, help="edit a price before sending this request (its number)")
    arguments = parser.parse_args()
    if arguments.load:
        json.dump(
            load(arguments.load, arguments.requests, arguments.concurrency, arguments.send_etag, arguments.edit_at),
            sys.stdout,
        )
    else:
        main()
