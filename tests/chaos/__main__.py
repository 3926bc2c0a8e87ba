"""`make chaos`: paid orders through a production-like stack while it is hurt, then the counts of what came out.

Real processes on this machine: gunicorn (4 sync workers, config.settings.production), a Celery worker and beat,
PostgreSQL (a database of the run's own, dropped and created afresh), a Redis of its own (so it can be stopped), the
Stripe sandbox delivering signed webhooks, and in this process a control panel (PROVISIONING_BACKEND=http) and an SMTP
server that record what they receive. Customers create sessions through the API, pay in the sandbox and watch the
success page, as a browser does. Meanwhile the run kills a Celery worker mid-job, a gunicorn worker, every database
connection twice, stops Redis for 20 s while the worker holds retries' countdown messages, and makes Stripe fail and
then crawl. Like compose's `restart: unless-stopped`, it restarts any process that dies, and counts it.

Then it waits for full recovery and prints the counts; the target (issue 10) is exactly one account and one of each
e-mail per paid order, nothing for unpaid ones, within CHAOS_RECOVERY_TARGET_SECONDS of the last fault, no hand.
Exit status 1 with the discrepancies listed when it is missed. The figures also go to artifacts/chaos.json, the
processes' logs to artifacts/chaos/.
"""

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import requests

from tests.chaos.servers import ControlPanel, SmtpSink
from tests.e2e.conftest import ROOT, Redis, Stack, _port_open, free_port

