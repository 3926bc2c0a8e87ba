#!/usr/bin/env bash
# `make run`: the whole service on one machine with nothing but Python: SQLite, Celery tasks in-process, the Stripe
# sandbox on 127.0.0.1:$SANDBOX_PORT (12111) and the API on 127.0.0.1:$API_PORT (8000). Ctrl-C stops everything this
# script started.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON=${PYTHON:-.venv/bin/python}
HOST=127.0.0.1
API_PORT=${API_PORT:-8000}
SANDBOX_PORT=${SANDBOX_PORT:-12111}
API_URL="http://$HOST:$API_PORT"
SANDBOX_URL="http://$HOST:$SANDBOX_PORT"
RUN_DIR=${RUN_DIR:-.run}  # the sandbox's log; tests that run this script give it a folder of their own
SANDBOX_LOG="$RUN_DIR/sandbox.log"

say() { printf '==> %s\n' "$*"; }
die() { printf 'run: %s\n' "$*" >&2; exit 1; }

for port in "$API_PORT" "$SANDBOX_PORT"; do
    [[ "$port" =~ ^[0-9]{1,5}$ ]] && [ "$port" -ge 1 ] && [ "$port" -le 65535 ] \
        || die "'$port' is not a port (API_PORT and SANDBOX_PORT take 1 to 65535)"
done
[ "$API_PORT" != "$SANDBOX_PORT" ] || die "API_PORT and SANDBOX_PORT are both $API_PORT: give them different ports"

export DJANGO_SETTINGS_MODULE=config.settings.local
export PYTHONUNBUFFERED=1  # the sandbox's "listening" line must reach its log at once
# Every address that names a port follows the two ports: where the API calls Stripe, where the sandbox posts
# webhooks, where Stripe sends the customer back, the links in e-mails. A value already in the environment wins (a
# tunnel's public address, Stripe's real test mode).
SUCCESS_PAGE="$API_URL/checkout/success/?session_id={CHECKOUT_SESSION_ID}"
export STRIPE_API_BASE="${STRIPE_API_BASE:-$SANDBOX_URL}"
export STRIPE_WEBHOOK_BASE_URL="${STRIPE_WEBHOOK_BASE_URL:-$API_URL}"
export CHECKOUT_SUCCESS_URL="${CHECKOUT_SUCCESS_URL:-$SUCCESS_PAGE}"
export CHECKOUT_CANCEL_URL="${CHECKOUT_CANCEL_URL:-$API_URL/checkout/cancel/}"
export SITE_URL="${SITE_URL:-$API_URL}"
# No worker is started here, so tasks must run in-process: a REDIS_URL left in the shell would queue them in Redis
# where nothing consumes them. (DATABASE_URL is honoured: pointing `make run` at PostgreSQL needs no extra process.)
unset REDIS_URL CELERY_BROKER_URL CELERY_TASK_ALWAYS_EAGER

SANDBOX_PID=""
API_PID=""
SWEEP_PID=""

