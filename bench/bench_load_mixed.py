"""A city's mixed workload under load: gunicorn (several workers) on PostgreSQL and Redis with an
RQ worker, driven by locust on loopback; throughput and p50/p99 per operation, next to `/healthz`
of the same app in the same run.

    .venv/bin/python bench/bench_load_mixed.py [--seconds 60] [--users 16] [--workers 4]
        [--threads 4] [--health-seconds 15] [--tickets 500] [--validators 20] [--pg URL]
        [--redis URL] [--profile]

What it does, all on this machine (loopback only), bounded in time, cleaning up after itself:

1. creates a scratch PostgreSQL database (dropped at the end), migrates it, seeds the demo
   (vendor1's market, attendant1's lot HK-01, commuter1) and, as bench_validations_http.py does,
   `--validators` metro gates with their own device API keys and `--tickets` monthly passes bound
   to commuter1's phone;
2. starts a private `redis-server` on a free loopback port with no persistence (or uses
   `--redis URL`, a database it may flush), an RQ worker (`cashless worker`), a tiny HTTP
   receiver for vendor1's merchant webhook (so every paid charge is a job the worker delivers),
   and gunicorn (`--workers` × `--threads`, gthread) with REDIS_URL set and INFO request logs as
   in production; sandbox mode is on only so that the webhook may be plain HTTP on loopback;
3. logs in commuter1, vendor1 and attendant1 once (real ES256 tokens), then runs locust
   headless (`bench/locustfile_mixed.py`): 5 s of the mix as a warm-up (not counted),
   `--health-seconds` of `GET /healthz` alone, then `--seconds` of the mix (`MIX` below), each
   with `--users` closed-loop users and no think time;
4. waits for the webhook jobs to drain and checks in SQL that what the clients were told is what
   the database holds: every `matched` notification a succeeded payment and bank clearing moved
   by their sum, every accepted validation one accepted tap, every journal transaction balanced,
   every webhook delivered at its first attempt and received;
5. prints a markdown table per operation (requests, req/s, p50, p99, errors; client side, and
   the server's own p50 from its request log) and writes bench/out/load_mixed.json.

Any non-2xx answer or wrong result is counted against its operation and printed; a run with
errors or a failed check says so loudly and exits 1. `--profile` samples the gunicorn workers
with py-spy during the mix and prints where their time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import http.server
import importlib.util
import json
import os
import platform
import re
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from bench_notifications import ACCOUNT, machine, pg_version, psql_url  # noqa: E402
from bench_validations_http import (  # noqa: E402
    DEFAULT_PG,
    free_port,
    gunicorn,
    prepare,
    scratch_database,
)

# Task weights per 100 picks. A task is what one client does: `sale` is three requests (charge,
# bank notification, status read), a VietQR parking exit two (exit, bank notification).
MIX = {
    "validate": 30,  # a connected metro gate checks a scan online
    "sale": 20,  # vendor's dynamic QR → the bank's signed notification → vendor reads it paid
    "parking": 16,  # a motorbike in by plate, or the oldest one out (cash or VietQR)
    "wallet": 8,  # commuter: wallet balance
    "tickets": 5,  # commuter: usable tickets
    "fare_products": 5,  # commuter: the fare list
    "sales": 5,  # vendor: today's sales per stall
    "occupancy": 5,  # attendant: the lot's free spaces
    "enforcement": 4,  # attendant: is this plate paid for?
    "healthz": 2,  # the trivial endpoint, inside the mix
}
WARMUP_SECONDS = 5
LOCUSTFILE = ROOT / "bench" / "locustfile_mixed.py"
OUT = ROOT / "bench" / "out"


# -- the pieces around gunicorn -------------------------------------------------------------------
@contextlib.contextmanager
def private_redis(url: str | None) -> Iterator[str]:
    """`url` (flushed before and after), or a redis-server of our own on a free loopback port."""
    from redis import Redis

    if url:
        Redis.from_url(url).flushdb()
        try:
            yield url
        finally:
            Redis.from_url(url).flushdb()
        return
    if shutil.which("redis-server") is None:
        raise SystemExit("no redis-server on PATH: pass --redis redis://127.0.0.1:6379/0")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="bench-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--bind", "127.0.0.1", "--port", str(port), "--save", "",
         "--appendonly", "no", "--dir", workdir],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        deadline = time.monotonic() + 10
        while True:
            with contextlib.suppress(Exception):
                if Redis.from_url(url, socket_connect_timeout=0.5).ping():
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("redis-server did not start")
            time.sleep(0.1)
        yield url
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)


@contextlib.contextmanager
def rq_worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`cashless worker` (RQ, queues high, default, low) against the scratch database."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cashless.cli", "worker"],
            cwd=ROOT,
            env={**os.environ, **env, "PYTHONPATH": str(ROOT)},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(1)
        if proc.poll() is not None:
            raise RuntimeError("the RQ worker exited:\n" + log.read_text()[-2000:])
        yield proc
    finally:
        stop(proc)


class Receiver(http.server.BaseHTTPRequestHandler):
    """A merchant's webhook endpoint: reads the event, answers 204, counts."""

    hits = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with Receiver.lock:
            Receiver.hits += 1
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        pass