ORDERS = int(os.environ.get("CHAOS_ORDERS") or 100)
UNPAID = int(os.environ.get("CHAOS_UNPAID") or max(2, ORDERS // 10))
DATABASE_URL = os.environ.get("CHAOS_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/chaos"
TARGET_SECONDS = float(os.environ.get("CHAOS_RECOVERY_TARGET_SECONDS") or 120)
RECOVERY_TIMEOUT = float(os.environ.get("CHAOS_RECOVERY_TIMEOUT") or 600)
SETTLE_SECONDS = float(os.environ.get("CHAOS_SETTLE_SECONDS") or 60)
OUTPUT = Path(os.environ.get("CHAOS_OUTPUT") or ROOT / "artifacts" / "chaos.json")
RUN_DIR = OUTPUT.parent / "chaos"
STRIPE_KEY = "sk_test_chaosrun00000000000000000000000"
RUN_ID = secrets.token_hex(4)
CODE: dict = {}  # what was under test, read at the start: the working tree may hold changes not yet committed

# The schedule, in seconds from the first order. The worker is killed first: a job it held waits out its lease
# (PROVISIONING_LEASE_SECONDS, 300 s in production) before another worker may take it, by design, then up to a sweep
# (30 s). The last fault comes late enough that such a job can be whole within the target: killed by 20 s, whole by
# about 355 s, the last fault at 250 s plus 120 s. That job is then what the recovery time mostly measures.
TRAFFIC_SECONDS = 220  # orders are placed evenly over this time
PANEL_SLOW = (0, 30)  # every control-panel answer 2 s late, so that the worker can be killed while it waits
PANEL_DELAY_SECONDS = 2.0
WORKER_KILL_AT = 5  # then as soon as a control-panel call is in flight, at most 15 s later
GUNICORN_KILL_AT = 20
PANEL_REFUSES = (30, 62)  # first attempt of every new job refused (503): retries wait in the worker with a countdown
STRIPE_FAILING = (40, 60)  # every Stripe API call answers 500
DATABASE_KILLS = (50, 250)
REDIS_DOWN = (65, 85)
STRIPE_SLOW = (110, 140)  # every Stripe API call takes 4 s longer
STRIPE_DELAY_MS = 4000
STRIPE_FAULTS_PER_TICK = 6  # added every half second while the last ones are used up: up to 12 calls a second
FINAL_STATES = {"ready", "payment_failed", "expired", "needs_review"}
ONCE_PER_ORDER = ("set_password", "order_confirmation", "service_ready")


def log(message: str) -> None:
    print(f"[chaos {time.strftime('%H:%M:%S')}] {message}", flush=True)


class PersistentRedis(Redis):
    """Redis as compose runs it (the redis:7 image's defaults): snapshots on, so a stop (SIGTERM, what `docker compose
    stop` sends) saves the data set and a start loads it again, unacknowledged messages included."""

    def start(self) -> None:
        data = RUN_DIR / "redis"
        data.mkdir(exist_ok=True)
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(data)],
            stdout=open(RUN_DIR / "redis.log", "ab"),  # noqa: SIM115 (the process writes it until it stops)
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: _port_open(self.port), 10, "redis-server")


def wait_until(condition, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise RuntimeError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_ok(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.RequestException:
        return False


def sql(query: str, *params) -> list[tuple]:
    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5) as connection:
        return connection.execute(query, params).fetchall()


def admin_sql(query: str, *params) -> list[tuple]:
    """On the server's `postgres` database, so that killing the app's connections does not kill this one."""
    admin = urlsplit(DATABASE_URL)._replace(path="/postgres").geturl()
    with psycopg.connect(admin, autocommit=True, connect_timeout=5) as connection:
        cursor = connection.execute(query, params)
        return cursor.fetchall() if cursor.description else []


# --- The processes and their supervisor ---------------------------------------------------------------------------


@dataclass
class Supervisor:
    """Compose's `restart: unless-stopped`: a supervised process that exits is started again within a second. Each
    restart is counted, marked as after the run's own kill or as an exit on its own."""

    stack: Stack
    starters: dict
    redis: Redis
    restarts: list[dict] = field(default_factory=list)
    redis_stopped_on_purpose: bool = False
    _killed: set[str] = field(default_factory=set)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    started: float = 0.0

    def run(self) -> None:
        while not self._stop.wait(0.5):
            with self._lock:
                if self._stop.is_set():
                    return
                for name, start in self.starters.items():
                    process = self.stack.processes.get(name)
                    if process is not None and process.poll() is not None:
                        self._restart(name, process.returncode, start)
                process = self.redis.process
                if not self.redis_stopped_on_purpose and process is not None and process.poll() is not None:
                    self._restart("redis", process.returncode, self.redis.start)

    def _restart(self, name: str, code: int, start) -> None:
        cause = "killed by the run" if name in self._killed else "exited on its own"
        self._killed.discard(name)
        self.restarts.append(
            {"process": name, "at": round(time.monotonic() - self.started, 1), "exit_code": code, "cause": cause}
        )
        log(f"supervisor: {name} exited ({code}, {cause}); restarting it")
        start()

    def kill(self, name: str) -> int:
        with self._lock:
            process = self.stack.processes[name]
            self._killed.add(name)
            os.killpg(process.pid, signal.SIGKILL)
            return process.pid

    def stop(self) -> None:
        self._stop.set()


def gunicorn_worker_pids(master: int) -> list[int]:
    try:
        return [int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split()]
    except OSError:
        return []


# --- Customers ----------------------------------------------------------------------------------------------------


@dataclass
class Order:
    number: int
    kind: str  # paid, abandoned (never paid), declined (a bank debit that fails)
    session_id: str = ""
    fulfilment: str = ""

    @property
    def email(self) -> str:
        return f"chaos{self.number}@example.com"

    @property
    def domain(self) -> str:
        return f"chaos{self.number}.example.com"


@dataclass
class Customers:
    """Each order as its customer goes through it: create the session (retried with the same Idempotency-Key when
    the API fails), pay on Stripe's page (here the sandbox's test helper, retried likewise), then keep the success
    page open, which polls the order as order-status.js does (2 s, then 1.5 times longer up to 10 s)."""

    api: str
    sandbox: str
    stop: threading.Event = field(default_factory=threading.Event)
    seen: Counter = field(default_factory=Counter)  # what customers' requests got, other than success
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str) -> None:
        with self._lock:
            self.seen[what] += 1

    def run(self, order: Order, start_at: float) -> None:
        if self.stop.wait(max(0.0, start_at - time.monotonic())):
            return
        try:
            order.session_id = self._retry("create", lambda: self._create(order))
            if order.kind == "abandoned":
                return
            if order.kind == "paid":
                self._retry("pay", lambda: self._helper(order, "complete", payment_status="paid"))
            else:
                self._retry("pay", lambda: self._helper(order, "complete", payment_status="unpaid"))
                self._retry("pay", lambda: self._helper(order, "async_payment", result="failed"))
            self._watch(order)
        except Exception as error:  # the run goes on; the order shows up among the discrepancies
            self.note(f"customer gave up: {type(error).__name__}")
            log(f"order {order.number}: the customer gave up: {error}")

    def _retry(self, step: str, call):
        delay = 1.0
        while not self.stop.is_set():
            try:
                result = call()
            except requests.RequestException as error:
                self.note(f"{step}: {type(error).__name__}")
            else:
                if result is not None:
                    return result
            self.stop.wait(delay)
            delay = min(delay * 2, 10.0)
        raise RuntimeError(f"{step}: stopped before it succeeded")

    def _create(self, order: Order) -> str | None:
        body = {
            "planId": "starter",
            "billingCycle": "monthly",
            "customer": {"name": f"Chaos Customer {order.number}", "email": order.email},
            "domain": {"mode": "new-or-transfer", "value": order.domain},
        }
        response = requests.post(
            f"{self.api}/api/checkout/create-session",
            json=body,
            timeout=30,
            headers={"Idempotency-Key": f"chaos-{RUN_ID}-{order.number}"},
        )
        if response.status_code == 200:
            return response.json()["sessionId"]
        self.note(f"create: HTTP {response.status_code}")
        if response.status_code in (400, 404, 422):
            raise RuntimeError(f"create refused: {response.text[:300]}")
        return None

    def _helper(self, order: Order, action: str, **params) -> bool | None:
        response = requests.post(
            f"{self.sandbox}/v1/test_helpers/checkout/sessions/{order.session_id}/{action}",
            data=params,
            timeout=30,
            headers={"Authorization": f"Bearer {STRIPE_KEY}", "Idempotency-Key": f"{RUN_ID}-{order.number}-{action}"},
        )
        if response.status_code == 200:
            return True
        self.note(f"pay: Stripe HTTP {response.status_code}")
        return None

    def _watch(self, order: Order) -> None:
        delay, started = 2.0, time.monotonic()
        while not self.stop.wait(delay) and time.monotonic() - started < 30 * 60:
            delay = min(delay * 1.5, 10.0)
            try:
                response = requests.get(f"{self.api}/api/checkout/session/{order.session_id}", timeout=30)
            except requests.RequestException as error:
                self.note(f"success page: {type(error).__name__}")
                continue
            if response.status_code != 200:
                self.note(f"success page: HTTP {response.status_code}")
                continue
            order.fulfilment = response.json()["session"]["fulfilment"]
            if order.fulfilment in FINAL_STATES:
                return


# --- Faults ---------------------------------------------------------------------------------------------------------


@dataclass
class Chaos:
    stack: Stack
    supervisor: Supervisor
    panel: ControlPanel
    t0: float = 0.0
    t0_wall: float = 0.0
    faults: list[dict] = field(default_factory=list)
    facts: dict = field(default_factory=dict)

    def at(self, seconds: float) -> None:
        time.sleep(max(0.0, self.t0 + seconds - time.monotonic()))

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 1)

    def record(self, fault: str, start: float, **details) -> None:
        entry = {"fault": fault, "start": start, "end": self.now(), **details}
        self.faults.append(entry)
        log(f"fault: {fault} ({entry['start']} s .. {entry['end']} s) {details or ''}")

    def run(self) -> None:
        """Each fault starts at its time in a thread of its own (windows last a while; they overlap)."""
        timeline = sorted(
            [
                (PANEL_SLOW[0], self.panel_slow),
                (WORKER_KILL_AT, self.kill_worker),
                (GUNICORN_KILL_AT, self.kill_gunicorn_worker),
                (PANEL_REFUSES[0], self.panel_refuses),
                (STRIPE_FAILING[0], lambda: self.stripe_window("Stripe failing (500)", STRIPE_FAILING, 500, 0)),
                (DATABASE_KILLS[0], self.kill_database_connections),
                (REDIS_DOWN[0], self.redis_down),
                (
                    STRIPE_SLOW[0],
                    lambda: self.stripe_window(
                        f"Stripe slow (+{STRIPE_DELAY_MS} ms)", STRIPE_SLOW, None, STRIPE_DELAY_MS
                    ),
                ),
                (DATABASE_KILLS[1], self.kill_database_connections),
            ],
            key=lambda item: item[0],
        )
        threads = []
        for seconds, action in timeline:
            self.at(seconds)
            threads.append(threading.Thread(target=self._apply, args=(seconds, action), daemon=True))
            threads[-1].start()
        for thread in threads:
            thread.join()

    def _apply(self, seconds: float, action) -> None:
        try:
            action()
        except Exception:
            log(f"the fault due at {seconds} s could not be applied:\n{traceback.format_exc()}")
            self.faults.append(
                {
                    "fault": getattr(action, "__name__", "fault"),
                    "start": seconds,
                    "end": self.now(),
                    "error": traceback.format_exc(limit=3),
                }
            )

    def panel_slow(self) -> None:
        start = self.now()
        self.panel.faults.delay = PANEL_DELAY_SECONDS
        self.at(PANEL_SLOW[1])
        self.panel.faults.delay = 0.0
        self.record(f"control panel slow (+{PANEL_DELAY_SECONDS:g} s)", start)

    def kill_worker(self) -> None:
        # Mid-job: while a control-panel call is in flight (the panel is slow now), or after 15 s regardless.
        deadline = time.monotonic() + 15
        while not self.panel.in_flight and time.monotonic() < deadline:
            time.sleep(0.02)
        in_flight, start = self.panel.in_flight, self.now()
        pid = self.supervisor.kill("worker")
        running = sql("SELECT count(*) FROM provisioning_provisioningjob WHERE status = 'running'")[0][0]
        self.record(
            "Celery worker killed (SIGKILL, whole process group)",
            start,
            pid=pid,
            panel_calls_in_flight=in_flight,
            jobs_running=running,
        )

    def kill_gunicorn_worker(self) -> None:
        start = self.now()
        pids = gunicorn_worker_pids(self.stack.processes["web"].pid)
        os.kill(pids[0], signal.SIGKILL)
        self.record("gunicorn worker killed (SIGKILL)", start, pid=pids[0])

    def panel_refuses(self) -> None:
        start = self.now()
        self.panel.faults.fail_first_attempt_until = self.t0 + PANEL_REFUSES[1]
        self.at(PANEL_REFUSES[1])
        self.record(
            "control panel refuses every job's first attempt (503)", start, refused=self.panel.refused_first_attempts
        )

    def kill_database_connections(self) -> None:
        start = self.now()
        name = urlsplit(DATABASE_URL).path.lstrip("/")
        [[killed]] = admin_sql(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = %s "
            "AND pid <> pg_backend_pid()",
            name,
        )
        self.record("database connections killed (pg_terminate_backend)", start, connections=killed)

    def redis_down(self) -> None:
        start = self.now()
        held = sql(
            "SELECT count(*) FROM provisioning_provisioningjob WHERE status = 'retrying' AND next_attempt_at > now()"
        )[0][0]
        self.facts.setdefault("countdown_jobs_when_redis_stopped", held)
        with self.supervisor._lock:
            self.supervisor.redis_stopped_on_purpose = True
            self.stack.redis.stop()
        self.at(REDIS_DOWN[1])
        with self.supervisor._lock:
            self.stack.redis.start()
            self.supervisor.redis_stopped_on_purpose = False
        self.record("Redis stopped (SIGTERM) and started again", start, retries_waiting_with_countdown=held)

    def stripe_window(self, name: str, window: tuple[int, int], status: int | None, delay_ms: int) -> None:
        """The sandbox's faults are counted, not timed. Every half second the run probes Stripe itself: when its probe
        went through unharmed (every fault was used up), it adds a few more; so the faults last as long as the window,
        whatever the traffic, and few are left to use up at its end."""
        start = self.now()
        added = 0
        while time.monotonic() < self.t0 + window[1]:
            if not self._probe_hits(delay_ms):
                self.stack.control(
                    "POST",
                    "faults",
                    {"path_prefix": "/v1/", "status": status, "delay_ms": delay_ms, "count": STRIPE_FAULTS_PER_TICK},
                )
                added += STRIPE_FAULTS_PER_TICK
            time.sleep(0.5)
        with ThreadPoolExecutor(max_workers=STRIPE_FAULTS_PER_TICK) as pool:
            while sum(pool.map(lambda _: self._probe_hits(delay_ms), range(STRIPE_FAULTS_PER_TICK))):
                pass
        self.record(name, start, faults_added=added)

    def _probe_hits(self, delay_ms: int) -> bool:
        """One Stripe call of the run's own: True when it met an injected fault (a 500 from the sandbox, or a delay,
        seen as a timeout). It uses that fault up."""
        try:
            response = requests.get(
                f"{self.stack.sandbox}/v1/account",
                timeout=delay_ms / 2000 if delay_ms else 10,
                headers={"Authorization": f"Bearer {STRIPE_KEY}"},
            )
        except requests.Timeout:
            return True
        return "Injected fault" in response.text