# Each child runs in its own process group (see `start_group`), so one signal to the group also reaches what it
# spawned (runserver's autoreloader child). Polite TERM first, KILL after 10 s.
cleanup() {
    local status=$?
    trap - INT TERM EXIT
    local pid
    for pid in $SWEEP_PID $API_PID $SANDBOX_PID; do
        kill -TERM -- "-$pid" 2>/dev/null || true
    done
    for pid in $SWEEP_PID $API_PID $SANDBOX_PID; do
        local tries=50
        while kill -0 -- "-$pid" 2>/dev/null && [ "$tries" -gt 0 ]; do
            sleep 0.2
            tries=$((tries - 1))
        done
        kill -KILL -- "-$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    if [ -n "$API_PID$SANDBOX_PID" ]; then
        say "stopped"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# start_group VAR COMMAND...: run COMMAND in the background as the leader of a new process group; VAR gets its pid.
# Job control is switched on only for the `&` so bash prints no job notices. Stdin is /dev/null: a background
# process group reading the terminal would be stopped.
start_group() {
    local var=$1
    shift
    set -m
    "$@" </dev/null &
    local pid=$!
    set +m
    printf -v "$var" '%s' "$pid"
}

# Exit 0 when something already listens on (or holds) 127.0.0.1:PORT.
port_taken() {
    "$PYTHON" - "$1" <<'PY'
import socket
import sys

port = int(sys.argv[1])
with socket.socket() as probe:
    probe.settimeout(0.5)
    if probe.connect_ex(("127.0.0.1", port)) == 0:
        sys.exit(0)
with socket.socket() as probe:
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        probe.bind(("127.0.0.1", port))
    except OSError:
        sys.exit(0)
sys.exit(1)
PY
}

# Exit 0 when URL answers 200.
http_ok() {
    "$PYTHON" - "$1" <<'PY' 2>/dev/null
import sys
import urllib.request

with urllib.request.urlopen(sys.argv[1], timeout=1) as response:
    sys.exit(0 if response.status == 200 else 1)
PY
}

[ -x "$PYTHON" ] || command -v "$PYTHON" >/dev/null || die "no Python at '$PYTHON' (run it through 'make run')"

for port in $API_PORT $SANDBOX_PORT; do
    if port_taken "$port"; then
        die "port $port on $HOST is already in use (another 'make run'?). Find the owner with" \
            "'lsof -i :$port' or 'ss -ltnp' and stop it, or pick other ports:" \
            "make run API_PORT=8001 SANDBOX_PORT=12112"
    fi
done

mkdir -p "$RUN_DIR"

say "database: ${DATABASE_URL:-SQLite, db.sqlite3}; migrating"
"$PYTHON" manage.py migrate --noinput

say "loading the catalog (products, prices, coupons)"
"$PYTHON" manage.py catalog_load

say "starting the Stripe sandbox on $SANDBOX_URL (log: $SANDBOX_LOG)"
: >"$SANDBOX_LOG"
start_group SANDBOX_PID sh -c 'exec "$0" -m stripe_sandbox --host "$1" --port "$2" >"$3" 2>&1' \
    "$PYTHON" "$HOST" "$SANDBOX_PORT" "$SANDBOX_LOG"
tries=150  # 30 s
until grep -q "stripe-sandbox listening on" "$SANDBOX_LOG" || http_ok "$SANDBOX_URL/_sandbox/health"; do
    if ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
        tail -n 30 "$SANDBOX_LOG" >&2 || true
        die "the Stripe sandbox exited during start-up (log above, full log in $SANDBOX_LOG)"
    fi
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || die "the Stripe sandbox did not report ready within 30 s (see $SANDBOX_LOG)"
    sleep 0.2
done

# The sandbox forgets everything when it stops: register our webhook endpoint with this one and store its signing
# secret, so paying on the sandbox's page delivers a signed checkout.session.completed that the API verifies and
# fulfils (an endpoint a previous sandbox knew is replaced).
say "registering the webhook endpoint with the sandbox"
STRIPE_API_BASE="$SANDBOX_URL" "$PYTHON" manage.py stripe_webhook_register --base-url "$STRIPE_WEBHOOK_BASE_URL"

# runserver rather than gunicorn: it reloads on code changes, serves the admin's and the API docs' static files
# without collectstatic, shows Django's debug pages, and runs as one process, so a request never lands on a worker
# that still has old code. Its autoreloader child shares the process group, so Ctrl-C still stops it.
say "starting the API on $API_URL (Django runserver, reloads on code changes; tasks run in-process)"
start_group API_PID "$PYTHON" manage.py runserver "$HOST:$API_PORT"
tries=300  # 60 s
until http_ok "$API_URL/api/health/"; do
    kill -0 "$API_PID" 2>/dev/null || die "the API exited during start-up (output above)"
    tries=$((tries - 1))
    [ "$tries" -gt 0 ] || die "the API did not answer $API_URL/api/health/ within 60 s"
    sleep 0.2
done

# No Celery beat here: the billing rules that wait for time (termination after the end, suspension when no event
# comes) run from this loop instead, as beat would run them.
say "starting the billing sweep (every 30 s; what Celery beat runs in production)"
start_group SWEEP_PID "$PYTHON" manage.py billing_sweep --every 30

cat <<MSG

Ready.
  API           $API_URL/  (Stripe calls go to $STRIPE_API_BASE)
  API docs      $API_URL/api/docs/
  Admin         $API_URL/admin/   (make a login first: $PYTHON manage.py createsuperuser)
  Sandbox       $SANDBOX_URL  (log: $SANDBOX_LOG)
  Webhooks to   $STRIPE_WEBHOOK_BASE_URL/api/webhooks/stripe/...
  After paying  $CHECKOUT_SUCCESS_URL

Create a checkout session:
  curl -s -X POST $API_URL/api/checkout/create-session -H 'Content-Type: application/json' -d '{"planId":"starter","billingCycle":"monthly","customer":{"name":"John Doe","email":"john@example.com"}}'
Open the "url" from the answer and press Pay: the sandbox sends the signed webhook here, the order is fulfilled,
the (simulated) hosting account provisioned, and the e-mails are printed in this console. Then read it back:
  curl -s $API_URL/api/checkout/session/<sessionId>

Ctrl-C stops the API and the sandbox.

MSG

# Stay up while both children are; if one dies, say which and stop the other (exit status 1).
while kill -0 "$API_PID" 2>/dev/null && kill -0 "$SANDBOX_PID" 2>/dev/null; do
    sleep 1
done
if ! kill -0 "$SANDBOX_PID" 2>/dev/null; then
    tail -n 30 "$SANDBOX_LOG" >&2 || true
    die "the Stripe sandbox stopped (log above); stopping the API"
fi
die "the API stopped; stopping the sandbox"
