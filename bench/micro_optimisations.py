"""Issue 11's micro-optimisations, each against the public API it stands in for, A and B in alternation:

- core.cache's one Redis client per connection pool, against Django's stock RedisCacheClient (a redis.Redis per call);
- the Checkout Session create by raw_request, against the SDK's typed v1.checkout.sessions.create;
- checkout.services' per-process dict of sessions re-read lately, against the Redis mark alone.

`python -m bench.micro_optimisations instructions` runs the service in-process under callgrind (instructions are
repeatable on a shared machine; wall time is not) and prints instructions per call. `python -m bench.micro_optimisations
latency [N]` times POST /api/checkout/create-session end to end: four gunicorns (production settings), one per variant,
N requests each, interleaved one at a time so that the machine's noise falls on all alike. Both prepare the database
and start the sandbox as `make bench` does (BENCH_DATABASE_URL, BENCH_REDIS_URL, BENCH_SANDBOX_PORT); the gunicorns
listen on BENCH_API_PORT and the three ports after it.
"""

import http.client
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from bench import run as bench
from bench import stack

VARIANTS = ("reused raw", "stock raw", "reused sdk", "stock sdk")  # cache client, session create


def _sdk_client():
    """stripe_client() as checkout.stripe_checkout sees it, with the session create made by the SDK's typed method."""
    from core.stripe_api import stripe_client

    class SdkCreate:
        def __getattr__(self, name):
            return getattr(stripe_client(), name)

        def raw_request(self, method, path, idempotency_key=None, **params):
            assert (method, path) == ("post", "/v1/checkout/sessions")
            session = stripe_client().v1.checkout.sessions.create(params, {"idempotency_key": idempotency_key})
            return SimpleNamespace(data=session)

    return SdkCreate()


def variant_apply(variant: str) -> None:
    """Switch this process to a variant (after Django is set up, before the cache is first used)."""
    from django.core.cache.backends.redis import RedisCache

    import checkout.stripe_checkout
    from core.cache import DegradingRedisCache

    cache_kind, create_kind = variant.split()
    if cache_kind == "stock":
        DegradingRedisCache.__init__ = lambda self, server, params: RedisCache.__init__(self, server, params)
    if create_kind == "sdk":
        checkout.stripe_checkout.stripe_client = _sdk_client


def _measure(counts: dict[str, int]) -> None:
    """The part that runs under callgrind: each mark() calls os.getppid(), after which callgrind writes the
    instructions since the previous mark to a file of its own; the labels go to stdout in the same order. The cyclic
    garbage collector runs between segments (in a segment of its own) and is off inside them."""
    import gc

    import django

    django.setup()
    from django.core.cache import caches
    from django.core.cache.backends.redis import RedisCacheClient
    from django.test import Client

    import checkout.services
    import checkout.stripe_checkout
    from core.stripe_api import stripe_client

    labels = []

    def mark(label: str) -> None:
        labels.append(label)
        os.getppid()
        gc.collect()
        labels.append("gc")
        os.getppid()
        gc.disable()

    cache = caches["default"]
    clients = {"reused": cache._cache, "stock": RedisCacheClient(cache._servers, **cache._options)}
    create = {"raw": stripe_client, "sdk": _sdk_client}

    def use(variant: str) -> None:
        cache_kind, create_kind = variant.split()
        cache.__dict__["_cache"] = clients[cache_kind]
        checkout.stripe_checkout.stripe_client = create[create_kind]

    client = Client(REMOTE_ADDR="127.0.0.1", HTTP_HOST="127.0.0.1")
    prefix = uuid.uuid4().hex[:8]

    def checkouts(tag: str, n: int) -> list[str]:
        ids = []
        for i in range(n):
            body = bench.CREATE_BODY.replace("{n}", f"{prefix}{tag}{i}")
            response = client.post("/api/checkout/create-session", body, content_type="application/json")
            assert response.status_code == 200, response.content
            ids.append(response.json()["sessionId"])
        return ids

    def session_create(n: int, tag: str) -> None:
        for i in range(n):
            session = checkout.stripe_checkout.stripe_client().raw_request(
                "post", "/v1/checkout/sessions", idempotency_key=f"{prefix}-{tag}-{i}", **SESSION_PARAMS
            )
            assert session.data["url"]

    for variant in VARIANTS:  # every path once before counting
        use(variant)
        cache.get("mark")
        checkouts(f"w{variant[0]}{variant[-1]}", 2)
    use("reused raw")
    # Polls stay within the re-read interval however slowly callgrind runs: the first read of each session goes to
    # Stripe and leaves the mark (and the dict entry); the polls counted below find one or the other.
    checkout.services.REFRESH_INTERVAL_SECONDS = 3600
    pending = checkouts("p", 20)
    for session_id in pending:
        assert client.get(f"/api/checkout/session/{session_id}").status_code == 200
    mark("warm-up")
    for round_ in range(counts["rounds"]):
        for kind in ("reused", "stock"):
            use(f"{kind} raw")
            for _ in range(counts["cache"]):
                cache.get("mark")
            mark(f"cache.get, client {kind}|{counts['cache']}")
        for kind in ("raw", "sdk"):
            use(f"reused {kind}")
            session_create(counts["create"], f"{round_}{kind}")
            mark(f"session create, {kind}|{counts['create']}")
        for variant in VARIANTS:
            use(variant)
            checkouts(f"c{round_}{variant[0]}{variant[-1]}", counts["checkout"])
            mark(f"checkout, {variant}|{counts['checkout']}")
        use("reused raw")
        for kind in ("dict", "no dict"):
            for i in range(counts["poll"]):
                if kind == "no dict":
                    checkout.services._refreshed_here.clear()
                response = client.get(f"/api/checkout/session/{pending[i % len(pending)]}")
                assert response.status_code == 200 and response.json()["session"]["status"] == "pending"
            mark(f"poll of a pending session within 5 s, {kind}|{counts['poll']}")
    print(json.dumps(labels))