# --- What came out --------------------------------------------------------------------------------------------------


def database_state() -> dict:
    with psycopg.connect(DATABASE_URL, autocommit=True, connect_timeout=5) as connection:
        return _database_state(lambda query: connection.execute(query).fetchall())


def _database_state(sql) -> dict:
    rows = {}
    for table in (
        "checkout_sessions",
        "accounts_user",
        "accounts_customer",
        "accounts_customermembership",
        "accounts_subscription",
        "provisioning_provisioningjob",
        "provisioning_provisioningattempt",
        "provisioning_hostingaccount",
        "provisioning_emailnotification",
        "djstripe_event",
        "djstripe_webhookeventtrigger",
    ):
        rows[table] = sql(f"SELECT count(*) FROM {table}")[0][0]
    return {
        "rows": rows,
        "sessions": {
            sid: (pk, status) for pk, sid, status in sql("SELECT id, stripe_session_id, status FROM checkout_sessions")
        },
        "users": dict(sql("SELECT lower(email), count(*) FROM accounts_user GROUP BY 1")),
        "customers": dict(sql("SELECT lower(email), count(*) FROM accounts_customer GROUP BY 1")),
        "subscriptions": sql("SELECT id, checkout_session_id FROM accounts_subscription"),
        "jobs": sql(
            "SELECT j.id, s.checkout_session_id, j.action, j.status, j.attempts, j.last_error "
            "FROM provisioning_provisioningjob j JOIN accounts_subscription s ON s.id = j.subscription_id"
        ),
        "accounts": sql(
            "SELECT s.checkout_session_id FROM provisioning_hostingaccount a "
            "JOIN accounts_subscription s ON s.id = a.subscription_id"
        ),
        "emails": sql(
            "SELECT id, checkout_session_id, purpose, status, attempts, last_error FROM provisioning_emailnotification"
        ),
        "webhook_failures": sql("SELECT count(*) FROM djstripe_webhookeventtrigger WHERE exception <> ''")[0][0],
        # The paid orders that became whole last: when, and what their provisioning attempts met on the way.
        "slowest_orders": sql(
            "SELECT c.stripe_session_id, extract(epoch FROM greatest(j.finished_at, (SELECT max(e.sent_at) FROM "
            "provisioning_emailnotification e WHERE e.checkout_session_id = c.id))), j.attempts, (SELECT "
            "string_agg(left(a.error, 100), ' | ' ORDER BY a.number) FROM provisioning_provisioningattempt a WHERE "
            "a.job_id = j.id AND a.error <> '') FROM checkout_sessions c JOIN accounts_subscription s ON "
            "s.checkout_session_id = c.id JOIN provisioning_provisioningjob j ON j.subscription_id = s.id AND "
            "j.action = 'provision' ORDER BY 2 DESC NULLS FIRST LIMIT 5"
        ),
        "last_finished": sql(
            "SELECT extract(epoch FROM (SELECT max(finished_at) FROM provisioning_provisioningjob)), "
            "extract(epoch FROM (SELECT max(sent_at) FROM provisioning_emailnotification))"
        )[0],
    }


