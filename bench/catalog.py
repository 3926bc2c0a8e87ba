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
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
PORT = int(os.environ.get("BENCH_CATALOG_PORT", "19150"))
API = f"http://127.0.0.1:{PORT}"
DATABASE_URL = os.environ.get("BENCH_CATALOG_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/catalog_bench")
REDIS_URL = os.environ.get("BENCH_CATALOG_REDIS_URL", "redis://127.0.0.1:6379/14")
REQUESTS = int(os.environ.get("BENCH_CATALOG_REQUESTS", "4000"))
ROUNDS = 3
CONCURRENCY = 8

ENV = {
    **os.environ,
    "DJANGO_SETTINGS_MODULE": "config.settings.production",
    "DJANGO_SECRET_KEY": "bench-only-not-a-secret-signs-nothing-kept-0123456789abcdefgh",
    "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    "DJANGO_SECURE_SSL_REDIRECT": "false",
    "DJANGO_NUM_PROXIES": "0",
    "DATABASE_URL": DATABASE_URL,
    "REDIS_URL": REDIS_URL,
    "STRIPE_SECRET_KEY": "sk_test_benchmark000000000000000000000",
    "LOG_LEVEL": "WARNING",
}


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

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "seconds": wall,
        "rps": len(latencies) / wall,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
        "statuses": {str(k): v for k, v in sorted(statuses.items())},
        "etags": len(etags_seen),
    }


def measured(path: str, requests: int, send_etag: bool = False, edit_at: int | None = None) -> dict:
    args = [PY, "-m", "bench.catalog", "--load", path, "--requests", str(requests), "--concurrency", str(CONCURRENCY)]
    args += (["--send-etag"] if send_etag else []) + (["--edit-at", str(edit_at)] if edit_at is not None else [])
    return json.loads(subprocess.run(args, cwd=ROOT, check=True, capture_output=True, text=True).stdout)


# --- The service ------------------------------------------------------------------------------------------------------


def prepare_database() -> None:
    import psycopg
    import redis

    name = urlsplit(DATABASE_URL).path.lstrip("/")
    admin = DATABASE_URL.rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(REDIS_URL).flushdb()
    for command in (["migrate", "--noinput"], ["catalog_load"]):
        subprocess.run([PY, "manage.py", *command], cwd=ROOT, env=ENV, check=True, stdout=subprocess.DEVNULL)


def wait_for(url: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit(f"{url} did not answer within {seconds} s")


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
    prepare_database()
    gunicorn = subprocess.Popen(
        [
            PY,
            "-m",
            "gunicorn",
            "config.wsgi:application",
            "--workers",
            "4",
            "--bind",
            f"127.0.0.1:{PORT}",
            "--log-level",
            "warning",
        ],
        cwd=ROOT,
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
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
        os.killpg(gunicorn.pid, signal.SIGTERM)
        gunicorn.wait(timeout=30)

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
