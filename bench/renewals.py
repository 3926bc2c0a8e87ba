"""`make bench`, renewal part: N monthly subscriptions (1,000; 100 of them on a card that declines) renew in one jump of
the sandbox's clock. Prints the time until every renewal is recorded and every decision taken (receipts and pay-link
e-mails sent) by one Celery worker, the renewal webhooks' p50/p99 from the sandbox's delivery log, and the queries of
ours per renewal event (a sample processed in this process through dj-stripe's Event.process), each beside its ratio
to /api/health/ measured in the same run, as the targets are ratios (these machines differ threefold day to day).

Same stack and variables as bench.run (BENCH_DATABASE_URL, dropped and created afresh; BENCH_REDIS_URL, flushed;
BENCH_API_PORT, BENCH_SANDBOX_PORT; the subscriptions set up through the HTTP backend against bench.run's local control
panel, BENCH_PANEL_PORT and BENCH_PANEL_DELAY_MS), plus BENCH_RENEWALS (1000) and BENCH_RENEWALS_FAILING (100).
"""

import json
import os
import time
import traceback
import urllib.request
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from bench.load import percentile
from bench.run import (
    API,
    API_PORT,
    DATABASE_URL,
    ENV,
    PANEL_DELAY_SECONDS,
    PANEL_PORT,
    PANEL_SECRET,
    SANDBOX,
    SANDBOX_PORT,
    load,
    prepare_database,
    register_webhook,
    sandbox_call,
)
from bench.stack import PY, ROOT, celery_worker_start, gunicorn_start, start, stop, wait_for, wait_until

RENEWALS = int(os.environ.get("BENCH_RENEWALS", "1000"))
FAILING = int(os.environ.get("BENCH_RENEWALS_FAILING", "100"))
DAY = 24 * 3600
TIMEOUT = float(os.environ.get("BENCH_RENEWALS_TIMEOUT", "1200"))
WEBHOOK_CONCURRENCY = int(os.environ.get("BENCH_RENEWALS_WEBHOOK_CONCURRENCY", "2"))
# Targets, as ratios to /api/health/ in the same run (issue 7).
TARGET_DECIDED_RATIO = 0.01
TARGET_WEBHOOK_P50_RATIO = 15
TARGET_QUERIES = 15
SAMPLE_PAYING, SAMPLE_FAILING = 20, 10

BODY = json.dumps(
    {
        "planId": "starter",
        "billingCycle": "monthly",
        "customer": {"name": "Renewing Customer", "email": "renew{n}@example.com"},
        "domain": {"mode": "new-or-transfer", "value": "renew{n}.example.com"},
    }
)
OUR_CODE = tuple(
    str(ROOT / app) + os.sep for app in ("accounts", "billing", "catalog", "checkout", "core", "provisioning")
)


def sql(query: str, *params):
    import psycopg

    with psycopg.connect(DATABASE_URL, autocommit=True) as connection:
        return connection.execute(query, params).fetchall()


def sandbox_control(method: str, path: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(
        f"{SANDBOX}/_sandbox/{path}",
        method=method,
        data=json.dumps(body).encode() if body is not None else None,
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=600) as response:
        return json.loads(response.read())


def subscribe_all() -> tuple[list[str], list[str]]:
    """RENEWALS paid monthly checkouts, provisioned; the first FAILING of them then move to a declining card.
    (paying, failing) Stripe subscription ids."""
    load(f"{API}/api/checkout/create-session", RENEWALS, 8, "POST", BODY)
    sessions = [
        row[0] for row in sql("SELECT stripe_session_id FROM checkout_sessions WHERE email LIKE 'renew%%' ORDER BY id")
    ]
    assert len(sessions) == RENEWALS, len(sessions)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda i: sandbox_call("POST", f"/v1/test_helpers/checkout/sessions/{i}/complete"), sessions))
    wait_until(
        "every subscription provisioned and its first e-mails sent",
        lambda: sql(
            "SELECT (SELECT count(*) FROM provisioning_hostingaccount) = %s AND NOT EXISTS (SELECT 1 FROM "
            "provisioning_emailnotification WHERE status IN ('pending', 'sending'))",
            RENEWALS,
        )[0][0],
        TIMEOUT,
    )
    rows = sql("SELECT stripe_subscription_id, stripe_customer_id FROM accounts_subscription ORDER BY id")

    def decline(row):
        subscription, customer = row
        card = sandbox_call("POST", "/v1/payment_methods/pm_card_chargeCustomerFail/attach", {"customer": customer})
        sandbox_call("POST", f"/v1/subscriptions/{subscription}", {"default_payment_method": card["id"]})

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(decline, rows[:FAILING]))
    return [row[0] for row in rows[FAILING:]], [row[0] for row in rows[:FAILING]]