def discrepancies(
    orders: list[Order], db: dict, panel: ControlPanel, smtp: list[dict], processes_alive: dict[str, bool]
) -> list[str]:
    """Everything that is not exactly as the target says, one line per order and problem."""
    problems = []
    subscriptions = Counter(session_pk for _, session_pk in db["subscriptions"])
    accounts = Counter(session_pk for (session_pk,) in db["accounts"])
    jobs = defaultdict(list)
    for _, session_pk, action, status, attempts, last_error in db["jobs"]:
        jobs[session_pk].append((action, status, attempts, last_error))
    emails = defaultdict(list)
    purpose_of = {}
    for pk, session_pk, purpose, status, _attempts, last_error in db["emails"]:
        emails[session_pk].append((purpose, status, last_error))
        purpose_of[str(pk)] = purpose
    creations = Counter(creation["domain"] for creation in panel.creations)
    received = defaultdict(Counter)
    message_ids = defaultdict(set)
    for message in smtp:
        for recipient in message["to"]:
            purpose = purpose_of.get(message["notification_id"], "?")
            received[recipient.lower()][purpose] += 1
            message_ids[recipient.lower(), purpose].add(message.get("message_id", ""))

    for order in orders:
        name = f"order {order.number} ({order.kind}, {order.session_id or 'no session'})"
        if not order.session_id:
            problems.append(f"{name}: the customer never got a checkout session")
            continue
        session_pk, status = db["sessions"].get(order.session_id, (None, "missing"))
        want = {"paid": "completed", "declined": "payment_failed", "abandoned": "pending"}[order.kind]
        if status != want:
            problems.append(f"{name}: session {status}, expected {want}")
        paid = order.kind == "paid"
        for what, count in (
            ("user", db["users"].get(order.email, 0)),
            ("customer", db["customers"].get(order.email, 0)),
            ("subscription", subscriptions[session_pk]),
            ("hosting account", accounts[session_pk]),
            ("account created at the control panel", creations[order.domain]),
        ):
            if count != int(paid):
                problems.append(f"{name}: {count} {what}(s), expected {int(paid)}")
        order_jobs = jobs[session_pk]
        if paid and [(action, status) for action, status, *_ in order_jobs] != [("provision", "succeeded")]:
            problems.append(
                f"{name}: jobs {[(a, s, n, e[:80]) for a, s, n, e in order_jobs]}, expected one provision succeeded"
            )
        if not paid and order_jobs:
            problems.append(f"{name}: {len(order_jobs)} job(s), expected none")
        expected = set(ONCE_PER_ORDER) if paid else {"payment_failed"} if order.kind == "declined" else set()
        rows = Counter(purpose for purpose, _, _ in emails[session_pk])
        for purpose in sorted(expected | set(rows)):
            if rows[purpose] != (purpose in expected):
                problems.append(f"{name}: {rows[purpose]} {purpose} e-mail row(s), expected {int(purpose in expected)}")
        for purpose, status, last_error in emails[session_pk]:
            if status != "sent":
                problems.append(
                    f"{name}: e-mail {purpose} is {status}" + (f" ({last_error[:80]})" if last_error else "")
                )
        got = received.pop(order.email, Counter())
        for purpose in sorted(expected | set(got)):
            if got[purpose] != (purpose in expected):
                copies = (
                    " (copies of one message: one Message-ID)"
                    if got[purpose] > 1 and len(message_ids[order.email.lower(), purpose]) == 1
                    else ""
                )
                problems.append(
                    f"{name}: the SMTP server received {got[purpose]} {purpose} e-mail(s), "
                    f"expected {int(purpose in expected)}{copies}"
                )
    for recipient, got in received.items():
        problems.append(f"the SMTP server received e-mail for no order: {recipient} {dict(got)}")
    known = {order.domain for order in orders}
    for domain, count in creations.items():
        if domain not in known:
            problems.append(f"the control panel made {count} account(s) for no order: {domain}")
    for process, alive in processes_alive.items():
        if not alive:
            problems.append(f"process {process} is not running")
    return problems