@contextlib.contextmanager
def webhook_receiver() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    finally:
        server.shutdown()
        server.server_close()


def sign_in(base: str, receiver_url: str) -> dict[str, Any]:
    """Real tokens for the three roles, vendor1's merchant, lot HK-01, the webhook endpoint."""
    import requests

    tokens = {}
    for role, user in (
        ("commuter", "commuter1"),
        ("vendor", "vendor1"),
        ("attendant", "attendant1"),
    ):
        answer = requests.post(
            base + "/api/v1/auth/token", json={"username": user, "password": "demo"}, timeout=30
        )
        answer.raise_for_status()
        tokens[role] = answer.json()["access_token"]

    def get(path: str, role: str) -> Any:
        answer = requests.get(
            base + path, headers={"Authorization": f"Bearer {tokens[role]}"}, timeout=30
        )
        answer.raise_for_status()
        return answer.json()

    merchant_id = get("/api/v1/merchants/me", "vendor")["id"]
    lots = get("/api/v1/parking/lots", "attendant")["data"]
    lot_id = next(lot["id"] for lot in lots if lot["code"] == "HK-01")
    answer = requests.post(
        f"{base}/api/v1/merchants/{merchant_id}/webhook-endpoints",
        json={"url": receiver_url},
        headers={"Authorization": f"Bearer {tokens['vendor']}"},
        timeout=30,
    )
    answer.raise_for_status()
    return {"tokens": tokens, "merchant_id": merchant_id, "lot_id": lot_id}


# -- locust ---------------------------------------------------------------------------------------
def run_locust(
    base: str,
    data_file: Path,
    user_class: str,
    users: int,
    seconds: int,
    tag: str,
    pair_offset: int,
) -> dict[str, Any]:
    """One headless locust run; returns its per-operation stats, failures and counts."""
    prefix = data_file.parent / f"locust-{tag}"
    counts_file = data_file.parent / f"counts-{tag}.json"
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s",
        "--host", base, "--csv", str(prefix), "--only-summary", "--stop-timeout", "30",
        "--loglevel", "WARNING", user_class,
    ]  # fmt: skip
    env = {
        **os.environ,
        "CASHLESS_LOAD_DATA": str(data_file),
        "CASHLESS_LOAD_COUNTS": str(counts_file),
        "CASHLESS_LOAD_TAG": tag,
        "CASHLESS_LOAD_PAIR_OFFSET": str(pair_offset),
    }
    started, log = time.monotonic(), data_file.parent / f"locust-{tag}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    _, status, usage = os.wait4(proc.pid, 0)  # the CPU of locust alone, not of other children
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.monotonic() - started
    locust_cpu = usage.ru_utime + usage.ru_stime
    output = log.read_text(errors="replace")
    if not Path(f"{prefix}_stats.csv").exists():
        raise RuntimeError(f"locust failed ({proc.returncode}):\n{output[-3000:]}")
    stats = {}
    with open(f"{prefix}_stats.csv", newline="") as f:
        for row in csv.DictReader(f):
            name = row["Name"] if row["Type"] else "all operations"
            stats[name] = {
                "requests": int(row["Request Count"]),
                "errors": int(row["Failure Count"]),
                "rps": float(row["Requests/s"]),
                "p50_ms": float(row["50%"]),
                "p99_ms": float(row["99%"]),
            }
    failures: dict[str, Counter[str]] = defaultdict(Counter)
    with open(f"{prefix}_failures.csv", newline="") as f:
        for row in csv.DictReader(f):
            failures[row["Name"]][row["Error"][:200]] += int(row["Occurrences"])
    counts = json.loads(counts_file.read_text()) if counts_file.exists() else {}
    warnings = [line for line in output.splitlines() if "CPU usage" in line]
    return {
        "stats": stats,
        "failures": {k: dict(v) for k, v in failures.items()},
        "counts": counts,
        "wall_seconds": round(elapsed, 1),
        "locust_cpu_seconds": round(locust_cpu, 1),
        "locust_warnings": warnings[:3],
    }


