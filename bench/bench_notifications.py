"""Benchmark: bank notifications confirmed per second on PostgreSQL through HTTP, side by side
with `pgbench -b simple-update` on the same server in the same run.

Run from the repository root (never by the test suite):

    .venv/bin/python bench/bench_notifications.py [--seconds 30] [--clients 8] [--workers 2]
        [--batch 100,500]

What it does, all on this machine (loopback only) and bounded in time:

1. creates two scratch databases on the PostgreSQL at --pg (default: the test server,
   postgresql://postgres@127.0.0.1:5432): one migrated with our Alembic migrations, one
   initialised by `pgbench -i`; both are dropped at the end;
2. pre-creates pending VietQR payments in bulk (COPY), each with its own `HC…` reference;
3. runs `pgbench -b simple-update -c CLIENTS -j 2 -T SECONDS` against the scratch database;
4. starts the service with `cashless serve --workers N` (gunicorn, gthread) on a free port with
   DATABASE_URL pointing at the scratch database and REDIS_URL at Redis database 0 (without
   Redis: gunicorn directly on wsgi:app);
5. CLIENTS threads with keep-alive `http.client` connections post signed notifications, each
   for a pending payment with its exact amount and reference, for SECONDS: first one per
   request (`POST /api/v1/bank/notifications`), then, for each size in --batch (default
   100 and 500), that many per request (`POST /api/v1/bank/notifications/batch`);
6. checks in SQL that every confirmed notification made exactly one succeeded payment and that
   bank clearing moved by their sum, then prints a table: tps, latency, ratio to pgbench.

"Confirmed" = the answer said `matched`: the notification was verified, stored, matched to its
payment, posted to the ledger (balanced, sealed) and the payment marked succeeded, committed.
Goal (issue 3): at least 0.3× pgbench's tps.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import http.client
import io
import json
import os
import platform
import random
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.clock import business_date  # noqa: E402
from payments.references import new_charge_reference  # noqa: E402

SECRET = "bench-bank-secret-" + secrets.token_hex(8)
ACCOUNT = "0011001234567"  # the default collection account of core/config.py
MERCHANT_ID = 1


# -- set-up -------------------------------------------------------------------------------------
def psql_url(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def admin(url: str, sql: str) -> None:
    import psycopg

    with psycopg.connect(psql_url(url), autocommit=True) as conn:
        conn.execute(sql)  # type: ignore[arg-type]


def with_database(url: str, name: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(database=name).render_as_string(hide_password=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def seed_payments(url: str, count: int) -> list[tuple[str, int]]:
    """`count` pending VietQR payments of merchant 1, by COPY; returns (reference, amount)."""
    import psycopg

    now = datetime.now(UTC)
    day = business_date(now)
    rows: dict[str, int] = {}
    rng = random.Random(20261122)
    while len(rows) < count:
        rows[new_charge_reference()] = rng.randrange(10, 5000) * 1000
    columns = (
        "reference, amount, currency, method, status, purpose, owner_ref, credit_account, "
        "merchant_id, business_date, created_at, expires_at, refunded_amount"
    )
    with psycopg.connect(psql_url(url)) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY payments ({columns}) FROM STDIN") as copy:
            for reference, amount in rows.items():
                copy.write_row(
                    (
                        reference,
                        amount,
                        "VND",
                        "vietqr",
                        "pending",
                        "charge",
                        f"bench:{reference}",
                        f"merchant:{MERCHANT_ID}:payable",
                        MERCHANT_ID,
                        day,
                        now,
                        now + timedelta(hours=2),
                        0,
                    )
                )
        conn.commit()
        cur.execute("ANALYZE payments")
    return list(rows.items())


# -- pgbench ------------------------------------------------------------------------------------
def pgbench(url: str, clients: int, seconds: int) -> float:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    base = ["-h", parts.host or "127.0.0.1", "-p", str(parts.port or 5432)]
    base += ["-U", parts.username or "postgres"]
    env = {**os.environ, "PGPASSWORD": parts.password or ""}
    subprocess.run(
        ["pgbench", "-i", "-q", "-s", "10", *base, str(parts.database)],
        check=True,
        env=env,
        capture_output=True,
    )
    threads = str(min(clients, os.cpu_count() or 2))
    command = ["pgbench", "-b", "simple-update", "-c", str(clients), "-j", threads]
    command += ["-T", str(seconds), *base, str(parts.database)]
    out = subprocess.run(
        command,
        check=True,
        env=env,
        capture_output=True,
        text=True,
    ).stdout
    match = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", out)
    if not match:
        raise RuntimeError(f"could not read pgbench's tps:\n{out}")
    return float(match.group(1))


# -- the service --------------------------------------------------------------------------------
def redis_available(url: str) -> bool:
    try:
        from redis import Redis

        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except Exception:
        return False


@contextlib.contextmanager
def service(
    db_url: str, redis_url: str | None, workers: int, threads: int, log: Path
) -> Iterator[str]:
    """The service under gunicorn on a free loopback port; stopped (by its pid) on exit."""
    port = free_port()
    instance = Path(tempfile.mkdtemp(prefix="bench-instance-"))
    # Compiled once here: gunicorn's workers would otherwise race to write the same .mo file.
    from core.i18n import compile_catalogues

    compile_catalogues(ROOT / "cashless" / "translations", instance / "translations")
    env = {
        **os.environ,
        "DATABASE_URL": db_url,
        "CASHLESS_INSTANCE_PATH": str(instance),
        "CASHLESS_BANK_WEBHOOK_SECRET": SECRET,
        "CASHLESS_DEMO": "0",
        "CASHLESS_SANDBOX": "0",
        "PYTHONPATH": str(ROOT),
    }
    env.pop("REDIS_URL", None)
    if redis_url:
        env["REDIS_URL"] = redis_url
        command = [sys.executable, "-m", "cashless.cli", "serve", "--port", str(port)]
        command += ["--workers", str(workers), "--threads", str(threads)]
    else:  # without Redis `cashless serve` allows one worker only: gunicorn directly
        command = [sys.executable, "-m", "gunicorn", "-b", f"127.0.0.1:{port}", "-w"]
        command += [str(workers), "-k", "gthread", "--threads", str(threads), "wsgi:app"]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        wait_ready(port, proc, log)
        yield f"127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):  # it may have exited by itself
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        shutil.rmtree(instance, ignore_errors=True)


def wait_ready(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited:\n{log.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready in 60 s")


# -- the load -----------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    confirmed: int = 0
    other: dict[str, int] = field(default_factory=dict)
    requests: int = 0
    errors: list[str] = field(default_factory=list)
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0
    amount: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def tps(self) -> float:
        return self.confirmed / self.elapsed if self.elapsed else 0.0


class Payments:
    """Pending payments handed out once each, across client threads."""

    def __init__(self, items: list[tuple[str, int]]) -> None:
        self.items = items
        self.next = 0
        self.lock = threading.Lock()

    def take(self, n: int) -> list[tuple[str, int]]:
        with self.lock:
            chunk = self.items[self.next : self.next + n]
            self.next += len(chunk)
            return chunk


def notification(reference: str, amount: int, serial: str) -> dict[str, Any]:
    return {
        "transaction_id": "BENCH-" + re.sub(r"[^A-Za-z0-9-]", "", serial),
        "account_number": ACCOUNT,
        "amount": amount,
        "credited_at": datetime.now(UTC).isoformat(),
        "description": f"{reference} thanh toan cho",
        "counterparty_name": "NGUYEN VAN BENCH",
    }


def signed(body: dict[str, Any], secret: str = SECRET) -> tuple[bytes, dict[str, str]]:
    """The body as the bank sends it, with its X-Signature (docs/BANK_WEBHOOK.md)."""
    raw = json.dumps(body, separators=(",", ":")).encode()
    stamp = str(int(time.time()))
    mac = hmac.new(secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256).hexdigest()
    return raw, {"Content-Type": "application/json", "X-Signature": f"t={stamp},v1={mac}"}


def client(
    address: str, phase: Phase, pool: Payments, batch: int, deadline: float, tag: str
) -> None:
    host, port = address.split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    path = "/api/v1/bank/notifications" + ("/batch" if batch > 1 else "")
    serial = 0
    while time.monotonic() < deadline:
        items = pool.take(batch)
        if not items:
            break
        bodies = [notification(r, a, f"{tag}-{serial + i}") for i, (r, a) in enumerate(items)]
        serial += len(items)
        raw, headers = signed({"notifications": bodies} if batch > 1 else bodies[0])
        start = time.perf_counter()
        try:
            conn.request("POST", path, body=raw, headers=headers)
            response = conn.getresponse()
            answer = response.read()
        except (OSError, http.client.HTTPException) as exc:
            with phase.lock:
                phase.errors.append(repr(exc))
            conn.close()
            conn = http.client.HTTPConnection(host, int(port), timeout=60)
            continue
        took = time.perf_counter() - start
        record(phase, response.status, answer, items, took, batch > 1)
    conn.close()


def record(
    phase: Phase, status: int, answer: bytes, items: list[tuple[str, int]], took: float, many: bool
) -> None:
    with phase.lock:
        phase.requests += 1
        phase.latencies.append(took)
        if status != 200:
            phase.errors.append(f"HTTP {status}: {answer[:200]!r}")
            return
        results = json.loads(answer)["results"] if many else [json.loads(answer)]
        for (_, amount), result in zip(items, results, strict=True):
            if result["status"] == "matched":
                phase.confirmed += 1
                phase.amount += amount
            else:
                phase.other[result["status"]] = phase.other.get(result["status"], 0) + 1


def run_phase(
    name: str, address: str, pool: Payments, clients: int, seconds: float, batch: int
) -> Phase:
    warm = Phase(name + " warm-up")
    client(address, warm, pool, batch, time.monotonic() + 2, f"{name}-warm")
    phase = Phase(name)
    phase.amount = 0
    start = time.monotonic()
    deadline = start + seconds
    threads = [
        threading.Thread(target=client, args=(address, phase, pool, batch, deadline, f"{name}{i}"))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 120)
    phase.elapsed = time.monotonic() - start
    phase.amount += warm.amount
    phase.other["warm-up confirmed"] = warm.confirmed
    return phase


# -- checking and reporting -----------------------------------------------------------------------
def check(url: str, phases: list[Phase]) -> str:
    """Every `matched` answer is one succeeded payment and one bank-clearing debit."""
    import psycopg

    confirmed = sum(p.confirmed + p.other.get("warm-up confirmed", 0) for p in phases)
    amount = sum(p.amount for p in phases)
    with psycopg.connect(psql_url(url)) as conn:
        succeeded = conn.execute("SELECT count(*) FROM payments WHERE status='succeeded'")
        clearing = conn.execute("SELECT balance FROM ledger_accounts WHERE code='bank_clearing'")
        unbalanced = conn.execute(
            "SELECT count(*) FROM (SELECT transaction_id FROM postings GROUP BY transaction_id "
            "HAVING sum(amount) <> 0) t"
        )
        counts = (succeeded.fetchone(), clearing.fetchone(), unbalanced.fetchone())
    got_succeeded = counts[0][0] if counts[0] else 0
    got_clearing = counts[1][0] if counts[1] else 0
    problems = []
    if got_succeeded != confirmed:
        problems.append(f"{got_succeeded} succeeded payments for {confirmed} confirmations")
    if got_clearing != amount:
        problems.append(f"bank clearing {got_clearing} != {amount} confirmed VND")
    if counts[2] and counts[2][0]:
        problems.append(f"{counts[2][0]} unbalanced journal transactions")
    return "; ".join(problems) or (
        f"OK: {confirmed} payments succeeded, bank clearing +{amount:,} VND, all balanced"
    )


def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = ""
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f", {kib / 1024 / 1024:.0f} GiB RAM"
    load = f"load average {os.getloadavg()[0]:.1f}"
    return f"{cpu}, {os.cpu_count()} cores{mem}, {platform.system()} {platform.release()}, {load}"


def pg_version(url: str) -> str:
    import psycopg

    with psycopg.connect(psql_url(url)) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        sync = conn.execute("SHOW synchronous_commit").fetchone()
    return f"PostgreSQL {row[0] if row else '?'} (synchronous_commit={sync[0] if sync else '?'})"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(pg_tps: float, phases: list[Phase], args: argparse.Namespace) -> str:
    out = io.StringIO()
    out.write("| workload | confirmed/s (tps) | ratio to pgbench | requests | p50 ms | p99 ms |\n")
    out.write("| --- | ---: | ---: | ---: | ---: | ---: |\n")
    out.write(f"| pgbench -b simple-update -c {args.clients} | {pg_tps:,.0f} | 1.00 | | | |\n")
    for phase in phases:
        p50 = statistics.median(phase.latencies) * 1000 if phase.latencies else 0.0
        p99 = percentile(phase.latencies, 0.99) * 1000
        out.write(
            f"| {phase.name} | {phase.tps:,.0f} | {phase.tps / pg_tps:.2f} | "
            f"{phase.requests:,} | {p50:.1f} | {p99:.1f} |\n"
        )
    return out.getvalue()


# -- main -----------------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument(
        "--batch",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[100, 500],
        help="notifications per batch request; several sizes comma-separated (100,500)",
    )
    parser.add_argument(
        "--pg",
        default=os.environ.get(
            "CASHLESS_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/postgres"
        ),
    )
    # Database 0: the test suite uses 1-15. The bench writes no keys (it enqueues no job).
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0", help="'' for none")
    parser.add_argument("--singles", type=int, default=60_000, help="payments for single posts")
    parser.add_argument("--batched", type=int, default=600_000, help="payments for batches")
    args = parser.parse_args(argv)
    if shutil.which("pgbench") is None:
        print("pgbench is not installed (apt-get install postgresql-client): nothing measured")
        return 0
    try:
        admin(args.pg, "SELECT 1")
    except Exception as exc:
        print(f"PostgreSQL is not reachable at {args.pg}: {exc}; nothing measured")
        return 0
    return run(args)


def run(args: argparse.Namespace) -> int:
    from cashless.cli import run_migrations

    suffix = f"{os.getpid()}_{secrets.token_hex(3)}"
    app_db, scratch = f"cashless_bench_{suffix}", f"cashless_pgbench_{suffix}"
    app_url = with_database(args.pg.replace("postgresql://", "postgresql+psycopg://"), app_db)
    redis_url = args.redis if args.redis and redis_available(args.redis) else None
    started = datetime.now(UTC)
    print(f"Machine: {machine()}; {pg_version(args.pg)}; Python {platform.python_version()}")
    try:
        for name in (app_db, scratch):
            admin(args.pg, f'CREATE DATABASE "{name}"')
        run_migrations(app_url)
        print(f"pgbench -b simple-update -c {args.clients} -T {args.seconds} …", flush=True)
        pg_tps = pgbench(with_database(args.pg, scratch), args.clients, args.seconds)
        admin(args.pg, f'DROP DATABASE "{scratch}"')
        phases = load(args, app_url, redis_url, suffix)
        results(args, started, pg_tps, phases, app_url)
        return 0
    finally:
        for name in (app_db, scratch):
            with contextlib.suppress(Exception):
                admin(
                    args.pg,
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    f"WHERE datname = '{name}'",
                )
                admin(args.pg, f'DROP DATABASE IF EXISTS "{name}"')


def load(args: argparse.Namespace, app_url: str, redis_url: str | None, suffix: str) -> list[Phase]:
    """Singles, then each batch size, against the service on the scratch database."""
    singles = Payments(seed_payments(app_url, args.singles))
    batched = Payments(seed_payments(app_url, args.batched))
    admin(app_url, "CHECKPOINT")
    log = Path(tempfile.gettempdir()) / f"bench-notifications-{suffix}.log"
    server = "cashless serve" if redis_url else "gunicorn wsgi:app"
    print(
        f"{server}: {args.workers} workers × {args.threads} threads (gthread), "
        f"REDIS_URL={'set' if redis_url else 'unset'}; {args.clients} clients × "
        f"{args.seconds} s; server log {log}",
        flush=True,
    )
    with service(app_url, redis_url, args.workers, args.threads, log) as address:
        phases = [
            run_phase("single notifications", address, singles, args.clients, args.seconds, 1)
        ]
        for size in args.batch:
            admin(app_url, "CHECKPOINT")
            name = f"batches of {size}"
            phases.append(run_phase(name, address, batched, args.clients, args.seconds, size))
    return phases


def results(
    args: argparse.Namespace, started: datetime, pg_tps: float, phases: list[Phase], url: str
) -> None:
    print()
    print(f"Run of {started:%Y-%m-%d %H:%M} UTC, {args.seconds} s per workload:")
    print()
    print(report(pg_tps, phases, args))
    for phase in phases:
        if phase.errors or len(phase.other) > 1:
            print(f"{phase.name}: other answers {phase.other}, errors {phase.errors[:3]}")
    print("Check:", check(url, phases))
    print(f"Load average (1 min) at the end: {os.getloadavg()[0]:.1f}")
    goal = max(p.tps for p in phases) / pg_tps
    print(f"Goal ≥ 0.30× pgbench: {'met' if goal >= 0.3 else 'MISSED'} (best {goal:.2f}×)")


if __name__ == "__main__":
    raise SystemExit(main())