def gather(orders, panel, smtp, stack, supervisor) -> tuple[dict | None, list[str]]:
    try:
        db = database_state()
    except psycopg.Error as error:
        return None, [f"the database could not be read: {error}"]
    alive = {name: stack.alive(name) for name in ("web", "worker", "beat")}
    alive["redis"] = stack.redis.process is not None and stack.redis.process.poll() is None
    return db, discrepancies(orders, db, panel, smtp.snapshot(), alive)


def figures(orders, db, panel, smtp, stack, supervisor, chaos, customers, recovery, problems) -> dict:
    jobs_by_status = Counter(f"{action} {status}" for _, _, action, status, _, _ in db["jobs"])
    emails_by = Counter(f"{purpose} {status}" for _, _, purpose, status, _, _ in db["emails"])
    deliveries = stack.control("GET", "deliveries")
    worker_log = (RUN_DIR / "worker.log").read_text(errors="replace").splitlines()
    per_domain = Counter(creation["domain"] for creation in panel.creations)
    messages = smtp.snapshot()
    purpose_of = {str(pk): purpose for pk, _, purpose, _, _, _ in db["emails"]}
    last_job, last_email = (
        round(float(value) - chaos.t0_wall, 1) if value is not None else None for value in db["last_finished"]
    )
    last_fault = max(fault["end"] for fault in chaos.faults)
    return {
        # What was under test: the working tree may hold changes not yet committed.
        "code": CODE,
        "orders": dict(Counter(order.kind for order in orders)),
        "schedule": chaos.faults,
        "last_fault_end_seconds": last_fault,
        "recovered_seconds_after_last_fault": recovery,
        "target_seconds": TARGET_SECONDS,
        "rows": db["rows"],
        "checkout_sessions_by_status": dict(Counter(status for _, status in db["sessions"].values())),
        "jobs_by_action_and_status": dict(jobs_by_status),
        "job_attempts": sum(attempts for _, _, _, _, attempts, _ in db["jobs"]),
        "emails_by_purpose_and_status": dict(emails_by),
        "control_panel": {
            "calls": len(panel.calls),
            "accounts_created": len(panel.creations),
            "paid_orders_by_accounts_made": dict(
                Counter(per_domain[order.domain] for order in orders if order.kind == "paid")
            ),
            "first_attempts_refused": panel.refused_first_attempts,
            "bad_signatures": panel.bad_signatures,
            "calls_by_status": dict(Counter(str(call["status"]) for call in panel.calls)),
        },
        "smtp": {
            "messages": len(messages),
            "by_purpose": dict(Counter(purpose_of.get(m["notification_id"], "unknown") for m in messages)),
        },
        "last_job_finished_seconds": last_job,
        "slowest_orders": [
            {
                "session": session_id,
                "whole_at_seconds": round(float(whole) - chaos.t0_wall, 1) if whole else None,
                "job_attempts": attempts,
                "attempt_errors": errors or "",
            }
            for session_id, whole, attempts, errors in db["slowest_orders"]
        ],
        "last_email_sent_seconds": last_email,
        "webhook_deliveries": {
            "attempts": len(deliveries["data"]),
            "pending": deliveries.get("pending"),
            "by_status": dict(Counter(str(d["status"] or "no answer") for d in deliveries["data"])),
        },
        "webhook_triggers_with_exception": db["webhook_failures"],
        "customers_saw": dict(customers.seen),
        "success_pages_final_state": dict(
            Counter(order.fulfilment or "none" for order in orders if order.kind != "abandoned")
        ),
        "supervisor_restarts": {
            "total": len(supervisor.restarts),
            "after_the_runs_own_kill": sum(r["cause"] == "killed by the run" for r in supervisor.restarts),
            "exited_on_their_own": sum(r["cause"] == "exited on its own" for r in supervisor.restarts),
            "events": supervisor.restarts,
        },
        "worker_unrecoverable_errors": [line for line in worker_log if "Unrecoverable error" in line],
        "countdown_jobs_when_redis_stopped": chaos.facts.get("countdown_jobs_when_redis_stopped"),
        "discrepancies": problems,
        "target_met": not problems and recovery is not None and recovery <= TARGET_SECONDS,
    }


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


