"""`make bench`: the service as it runs in production (gunicorn, 4 workers, PostgreSQL, Redis) against the sandbox,
loaded from a separate process. Prints requests per second and p50/p99 latency per endpoint, each as a ratio to
/api/health/, and the gunicorn workers' memory before and after a long run.

Needs PostgreSQL and Redis: BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/checkout_bench, dropped and
created afresh) and BENCH_REDIS_URL (default redis://127.0.0.1:6379/13, flushed).
"""

import json
import os
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from pathlib import Path

from bench import stack
from bench.load import percentile
from bench.stack import PY, ROOT

API_PORT = int(os.environ.get("BENCH_API_PORT", "8011"))
SANDBOX_PORT = int(os.environ.get("BENCH_SANDBOX_PORT", "12191"))
API = f"http://127.0.0.1:{API_PORT}"
SANDBOX = f"http://127.0.0.1:{SANDBOX_PORT}"
DATABASE_URL = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/checkout_bench")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
MEMORY_REQUESTS = int(os.environ.get("BENCH_MEMORY_REQUESTS", "20000"))
WEBHOOK_CHECKOUTS = int(os.environ.get("BENCH_WEBHOOK_CHECKOUTS", "500"))
# The webhook part provisions as production does: PROVISIONING_BACKEND=http against a local control panel (the chaos
# run's, tests/chaos/servers.py) that takes this long to answer each call, as a real panel's account creation does.
PANEL_DELAY_SECONDS = float(os.environ.get("BENCH_PANEL_DELAY_MS", "200")) / 1000
PANEL_PORT = int(os.environ.get("BENCH_PANEL_PORT", "12192"))
PANEL_SECRET = "bench-panel-secret-not-a-secret"
RESULT_PATH = Path(os.environ.get("BENCH_RESULT_FILE", str(ROOT / "artifacts" / "bench.json")))

ENV = {
    **stack.production_env(database_url=DATABASE_URL, redis_url=REDIS_URL),
    "STRIPE_API_BASE": SANDBOX,
    "THROTTLE_CHECKOUT_CREATE": "1000000/min",
    "THROTTLE_CHECKOUT_READ": "1000000/min",
    "EMAIL_BACKEND": "django.core.mail.backends.locmem.EmailBackend",
    "STRIPE_WEBHOOK_BASE_URL": API,
    "PROVISIONING_BACKEND": "http",
    "PROVISIONING_HTTP_URL": f"http://127.0.0.1:{PANEL_PORT}",
    "PROVISIONING_HTTP_SECRET": PANEL_SECRET,
}


def prepare_database():
    stack.database_recreate(database_url=DATABASE_URL, redis_url=REDIS_URL, env=ENV)


def register_webhook():
    subprocess.run(
        [PY, "manage.py", "stripe_webhook_register"], check=True, cwd=ROOT, env=ENV, stdout=subprocess.DEVNULL
    )


def load(
    url: str,
    requests: int,
    concurrency: int = 8,
    method: str = "GET",
    body: str | None = None,
    paths: list[str] | None = None,
) -> dict:
    args = [
        PY,
        "-m",
        "bench.load",
        "--url",
        url,
        "--method",
        method,
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
    ]
    if body:
        args += ["--body-template", body]
    if paths:
        with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as paths_file:
            paths_file.write("\n".join(paths))
        args += ["--paths-file", paths_file.name]
    return stack.json_output(args)


def worker_rss_kib(master_pid: int) -> dict[int, int]:
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    rss = {}
    for pid in map(int, children):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                rss[pid] = int(line.split()[1])
    return rss


CREATE_BODY = json.dumps(
    {
        "planId": "starter",
        "billingCycle": "yearly",
        "couponCode": "WELCOME10",
        "customer": {"name": "Bench Customer", "email": "bench{n}@example.com"},
        "domain": {"mode": "new-or-transfer", "value": "bench{n}.example.com"},
    }
)