def decided() -> tuple[int, int, int, int]:
    """(renewal invoices recorded paid, recorded open after a failure, receipts sent, pay-link e-mails sent)."""
    return sql(
        "SELECT count(*) FILTER (WHERE status = 'paid'), count(*) FILTER (WHERE status = 'open' AND first_failed_at "
        "IS NOT NULL), (SELECT count(*) FROM provisioning_emailnotification WHERE purpose = 'renewal_receipt' AND "
        "status = 'sent'), (SELECT count(*) FROM provisioning_emailnotification WHERE purpose = 'renewal_failed' AND "
        "status = 'sent') FROM billing_subscriptioninvoice WHERE billing_reason = 'subscription_cycle'"
    )[0]


def renewal_storm(paying: int, failing: int) -> dict:
    """One clock jump renews every subscription; the time until our database shows every renewal recorded and
    every decision taken."""
    end = max(row[0] for row in sql("SELECT extract(epoch FROM current_period_end)::bigint FROM accounts_subscription"))
    delivered_before = len(sandbox_control("GET", "deliveries")["data"])
    target = (paying, failing, paying, failing)
    started = time.perf_counter()
    jump = sandbox_control("POST", "clock/advance", {"seconds": end + 3600 - sandbox_control("GET", "clock")["now"]})
    jumped = time.perf_counter() - started
    wait_until("every renewal decided", lambda: decided() == target, TIMEOUT)
    elapsed = time.perf_counter() - started
    sandbox_control("POST", "deliveries/wait", {"timeout": 60})
    deliveries = sandbox_control("GET", "deliveries")["data"][delivered_before:]
    return {"elapsed": elapsed, "jumped": jumped, "steps": jump["billing_steps"], "deliveries": deliveries}


class QueryCounter:
    """Counts the queries run while installed, ours (issued from our apps' code, wherever the call came from) apart
    from dj-stripe's own."""

    def __init__(self):
        self.ours = self.theirs = 0
        self.our_sql: list[str] = []

    def __call__(self, execute, sql_text, params, many, context):
        if any(frame.filename.startswith(OUR_CODE) for frame in traceback.extract_stack()):
            self.ours += 1
            self.our_sql.append(sql_text)
        else:
            self.theirs += 1
        return execute(sql_text, params, many, context)


def event_subscription(event: dict) -> str | None:
    obj = event["data"]["object"]
    if obj.get("object") == "subscription":
        return obj["id"]
    if obj.get("object") == "invoice":
        return ((obj.get("parent") or {}).get("subscription_details") or {}).get("subscription")
    return None


def queries_per_event(sample: set[str]) -> dict[str, list[tuple[int, int]]]:
    """A second renewal, not delivered: each event of the sampled subscriptions that our endpoint takes is
    processed here through dj-stripe's Event.process (signature checks aside, what the webhook view does), counting
    queries. {event type: [(ours, dj-stripe's) per event]}."""
    os.environ.update(ENV)  # this process becomes one more Django process of the stack
    import django

    django.setup()
    from django.conf import settings
    from django.db import connection
    from djstripe.models import Event

    since = sandbox_control("GET", "clock")["now"]
    sandbox_control("POST", "deliveries/pause", {})
    end = max(
        row[0]
        for row in sql(
            "SELECT extract(epoch FROM current_period_end)::bigint FROM accounts_subscription WHERE status = 'active'"
        )
    )
    sandbox_control("POST", "clock/advance", {"seconds": end + 3600 - since})
    events, after = [], None
    while True:
        page = sandbox_call(
            "GET", "/v1/events?limit=100&created[gte]=" + str(since) + (f"&starting_after={after}" if after else "")
        )
        events += page["data"]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    wanted = set(settings.STRIPE_WEBHOOK_EVENTS)
    events = [e for e in reversed(events) if e["type"] in wanted and event_subscription(e) in sample]
    figures: dict[str, list[tuple[int, int]]] = defaultdict(list)
    show = os.environ.get("BENCH_RENEWALS_SHOW_SQL", "")  # an event type: print our queries for its first event
    for event in events:
        counter = QueryCounter()
        with connection.execute_wrapper(counter):
            Event.process(event)
        if event["type"] == show and not figures[show]:
            print(f"our queries for {event['id']} ({show}):\n  " + "\n  ".join(q[:160] for q in counter.our_sql))
        figures[event["type"]].append((counter.ours, counter.theirs))
    return figures