# -- measuring the machine ------------------------------------------------------------------------
def cpu_seconds() -> dict[str, float]:
    """CPU seconds used so far by the machine and by each part of the bench (psutil)."""
    import psutil

    ticks = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    used = {"machine (busy)": (sum(fields) - fields[3] - fields[4]) / ticks}
    parts: dict[str, float] = defaultdict(float)
    for proc in psutil.process_iter(["name", "cmdline", "cpu_times"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        times = proc.info["cpu_times"]
        if times is None:
            continue
        if "gunicorn" in cmd and "wsgi:app" in cmd:
            part = "gunicorn (master + workers)"
        elif "cashless.cli worker" in cmd:
            part = "RQ worker"
        elif (proc.info["name"] or "").startswith("postgres"):
            part = "PostgreSQL (all backends on the machine)"
        elif (proc.info["name"] or "").startswith("redis-server"):
            part = "redis-server (all)"
        else:
            continue
        parts[part] += times.user + times.system
    return {**used, **parts}


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {k: round(after.get(k, 0.0) - before.get(k, 0.0), 1) for k in after}


def gunicorn_master() -> int:
    import psutil

    for child in psutil.Process().children(recursive=True):
        cmd = " ".join(child.cmdline())
        if "gunicorn" in cmd and "wsgi:app" in cmd and child.parent().pid == os.getpid():
            return int(child.pid)
    raise RuntimeError("no gunicorn master among our children")


@contextlib.contextmanager
def profiled(enabled: bool, seconds: int, out: Path) -> Iterator[None]:
    """py-spy on the gunicorn master and its workers for `seconds`: where their CPU goes
    (threads waiting for PostgreSQL, a request or the GIL are not sampled)."""
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not enabled or not Path(py_spy).exists():
        if enabled:
            print("py-spy is not installed: no profile", flush=True)
        yield
        return
    proc = subprocess.Popen(
        [py_spy, "record", "--pid", str(gunicorn_master()), "--subprocesses", "--nonblocking",
         "--rate", "100", "--duration", str(seconds), "--format", "raw", "--output", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield
    finally:
        try:
            proc.wait(seconds + 30)
        except subprocess.TimeoutExpired:
            proc.kill()


# Leaf-first: the innermost frame whose file matches names the sample's package.
PACKAGES = [
    ("psycopg (sending statements, reading rows)", ("psycopg/", "psycopg_binary")),
    ("cryptography, PyJWT, argon2 (ECDSA, HMAC)", ("cryptography/", "jwt/", "argon2/")),
    ("SQLAlchemy (ORM, compiling, results)", ("sqlalchemy/",)),
    ("marshmallow, webargs, apispec", ("marshmallow/", "webargs/", "apispec/")),
    ("Flask, Werkzeug, flask-smorest, Flask-Limiter, Babel",
     ("flask/", "werkzeug/", "flask_smorest/", "flask_limiter/", "limits/", "flask_babel/",
      "babel/", "jinja2/")),
    ("logging (JSON request lines)", ("logging/", "pythonjsonlogger/")),
    ("redis client", ("redis/",)),
    ("gunicorn (HTTP parsing, keep-alive poller)", ("gunicorn/", "selectors.py")),
    ("our code (core, payments, ticketing, merchants, cashless)",
     ("/core/", "/payments/", "/ticketing/", "/merchants/", "/cashless/")),
]  # fmt: skip
VIEW_FILE = re.compile(r"\((?:[^()]*/)?(?:api|parking_api|auth_api|system_api)\.py:\d+\)$")


def summarise_profile(raw: Path) -> dict[str, list[tuple[str, float]]]:
    """Shares of the workers' CPU samples by package (innermost frame) and by view function
    (the outermost frame in an api module, with everything it calls)."""
    if not raw.exists():
        return {}
    packages: Counter[str] = Counter()
    views: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        package = "other (stdlib: json, uuid, datetime, …)"
        for frame in reversed(frames):
            hit = next((name for name, keys in PACKAGES if any(k in frame for k in keys)), None)
            if hit:
                package = hit
                break
        packages[package] += int(count)
        view = next((f.split(" ")[0] for f in frames if VIEW_FILE.search(f)), None)
        if view is None:
            view = (
                "(in Flask's dispatch, around the view: auth, idempotency, schemas)"
                if any("dispatch_request" in f for f in frames)
                else "(outside dispatch: gunicorn, WSGI, request set-up, logging)"
            )
        views[view] += int(count)
    whole = sum(packages.values()) or 1
    return {
        "packages": [(k, round(100 * n / whole, 1)) for k, n in packages.most_common()],
        "views": [(k, round(100 * n / whole, 1)) for k, n in views.most_common()],
    }


def server_times(log: Path, span: tuple[int, int]) -> dict[str, list[float]]:
    """The app's own `ms` per operation from its INFO request lines (time inside Flask) written
    between the byte offsets `span` of its log."""
    times: dict[str, list[float]] = defaultdict(list)
    with log.open("rb") as f:
        f.seek(span[0])
        text = f.read(span[1] - span[0]).decode(errors="replace")
    for line in text.splitlines():
        if not line.startswith("{"):
            continue
        with contextlib.suppress(ValueError, KeyError):
            entry = json.loads(line)
            if entry.get("message") == "request":
                times[operation(entry["method"], entry["path"])].append(float(entry["ms"]))
    return times


def operation(method: str, path: str) -> str:
    """`POST /api/v1/merchants/1/charges` → `POST /merchants/{id}/charges` (locust's names)."""
    path = path.removeprefix("/api/v1")
    path = re.sub(r"/enforcement/[^/]+", "/enforcement/{plate}", path)
    return f"{method} {re.sub(r'/[0-9]+', '/{id}', path)}"


# -- checks ---------------------------------------------------------------------------------------
def snapshot(url: str) -> dict[str, int]:
    import psycopg

    queries = {
        "clearing": "SELECT coalesce(sum(balance), 0) FROM ledger_accounts"
        " WHERE code = 'bank_clearing'",
        "matched": "SELECT count(*) FROM bank_notifications WHERE status = 'matched'",
        "accepted": "SELECT count(*) FROM taps WHERE decision = 'accept'",
        "unbalanced": "SELECT count(*) FROM (SELECT transaction_id FROM postings"
        " GROUP BY transaction_id HAVING sum(amount) <> 0) t",
        "deliveries": "SELECT count(*) FROM webhook_deliveries",
        "delivered": "SELECT count(*) FROM webhook_deliveries WHERE status = 'delivered'",
        "attempts": "SELECT coalesce(sum(attempts), 0) FROM webhook_deliveries",
        "closed": "SELECT count(*) FROM parking_sessions WHERE status = 'closed'",
    }  # fmt: skip
    with psycopg.connect(psql_url(url)) as conn:
        return {k: int(conn.execute(q).fetchone()[0]) for k, q in queries.items()}  # type: ignore[index,arg-type]


def drain_webhooks(url: str, limit: float) -> float:
    """Seconds until every webhook delivery is delivered (or `limit` passed)."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        now = snapshot(url)
        if now["delivered"] == now["deliveries"]:
            break
        time.sleep(0.5)
    return round(time.monotonic() - started, 1)


def check(before: dict[str, int], after: dict[str, int], counts: dict[str, int]) -> list[str]:
    problems = []
    if after["matched"] - before["matched"] != counts.get("matched", 0):
        problems.append(
            f"{after['matched'] - before['matched']} matched notifications stored, "
            f"clients were told {counts.get('matched', 0)}"
        )
    moved = after["clearing"] - before["clearing"]
    if abs(moved) != counts.get("matched_vnd", 0):
        problems.append(f"bank clearing moved {moved:,} VND for {counts.get('matched_vnd', 0):,}")
    if after["accepted"] - before["accepted"] != counts.get("accepted", 0):
        problems.append(
            f"{after['accepted'] - before['accepted']} accepted taps stored, "
            f"gates were told {counts.get('accepted', 0)}"
        )
    if after["unbalanced"]:
        problems.append(f"{after['unbalanced']} unbalanced journal transactions")
    if after["delivered"] != after["deliveries"]:
        problems.append(
            f"{after['deliveries'] - after['delivered']} of {after['deliveries']} webhook "
            "deliveries not delivered"
        )
    if after["attempts"] > after["deliveries"]:
        problems.append(
            f"{after['attempts'] - after['deliveries']} webhook attempts failed and were retried"
        )
    if Receiver.hits != after["attempts"]:
        problems.append(f"{after['attempts']} webhook attempts recorded, {Receiver.hits} received")
    return problems


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="length of the measured mix")
    parser.add_argument("--health-seconds", type=int, default=15, help="/healthz alone")
    parser.add_argument("--users", type=int, default=16, help="locust users (closed loop)")
    parser.add_argument("--workers", type=int, default=4, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--tickets", type=int, default=500)
    parser.add_argument("--validators", type=int, default=20)
    parser.add_argument("--pg", default=DEFAULT_PG, help="an admin URL of a PostgreSQL server")
    parser.add_argument("--redis", default="", help="a Redis database to flush and use "
                        "(default: a private redis-server on a free port)")  # fmt: skip
    parser.add_argument("--profile", action="store_true", help="py-spy the workers in the mix")
    args = parser.parse_args(argv)
    # Never import locust here: it monkey-patches the process for gevent, and the webhook
    # receiver's threads would then stall whenever the main thread waits for a child.
    if importlib.util.find_spec("locust") is None:
        print("locust is not installed (pip install -e '.[bench]'): nothing measured")
        return 0
    try:
        import psycopg

        psycopg.connect(psql_url(args.pg), connect_timeout=3).close()
    except Exception as exc:
        print(f"PostgreSQL is not reachable at {args.pg}: {exc}; nothing measured")
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    started = datetime.now(UTC)
    load_before = os.getloadavg()
    print(f"Machine: {machine()}; {pg_version(psql_url(args.pg))}; "
          f"Python {platform.python_version()}", flush=True)  # fmt: skip
    with (
        scratch_database(args.pg) as url,
        tempfile.TemporaryDirectory(prefix="bench-load-") as instance,
        private_redis(args.redis or None) as redis_url,
        webhook_receiver() as hook_url,
    ):
        work = Path(instance)
        env = {
            "DATABASE_URL": url,
            "CASHLESS_INSTANCE_PATH": instance,
            "CASHLESS_DEMO": "1",
            "CASHLESS_SANDBOX": "1",
            "REDIS_URL": redis_url,
            "CASHLESS_BANK_WEBHOOK_SECRET": "bench-bank-" + secrets.token_hex(8),
            "CASHLESS_COLLECTION_ACCOUNT": ACCOUNT,
        }
        print(f"setup: demo, {args.validators} gates, {args.tickets} tickets …", flush=True)
        data = prepare(env, args.tickets, args.validators)
        with (
            rq_worker(env, work / "worker.log"),
            gunicorn(env, args.workers, args.threads, log_level="INFO") as base,
        ):
            data.update(sign_in(base, hook_url))
            data.update(mix=MIX, bank_secret=env["CASHLESS_BANK_WEBHOOK_SECRET"])
            data_file = work / "load.json"
            data_file.write_text(json.dumps(data))
            try:
                result = drive(args, base, url, data_file, work)
            finally:  # for a look after the run (bench/out is not committed)
                OUT.mkdir(exist_ok=True)
                for log in ("gunicorn.log", "worker.log", "profile.txt"):
                    if (work / log).exists():
                        shutil.copy(work / log, OUT / f"load_mixed_{log}")
            result["server_ms"] = {
                name: {"p50": round(statistics.median(v), 1), "count": len(v)}
                for name, v in server_times(work / "gunicorn.log", result["log_span"]).items()
            }
    result.update(
        at=started.isoformat(timespec="seconds"),
        machine=machine(),
        load_average={
            "start": [round(x, 2) for x in load_before],
            "end": [round(x, 2) for x in os.getloadavg()],
        },
        settings={
            k: getattr(args, k)
            for k in (
                "seconds",
                "health_seconds",
                "users",
                "workers",
                "threads",
                "tickets",
                "validators",
            )
        },
        mix=MIX,
    )
    return report(result)


def drive(
    args: argparse.Namespace, base: str, url: str, data_file: Path, work: Path
) -> dict[str, Any]:
    print(f"warm-up: the mix for {WARMUP_SECONDS} s …", flush=True)
    before = snapshot(url)
    warm = run_locust(base, data_file, "City", args.users, WARMUP_SECONDS, "w0a", 0)
    offset = warm["counts"].get("pairs", 0)
    print(f"GET /healthz alone: {args.users} users × {args.health_seconds} s …", flush=True)
    health = run_locust(base, data_file, "HealthOnly", args.users, args.health_seconds, "h0a", 0)
    print(f"the mix: {args.users} users × {args.seconds} s "
          f"(gunicorn {args.workers} workers × {args.threads} threads) …", flush=True)  # fmt: skip
    cpu_before, log_start = cpu_seconds(), (work / "gunicorn.log").stat().st_size
    raw_profile = work / "profile.txt"
    with profiled(args.profile, args.seconds, raw_profile):
        mixed = run_locust(base, data_file, "City", args.users, args.seconds, "m1x", offset)
    cpu = cpu_delta(cpu_before, cpu_seconds())
    log_span = (log_start, (work / "gunicorn.log").stat().st_size)
    cpu["locust (load generator)"] = mixed["locust_cpu_seconds"]
    print("waiting for the webhook jobs to drain …", flush=True)
    drain = drain_webhooks(url, 120)
    after = snapshot(url)
    counts: Counter[str] = Counter(warm["counts"])
    counts.update(mixed["counts"])
    return {
        "warmup": warm,
        "healthz_alone": health,
        "mixed": mixed,
        "cpu_seconds": cpu,
        "log_span": log_span,
        "profile": summarise_profile(raw_profile),
        "webhooks": {
            "drained_after_s": drain,
            "deliveries": after["deliveries"],
            "delivered": after["delivered"],
            "attempts": after["attempts"],
            "received": Receiver.hits,
        },
        "database": {"before": before, "after": after},
        "problems": check(before, after, dict(counts)),
    }


def report(result: dict[str, Any]) -> int:
    mixed, health = result["mixed"], result["healthz_alone"]
    server = result["server_ms"]
    s = result["settings"]
    print()
    print(f"Run of {result['at']}: gunicorn {s['workers']} workers × {s['threads']} threads, "
          f"{s['users']} locust users, mix {s['seconds']} s, load average "
          f"{result['load_average']['start'][0]} → {result['load_average']['end'][0]}")  # fmt: skip
    print()
    print("| operation | requests | req/s | p50 ms | p99 ms | server p50 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    rows = sorted(
        ((k, v) for k, v in mixed["stats"].items() if k != "all operations"),
        key=lambda kv: -kv[1]["requests"],
    )
    for name, row in [*rows, ("all operations", mixed["stats"].get("all operations"))]:
        if row is None:
            continue
        label = f"**{name}**" if name == "all operations" else f"`{name}`"
        srv = server.get(name, {}).get("p50", "")
        print(f"| {label} | {row['requests']:,} | {row['rps']:,.1f} | {row['p50_ms']:,.0f} | "
              f"{row['p99_ms']:,.0f} | {srv} | {row['errors']} |")  # fmt: skip
    alone = health["stats"].get("GET /healthz")
    if alone:
        print(f"| `GET /healthz` alone ({s['health_seconds']} s, same server, before the mix) | "
              f"{alone['requests']:,} | {alone['rps']:,.1f} | {alone['p50_ms']:,.0f} | "
              f"{alone['p99_ms']:,.0f} | | {alone['errors']} |")  # fmt: skip
    print()
    print("CPU seconds during the mix:",
          ", ".join(f"{k} {v}" for k, v in result["cpu_seconds"].items()))  # fmt: skip
    hooks = result["webhooks"]
    print(
        f"Webhooks: {hooks['delivered']}/{hooks['deliveries']} delivered by the RQ worker in "
        f"{hooks['attempts']} attempts, {hooks['received']} received; all delivered "
        f"{hooks['drained_after_s']} s after the load stopped"
    )
    if result["profile"]:
        print("Where the gunicorn workers' CPU goes (py-spy samples), by package:")
        for name, share in result["profile"]["packages"]:
            print(f"  {share:5.1f} %  {name}")
        print("… and by view function (with all it calls):")
        for name, share in result["profile"]["views"]:
            print(f"  {share:5.1f} %  {name}")
    for warning in mixed["locust_warnings"]:
        print("locust:", warning)
    OUT.mkdir(exist_ok=True)
    (OUT / "load_mixed.json").write_text(json.dumps(result, indent=2, default=str))
    errors = {k: v for k, v in mixed["failures"].items()}
    errors.update({f"healthz alone {k}": v for k, v in health["failures"].items()})
    errors.update({f"warm-up {k}": v for k, v in result["warmup"]["failures"].items()})
    if errors or result["problems"]:
        print()
        print("!" * 78)
        print("!! THIS RUN HAD ERRORS: the figures above are not a clean measurement")
        for name, reasons in errors.items():
            for reason, n in reasons.items():
                print(f"!!   {name}: {n} × {reason}")
        for problem in result["problems"]:
            print(f"!!   check: {problem}")
        print("!" * 78)
        return 1
    print("Check: OK (every answer as a real client expects it; the database agrees)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