def main():
    print("preparing: fresh database, migrations, catalog ...", flush=True)
    prepare_database()
    processes = [stack.start(PY, "-m", "stripe_sandbox", "--host", "127.0.0.1", "--port", str(SANDBOX_PORT), env=ENV)]
    gunicorn = stack.gunicorn_start(port=API_PORT, env=ENV)
    processes.append(gunicorn)
    try:
        stack.wait_for(f"{SANDBOX}/_sandbox/health")
        stack.wait_for(f"{API}/api/health/")
        # Warm every worker (imports, connections) before measuring.
        load(f"{API}/api/health/", 400, 8)
        load(f"{API}/api/checkout/create-session", 100, 8, "POST", CREATE_BODY.replace("{n}", "warm{n}"))

        # The webhook part first: it leaves 500 completed sessions, which the reads below use.
        webhook = webhook_phase()

        results = {}
        results["GET /api/health/"] = load(f"{API}/api/health/", 4000, 8)
        created = load(f"{API}/api/checkout/create-session", 2000, 8, "POST", CREATE_BODY)
        import psycopg

        with psycopg.connect(DATABASE_URL) as connection:
            completed, pending = (
                [
                    row[0]
                    for row in connection.execute(
                        "SELECT stripe_session_id FROM checkout_sessions WHERE status = %s LIMIT 2000", (status,)
                    )
                ]
                for status in ("completed", "pending")
            )
        completed = completed[:500]
        # Reading a completed session is one query. Reading a pending one also re-reads it from Stripe in case its
        # webhook is late, at most every 5 s per session: the first read of each session takes that path (one call
        # to the sandbox), a read within 5 s of the last does not. Each is measured on its own.
        results["GET /api/checkout/session/<completed>"] = load(
            f"{API}/api/checkout/session/x", 4000, 8, paths=[f"/api/checkout/session/{i}" for i in completed]
        )
        results["GET /api/checkout/session/<pending>, reaches Stripe"] = load(
            f"{API}/api/checkout/session/x", len(pending), 8, paths=[f"/api/checkout/session/{i}" for i in pending]
        )
        # 40 sessions read once (to Stripe), then 600 reads of them, about 2 s: all within 5 s of that first read.
        recent = [f"/api/checkout/session/{i}" for i in pending[:40]]
        load(f"{API}/api/checkout/session/x", len(recent), 8, paths=recent)
        results["GET /api/checkout/session/<pending>, within 5 s"] = load(
            f"{API}/api/checkout/session/x", 600, 8, paths=recent
        )
        results["POST /api/checkout/create-session"] = created
        ids = completed + pending[:500]

        health = results["GET /api/health/"]["rps"]
        print(f"\n{'endpoint':40} {'req/s':>8} {'x health':>9} {'p50 ms':>8} {'p99 ms':>8}  statuses")
        for name, r in results.items():
            print(
                f"{name:40} {r['rps']:8.0f} {r['rps'] / health:9.2f} {r['p50_ms']:8.1f} {r['p99_ms']:8.1f}  "
                f"{r['statuses']}"
            )

        before = worker_rss_kib(gunicorn.pid)
        third = MEMORY_REQUESTS // 3
        load(f"{API}/api/health/", third, 8)
        load(f"{API}/api/checkout/session/x", third, 8, paths=[f"/api/checkout/session/{i}" for i in ids])
        load(
            f"{API}/api/checkout/create-session",
            MEMORY_REQUESTS - 2 * third,
            8,
            "POST",
            CREATE_BODY.replace("{n}", "mem{n}"),
        )
        after = worker_rss_kib(gunicorn.pid)
        print(f"\ngunicorn worker memory over {MEMORY_REQUESTS} more requests (RSS, MiB):")
        for pid in sorted(before):
            b, a = before[pid] / 1024, after.get(pid, 0) / 1024
            print(f"  worker {pid}: {b:6.1f} -> {a:6.1f}  ({(a - b) / b * 100:+.1f} %)")
        total_b, total_a = sum(before.values()), sum(after.values())
        print(
            f"  all workers: {total_b / 1024:.1f} -> {total_a / 1024:.1f} MiB ({(total_a - total_b) / total_b * 100:+.1f} %)"
        )
        RESULT_PATH.parent.mkdir(parents=True, exist_ok=True)
        RESULT_PATH.write_text(
            json.dumps(
                {
                    "endpoints": {name: {**r, "x_health": r["rps"] / health} for name, r in results.items()},
                    "webhooks": webhook,
                    "worker_rss_kib": {
                        "before": sum(before.values()),
                        "after": sum(after.values()),
                        "requests": MEMORY_REQUESTS,
                    },
                },
                indent=2,
                default=str,
            )
            + "\n"
        )
        print(f"\nfigures also in {RESULT_PATH}")
    finally:
        stack.stop(processes)