def main():
    print(
        f"renewals: preparing (fresh database, {RENEWALS} monthly subscriptions, {FAILING} on a declining card) ...",
        flush=True,
    )
    prepare_database()
    # Several first attempts on the wire at once: live Stripe sends an endpoint's events concurrently and in no
    # promised order, and our receivers are built for that (the sandbox's default, one at a time, would measure the
    # sandbox's queue instead). Two, one per core of these machines: more raises throughput and latency together.
    processes = [
        start(
            PY,
            "-m",
            "stripe_sandbox",
            "--host",
            "127.0.0.1",
            "--port",
            str(SANDBOX_PORT),
            "--webhook-concurrency",
            str(WEBHOOK_CONCURRENCY),
            env=ENV,
        )
    ]
    gunicorn = gunicorn_start(port=API_PORT, env=ENV)
    processes.append(gunicorn)
    # The subscriptions are set up as production's are, through the HTTP backend (bench.run's ENV): against the same
    # local control panel as the webhook part, or every setup would wait on a panel that is not there.
    from tests.chaos.servers import ControlPanel, PanelFaults

    panel = ControlPanel(secret=PANEL_SECRET, faults=PanelFaults(delay=PANEL_DELAY_SECONDS))
    try:
        panel.start(PANEL_PORT)  # inside: a port taken still stops the processes started above
        wait_for(f"{SANDBOX}/_sandbox/health")
        wait_for(f"{API}/api/health/")
        register_webhook()
        # One worker process (concurrency 2 = the cores), as for the first payments' figures.
        processes.append(celery_worker_start(env=ENV))
        load(f"{API}/api/health/", 400, 8)  # warm every gunicorn worker
        paying, failing = subscribe_all()
        health = load(f"{API}/api/health/", 4000, 8)  # the baseline, in this run, the worker idle

        storm = renewal_storm(len(paying), len(failing))

        deliveries = storm["deliveries"]
        durations = [d["duration_ms"] for d in deliveries]
        not_2xx = sum(1 for d in deliveries if not d["succeeded"])
        by_type = Counter(d["type"] for d in deliveries)
        rate = RENEWALS / storm["elapsed"]
        p50, p99 = percentile(durations, 0.5), percentile(durations, 0.99)

        def verdict(ok: bool) -> str:
            return "meets the target" if ok else "MISSES the target"

        print(
            f"\nrenewals: {RENEWALS} monthly subscriptions ({len(failing)} on a declining card) renewed in one jump "
            f"of the sandbox's clock ({storm['steps']} billing steps, {storm['jumped']:.1f} s inside the sandbox; "
            f"webhooks {WEBHOOK_CONCURRENCY} at a time, as Stripe sends them concurrently)"
        )
        print(
            f"  GET /api/health/ baseline: {health['rps']:.0f} req/s, p50 {health['p50_ms']:.1f} ms "
            f"(8 clients, same run)"
        )
        print(
            f"  every renewal recorded and decided ({len(paying)} receipts, {len(failing)} pay-link e-mails sent, "
            f"one worker): {storm['elapsed']:.1f} s = {rate:.2f} renewals/s = "
            f"{rate / health['rps']:.4f}x health's req/s (target >= {TARGET_DECIDED_RATIO}x: "
            f"{verdict(rate / health['rps'] >= TARGET_DECIDED_RATIO)})"
        )
        print(
            f"  renewal webhooks: {len(deliveries)} deliveries ({not_2xx} not 2xx), p50 {p50:.0f} ms = "
            f"{p50 / health['p50_ms']:.1f}x health's p50 (target <= {TARGET_WEBHOOK_P50_RATIO}x: "
            f"{verdict(p50 / health['p50_ms'] <= TARGET_WEBHOOK_P50_RATIO)}), p99 {p99:.0f} ms = "
            f"{p99 / health['p50_ms']:.1f}x"
        )
        print(
            "    by type: "
            + ", ".join(
                f"{kind} {count} (p50 {percentile([d['duration_ms'] for d in deliveries if d['type'] == kind], 0.5):.0f} ms)"
                for kind, count in sorted(by_type.items())
            ),
            flush=True,
        )
        # In this process, after the figures above are out: it imports the working tree's models, which must match
        # the schema migrated at the start.
        sample = set(paying[:SAMPLE_PAYING]) | set(failing[:SAMPLE_FAILING])
        figures = queries_per_event(sample)
        ours = [o for per_type in figures.values() for o, _ in per_type]
        theirs = [t for per_type in figures.values() for _, t in per_type]
        mean_ours = sum(ours) / len(ours)
        print(
            f"  queries of ours per renewal event ({len(ours)} events of {len(sample)} subscriptions' next renewal, "
            f"processed in-process by dj-stripe's Event.process): mean {mean_ours:.1f}, max {max(ours)} "
            f"(target <= {TARGET_QUERIES}: {verdict(mean_ours <= TARGET_QUERIES and max(ours) <= TARGET_QUERIES)}); "
            f"dj-stripe's own: mean {sum(theirs) / len(theirs):.1f}"
        )
        for kind, per_type in sorted(figures.items()):
            kind_ours = [o for o, _ in per_type]
            kind_theirs = [t for _, t in per_type]
            print(
                f"    {kind:34} {len(per_type):4} events  ours mean {sum(kind_ours) / len(kind_ours):5.1f} "
                f"max {max(kind_ours):3}   dj-stripe mean {sum(kind_theirs) / len(kind_theirs):5.1f}"
            )
    finally:
        stop(processes)
        panel.stop()


if __name__ == "__main__":
    main()