SESSION_PARAMS = {
    "mode": "subscription",
    "line_items": [
        {
            "price_data": {
                "currency": "usd",
                "product_data": {"name": "Starter", "metadata": {"product_code": "starter"}},
                "unit_amount": 1200,
                "recurring": {"interval": "year", "interval_count": 1},
            },
            "quantity": 1,
        }
    ],
    "client_reference_id": "bench",
    "metadata": {"checkout_id": "bench"},
    "subscription_data": {"metadata": {"checkout_id": "bench"}},
    "success_url": "http://127.0.0.1:8000/checkout/success/?session_id={CHECKOUT_SESSION_ID}",
    "cancel_url": "http://127.0.0.1:8000/checkout/cancel/",
    "customer_email": "bench@example.com",
}


def instructions(counts: dict[str, int]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "callgrind.out"
        result = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--dump-after=os_getppid",
                f"--callgrind-out-file={out}",
                bench.PY,
                "-m",
                "bench.micro_optimisations",
                "_measure",
                json.dumps(counts),
            ],
            cwd=bench.ROOT,
            env=bench.ENV,
            check=True,
            capture_output=True,
            text=True,
        )
        labels = json.loads(result.stdout.strip().splitlines()[-1])
        dumps = sorted(Path(folder).glob("callgrind.out.*"), key=lambda path: int(path.suffix[1:]))
        per_call: dict[str, list[float]] = {}
        for label, dump in zip(labels, dumps, strict=False):
            if "|" in label:
                name, n = label.split("|")
                total = int(re.search(r"^summary: (\d+)$", dump.read_text(), re.MULTILINE).group(1))
                per_call.setdefault(name, []).append(total / int(n))
    print(f"\n{'millions of instructions per call, each round':60} ")
    for name, values in per_call.items():
        print(f"{name:60} " + "  ".join(f"{value / 1e6:7.2f}" for value in values))


def latency(requests: int) -> None:
    ports = {variant: bench.API_PORT + i for i, variant in enumerate(VARIANTS)}
    servers = {
        variant: stack.start(
            bench.PY,
            "-m",
            "gunicorn",
            "bench.micro_optimisations:application",
            "--workers",
            "2",
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            env={**bench.ENV, "BENCH_VARIANT": variant},
        )
        for variant, port in ports.items()
    }
    try:
        connections = {}
        for variant, port in ports.items():
            stack.wait_for(f"http://127.0.0.1:{port}/api/health/", 120)
            body = bench.CREATE_BODY.replace("{n}", f"warm{port}x{{n}}")
            bench.load(f"http://127.0.0.1:{port}/api/checkout/create-session", 40, 2, "POST", body)
            connections[variant] = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        milliseconds: dict[str, list[float]] = {variant: [] for variant in VARIANTS}
        for i in range(requests):
            for variant in random.sample(VARIANTS, len(VARIANTS)):
                body = bench.CREATE_BODY.replace("{n}", f"l{i}p{ports[variant]}")
                started = time.perf_counter()
                connections[variant].request(
                    "POST", "/api/checkout/create-session", body=body, headers={"Content-Type": "application/json"}
                )
                response = connections[variant].getresponse()
                response.read()
                milliseconds[variant].append((time.perf_counter() - started) * 1000)
                assert response.status == 200, response.status
    finally:
        for server in servers.values():
            os.killpg(server.pid, signal.SIGTERM)
        for server in servers.values():
            server.wait(timeout=30)
    base = milliseconds[VARIANTS[0]]
    print(f"\n{'variant':12} {'median ms':>10} {'paired ratio to ' + VARIANTS[0]:>28} {'95 % interval':>15}")
    for variant in VARIANTS:
        ratios = [a / b for a, b in zip(milliseconds[variant], base, strict=True)]
        resampled = sorted(statistics.median(random.choices(ratios, k=len(ratios))) for _ in range(2000))
        print(
            f"{variant:12} {statistics.median(milliseconds[variant]):10.1f} {statistics.median(ratios):28.3f} "
            f"{resampled[50]:7.3f}-{resampled[1949]:.3f}"
        )


def __getattr__(name):
    # gunicorn's entry point (bench.micro_optimisations:application): the service with BENCH_VARIANT applied.
    if name == "application":
        from config.wsgi import application

        variant_apply(os.environ["BENCH_VARIANT"])
        return application
    raise AttributeError(name)


def main() -> None:
    mode = sys.argv[1] if len(sys.argv) > 1 else "instructions"
    if mode == "_measure":
        os.environ.update(bench.ENV)
        _measure(json.loads(sys.argv[2]))
        return
    bench.prepare_database()
    sandbox = stack.start(
        bench.PY, "-m", "stripe_sandbox", "--host", "127.0.0.1", "--port", str(bench.SANDBOX_PORT), env=bench.ENV
    )
    try:
        stack.wait_for(f"{bench.SANDBOX}/_sandbox/health")
        if mode == "instructions":
            instructions({"rounds": 2, "cache": 200, "create": 20, "checkout": 15, "poll": 100})
        elif mode == "latency":
            latency(int(sys.argv[2]) if len(sys.argv) > 2 else 400)
        else:
            raise SystemExit(f"unknown mode {mode!r}: instructions or latency")
    finally:
        os.killpg(sandbox.pid, signal.SIGTERM)
        sandbox.wait(timeout=20)


if __name__ == "__main__":
    main()