def sandbox_call(method: str, path: str, data: dict | None = None) -> dict:
    body = urllib.parse.urlencode(data or {}).encode() if method == "POST" else None
    request = urllib.request.Request(
        f"{SANDBOX}{path}", data=body, method=method, headers={"Authorization": f"Bearer {ENV['STRIPE_SECRET_KEY']}"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def webhook_phase():
    """500 distinct paid checkouts completed in the sandbox; the time until every one is provisioned by one worker
    (a real Celery worker process, concurrency 2 = the cores) through the HTTP backend against a control panel that
    answers in 200 ms, and how fast our webhook endpoint answered."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg

    from tests.chaos.servers import ControlPanel, PanelFaults

    panel = ControlPanel(secret=PANEL_SECRET, faults=PanelFaults(delay=PANEL_DELAY_SECONDS))
    panel.start(PANEL_PORT)
    register_webhook()
    worker = stack.celery_worker_start(env=ENV)
    body = CREATE_BODY.replace("bench{n}", "paid{n}")
    load(f"{API}/api/checkout/create-session", WEBHOOK_CHECKOUTS, 8, "POST", body)
    with psycopg.connect(DATABASE_URL) as connection:
        ids = [
            row[0]
            for row in connection.execute("SELECT stripe_session_id FROM checkout_sessions WHERE email LIKE 'paid%%'")
        ]
    assert len(ids) == WEBHOOK_CHECKOUTS, len(ids)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: sandbox_call("POST", f"/v1/test_helpers/checkout/sessions/{i}/complete"), ids))
    completed = time.perf_counter() - started
    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        while True:
            [[done]] = connection.execute(
                "SELECT count(*) FROM provisioning_hostingaccount h JOIN accounts_subscription s "
                "ON s.id = h.subscription_id JOIN checkout_sessions c ON c.id = s.checkout_session_id "
                "WHERE c.email LIKE 'paid%%'"
            ).fetchall()
            elapsed = time.perf_counter() - started
            if done >= WEBHOOK_CHECKOUTS or elapsed > 300:
                break
            time.sleep(0.2)
        [[emails]] = connection.execute(
            "SELECT count(*) FROM provisioning_emailnotification WHERE status = 'sent'"
        ).fetchall()
    deliveries = json.loads(
        urllib.request.urlopen(f"{SANDBOX}/_sandbox/deliveries?type=checkout.session.completed", timeout=30).read()
    )["data"]
    durations = [d["duration_ms"] for d in deliveries]
    delivery_p50, delivery_p99 = percentile(durations, 0.5), percentile(durations, 0.99)
    failed = sum(1 for d in deliveries if not d["succeeded"])
    print(f"\nwebhooks: {WEBHOOK_CHECKOUTS} paid checkouts completed in the sandbox in {completed:.1f} s")
    print(
        f"  provisioned: {done}/{WEBHOOK_CHECKOUTS} in {elapsed:.1f} s from the first payment "
        f"(one worker, concurrency 2, HTTP backend, control panel answering in {PANEL_DELAY_SECONDS * 1000:.0f} ms: "
        f"{len(panel.calls)} calls, {len(panel.creations)} accounts); e-mails sent: {emails}"
    )
    print(
        f"  checkout.session.completed deliveries: {len(deliveries)} ({failed} not 2xx); "
        f"response p50 {delivery_p50:.0f} ms, p99 {delivery_p99:.0f} ms"
    )
    stack.stop([worker])  # idle from here on; the HTTP figures are taken without it
    panel.stop()
    return {
        "checkouts": WEBHOOK_CHECKOUTS,
        "completed_in_sandbox_s": completed,
        "provisioned": done,
        "provisioned_in_s": elapsed,
        "panel_delay_ms": PANEL_DELAY_SECONDS * 1000,
        "panel_calls": len(panel.calls),
        "accounts_created": len(panel.creations),
        "emails_sent": emails,
        "deliveries": len(deliveries),
        "deliveries_failed": failed,
        "delivery_p50_ms": delivery_p50,
        "delivery_p99_ms": delivery_p99,
    }


if __name__ == "__main__":
    main()