def report(result: dict) -> None:
    print("\n=== Chaos run ===")
    print(
        f"code: {result['code']['commit'][:10]}"
        + (
            f" with uncommitted changes to {len(result['code']['uncommitted'])} paths"
            if result["code"]["uncommitted"]
            else ""
        )
    )
    print(f"orders: {result['orders']}")
    print("faults (seconds from the first order):")
    for fault in sorted(result["schedule"], key=lambda fault: fault["start"]):
        details = {k: v for k, v in fault.items() if k not in ("fault", "start", "end")}
        print(f"  {fault['start']:6.1f} .. {fault['end']:6.1f}  {fault['fault']}  {details or ''}")
    print(f"rows: {result['rows']}")
    print(f"checkout sessions by status: {result['checkout_sessions_by_status']}")
    print(f"jobs by action and status: {result['jobs_by_action_and_status']} ({result['job_attempts']} attempts)")
    print(f"e-mails by purpose and status: {result['emails_by_purpose_and_status']}")
    print(f"control panel: {result['control_panel']}")
    print(f"SMTP server: {result['smtp']}")
    print(
        f"last provisioning job finished at {result['last_job_finished_seconds']} s, last e-mail sent at "
        f"{result['last_email_sent_seconds']} s (from the first order); the last orders to become whole:"
    )
    for order in result["slowest_orders"]:
        print(
            f"  {order['whole_at_seconds']} s  {order['session'][:24]}...  {order['job_attempts']} attempt(s)  "
            f"{order['attempt_errors']}"
        )
    print(
        f"webhook deliveries: {result['webhook_deliveries']}; triggers with an exception: "
        f"{result['webhook_triggers_with_exception']}"
    )
    print(f"what customers saw besides success: {result['customers_saw']}")
    print(f"success pages ended at: {result['success_pages_final_state']}")
    restarts = result["supervisor_restarts"]
    print(
        f"supervisor restarts: {restarts['total']} ({restarts['after_the_runs_own_kill']} after the run's own "
        f"kill, {restarts['exited_on_their_own']} exits on their own)"
    )
    for event in restarts["events"]:
        print(f"  {event['at']:6.1f} s  {event['process']} exit {event['exit_code']}: {event['cause']}")
    for line in result["worker_unrecoverable_errors"]:
        print(f"  worker log: {line.strip()[:200]}")
    print(f"retries waiting with a countdown when Redis stopped: {result['countdown_jobs_when_redis_stopped']}")
    recovery = result["recovered_seconds_after_last_fault"]
    print(
        f"last fault ended at {result['last_fault_end_seconds']} s; full recovery "
        + (f"{recovery:.1f} s after it" if recovery is not None else "never reached")
        + f" (target {result['target_seconds']:g} s)"
    )
    if result["discrepancies"]:
        print(f"discrepancies ({len(result['discrepancies'])}):")
        for line in result["discrepancies"][:60]:
            print(f"  {line}")
        if len(result["discrepancies"]) > 60:
            print(f"  ... and {len(result['discrepancies']) - 60} more in {OUTPUT}")
    print("TARGET MET" if result["target_met"] else "TARGET MISSED")


# --- The run ----------------------------------------------------------------------------------------------------------


def prepare_database(env: dict) -> None:
    name = urlsplit(DATABASE_URL).path.lstrip("/")
    admin_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin_sql(f'CREATE DATABASE "{name}"')
    for command in (["migrate", "--noinput"], ["catalog_load"]):
        subprocess.run(
            [sys.executable, "manage.py", *command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=open(RUN_DIR / "prepare.log", "ab"),  # noqa: SIM115 (closed when the run exits)
            stderr=subprocess.STDOUT,
        )


def main() -> int:
    CODE.update(commit=git("rev-parse", "HEAD"), uncommitted=git("status", "--short").splitlines())
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    panel_secret = secrets.token_hex(32)
    panel, smtp = ControlPanel(secret=panel_secret), SmtpSink()
    panel_url = panel.start(free_port())
    smtp_port = free_port()
    smtp.start(smtp_port)
    redis = PersistentRedis(port=free_port())
    redis.start()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings.production",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "DJANGO_NUM_PROXIES": "0",
        "DATABASE_URL": DATABASE_URL,
        "REDIS_URL": redis.url,
        "STRIPE_SECRET_KEY": STRIPE_KEY,
        # Every simulated customer comes from 127.0.0.1: per-IP throttling would refuse all but the first few.
        "THROTTLE_CHECKOUT_CREATE": "1000000/min",
        "THROTTLE_CHECKOUT_READ": "1000000/min",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(smtp_port),
        "EMAIL_USE_TLS": "false",
        "PROVISIONING_BACKEND": "http",
        "PROVISIONING_HTTP_URL": panel_url,
        "PROVISIONING_HTTP_SECRET": panel_secret,
        "PYTHONUNBUFFERED": "1",
    }
    customers = Customers(api="", sandbox="")
    stack = supervisor = None
    try:
        log(f"preparing: database {DATABASE_URL} afresh, migrations, catalog; logs in {RUN_DIR}")
        prepare_database(env)
        # Ports taken only now, just before the servers bind them: the preparation takes minutes on a busy machine.
        api_port, sandbox_port = free_port(), free_port()
        api = customers.api = env["SITE_URL"] = env["STRIPE_WEBHOOK_BASE_URL"] = f"http://127.0.0.1:{api_port}"
        sandbox = customers.sandbox = env["STRIPE_API_BASE"] = f"http://127.0.0.1:{sandbox_port}"
        stack = Stack(api=api, sandbox=sandbox, redis=redis, mail_dir=RUN_DIR / "mail", env=env, beat_process=True)
        # The commands of docker-compose.yml's web, worker and beat.
        starters = {
            "web": lambda: stack.start(
                "web",
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{api_port}",
                "--workers",
                "4",
            ),
            "worker": lambda: stack.start(
                "worker", sys.executable, "-m", "celery", "-A", "config", "worker", "-l", "info"
            ),
            "beat": lambda: stack.start(
                "beat",
                sys.executable,
                "-m",
                "celery",
                "-A",
                "config",
                "beat",
                "-l",
                "info",
                "--schedule",
                str(RUN_DIR / "beat-schedule"),
            ),
        }
        supervisor = Supervisor(stack=stack, starters=starters, redis=redis)
        stack.start(
            "sandbox", sys.executable, "-m", "stripe_sandbox", "--host", "127.0.0.1", "--port", str(sandbox_port)
        )
        wait_until(lambda: http_ok(f"{sandbox}/_sandbox/health"), 30, "the sandbox")
        subprocess.run(
            [sys.executable, "manage.py", "stripe_webhook_register"],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=open(RUN_DIR / "prepare.log", "ab"),  # noqa: SIM115 (closed when the run exits)
            stderr=subprocess.STDOUT,
        )
        for start in starters.values():
            start()
        wait_until(lambda: http_ok(f"{api}/api/health/"), 60, "gunicorn")
        time.sleep(3)  # the worker connects to the broker

        orders = [Order(number=n, kind="paid") for n in range(1, ORDERS + 1)]
        for n in range(UNPAID):
            orders.insert(
                (n + 1) * len(orders) // (UNPAID + 1),
                Order(number=ORDERS + n + 1, kind="abandoned" if n % 2 == 0 else "declined"),
            )
        chaos = Chaos(stack=stack, supervisor=supervisor, panel=panel)
        t0 = chaos.t0 = supervisor.started = time.monotonic() + 1
        chaos.t0_wall = time.time() + 1
        threading.Thread(target=supervisor.run, daemon=True).start()
        log(f"{ORDERS} paid and {UNPAID} unpaid orders over {TRAFFIC_SECONDS} s; faults until {DATABASE_KILLS[1]} s")
        pool = ThreadPoolExecutor(max_workers=len(orders))
        for index, order in enumerate(orders):
            pool.submit(customers.run, order, t0 + index * TRAFFIC_SECONDS / len(orders))
        chaos.run()
        last_fault = max(fault["end"] for fault in chaos.faults)
        log(f"last fault ended at {last_fault} s; waiting for full recovery (at most {RECOVERY_TIMEOUT:g} s)")

        recovery, problems = None, []
        deadline = t0 + last_fault + RECOVERY_TIMEOUT
        while time.monotonic() < deadline:
            _, problems = gather(orders, panel, smtp, stack, supervisor)
            if not problems:
                recovery = round(time.monotonic() - t0 - last_fault, 1)
                break
            time.sleep(1)
        log(
            f"recovered {recovery} s after the last fault"
            if recovery is not None
            else f"not recovered after {RECOVERY_TIMEOUT:g} s: {len(problems)} discrepancies"
        )
        if recovery is not None:
            # Anything late (a duplicate e-mail, a second account) shows up within a few sweeps.
            log(f"watching {SETTLE_SECONDS:g} s more for late duplicates")
            time.sleep(SETTLE_SECONDS)
        customers.stop.set()
        db, late = gather(orders, panel, smtp, stack, supervisor)
        if db is None:  # a last try; the figures need the rows
            time.sleep(5)
            db, late = gather(orders, panel, smtp, stack, supervisor)
        if recovery is not None and late:
            problems = [f"after recovery: {line}" for line in late]
        elif recovery is None:
            problems = late
        pool.shutdown(wait=True, cancel_futures=True)
        result = figures(orders, db, panel, smtp, stack, supervisor, chaos, customers, recovery, problems)
        OUTPUT.parent.mkdir(parents=True, exist_ok=True)
        OUTPUT.write_text(json.dumps(result, indent=2, sort_keys=True))
        report(result)
        log(f"figures written to {OUTPUT}")
        return 0 if result["target_met"] else 1
    finally:
        customers.stop.set()
        if supervisor is not None:
            with supervisor._lock:
                supervisor.stop()
        if stack is not None:
            stack.stop_all()
        redis.stop()
        panel.stop()
        smtp.stop()


if __name__ == "__main__":
    sys.exit(main())
