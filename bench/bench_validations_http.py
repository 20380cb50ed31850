"""`POST /api/v1/validations` under load (gunicorn, PostgreSQL) next to `/healthz` of the same app.

    .venv/bin/python bench/bench_validations_http.py [--requests 3000] [--concurrency 8]
        [--workers 2] [--threads 8] [--tickets 1000] [--validators 20] [--pg URL]

Creates a scratch PostgreSQL database (dropped at the end), migrates and seeds it, issues
`--tickets` metro monthly passes (to a commuter with a verified free concession, so setup moves no
money) and registers `--validators` metro gates, each with its own device account and API key, as
real gates have. Then it starts gunicorn on 127.0.0.1 only and drives both endpoints with the same
closed-loop client (`--concurrency` processes, keep-alive). Every validation is a distinct
(ticket, gate) pair with a fresh device signature, so each one does the full work: API-key lookup,
Base45, two ECDSA verifies, revocation, product and state queries, the tap insert under its unique
constraints and the impossible-journey query. Bounded: a fixed number of requests, loopback only.
Prints a table and writes bench/out/validations_http.json.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PG = os.environ.get(
    "CASHLESS_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
METRO_MONTHLY = 320


@contextmanager
def scratch_database(admin_url: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"cashless_bench_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": name},
            )
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def prepare(env: dict[str, str], tickets: int, validators: int) -> dict[str, Any]:
    """Seed the demo, then the bench's gates and tickets through the service layer."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from sqlalchemy import select

    from cashless import create_app
    from cashless.cli import run_migrations
    from cashless.demo import seed_demo
    from core import users
    from core.config import load_settings
    from ticketing import catalogue, service
    from ticketing.credential import compress_public_key
    from ticketing.issuing import Issuer

    settings = load_settings(env)
    run_migrations(settings.database_url)
    app = create_app(settings)
    with app.app_context():
        seed_demo(app)
    svc = app.extensions["cashless"]
    gates = []
    with svc.db.transaction() as session:
        for i in range(validators):
            user = users.add_user(session, f"bench-gate-{i}", "bench", ["validator"])
            gates.append((f"bench-metro-{i}", users.issue_api_key(session, user.id, "bench")))
        commuter = session.scalars(
            select(users.User).where(users.User.username == "commuter1")
        ).one()
    for validator_id, api_key in gates:
        _add_gate(svc.db, validator_id, api_key)
    catalogue.set_concession(
        svc.db, "bench", commuter.id, category_code="elderly_60", valid_until=None, note="bench"
    )
    phone = ec.generate_private_key(ec.SECP256R1())
    device, _ = service.register_device(
        svc.db, commuter.id, compress_public_key(phone.public_key())
    )
    issuer = Issuer(svc.keyring, settings.holder_ref_secret.encode())
    credentials = []
    for _ in range(tickets):
        view = service.purchase_ticket(
            svc.db, issuer, user_id=commuter.id, fare_product_id=METRO_MONTHLY, device_id=device.id
        )
        credentials.append(view.credential)
    svc.db.dispose()
    pem = phone.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return {"gates": gates, "credentials": credentials, "phone_pem": pem}


def _add_gate(db: Any, validator_id: str, api_key: str) -> None:
    """A metro gate linked to the device account that owns `api_key`."""
    from sqlalchemy import select

    from core import users
    from ticketing import catalogue

    prefix = api_key.split("_")[1]
    with db.reader() as session:
        user_id = session.scalars(
            select(users.ApiKey.user_id).where(users.ApiKey.prefix == prefix)
        ).one()
    # All gates of one station: same place, so no journey between them is impossible.
    catalogue.create_validator(
        db,
        "bench",
        {
            "id": validator_id,
            "mode": "metro",
            "station": "CAT_LINH",
            "user_id": user_id,
            "lat": 21.0288,
            "lon": 105.8270,
        },
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def gunicorn(
    env: dict[str, str], workers: int, threads: int, log_level: str = "WARNING"
) -> Iterator[str]:
    """gunicorn (gthread) on a free loopback port; `log_level` is the app's (INFO logs every
    request, as in production). Its output goes to gunicorn.log in the instance folder."""
    port = free_port()
    log = Path(env["CASHLESS_INSTANCE_PATH"]) / "gunicorn.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread",
         "--threads", str(threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning",
         "wsgi:app"],
        cwd=ROOT,
        env={**os.environ, **env, "PYTHONPATH": str(ROOT), "CASHLESS_LOG_LEVEL": log_level},
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while True:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError(
                        "gunicorn did not start:\n" + log.read_text()[-2000:]
                    ) from None
                time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()


# -- the load generator --------------------------------------------------------------------------
def _client(job: tuple[str, str, str, list[tuple[dict[str, str], Any]]]) -> dict[str, Any]:
    import requests

    base, method, path, items = job
    session = requests.Session()
    latencies, statuses, reasons = [], Counter(), Counter()
    for headers, body in items:
        start = time.perf_counter()
        response = session.request(method, base + path, json=body, headers=headers, timeout=30)
        latencies.append(time.perf_counter() - start)
        statuses[response.status_code] += 1
        if body is not None and response.status_code == 200:
            answer = response.json()
            reasons[f"{answer['decision']}:{answer['reason']}"] += 1
    return {"latencies": latencies, "statuses": statuses, "reasons": reasons}


def drive(
    pool: Any, base: str, method: str, path: str, items: list[Any], concurrency: int
) -> dict[str, Any]:
    chunks = [(base, method, path, items[i::concurrency]) for i in range(concurrency)]
    started = time.perf_counter()
    parts = pool.map(_client, chunks)
    elapsed = time.perf_counter() - started
    latencies = sorted(x for part in parts for x in part["latencies"])
    cuts = statistics.quantiles(latencies, n=100)
    return {
        "requests": len(latencies),
        "seconds": round(elapsed, 3),
        "rps": round(len(latencies) / elapsed, 1),
        "p50_ms": round(cuts[49] * 1000, 2),
        "p99_ms": round(cuts[98] * 1000, 2),
        "statuses": dict(sum((Counter(p["statuses"]) for p in parts), Counter())),
        "decisions": dict(sum((Counter(p["reasons"]) for p in parts), Counter())),
    }


def validation_items(data: dict[str, Any], count: int) -> list[tuple[dict[str, str], Any]]:
    """Distinct (ticket, gate) pairs, each QR freshly signed for the current step."""
    import base64

    from cryptography.hazmat.primitives import serialization

    from ticketing.credential import make_dynamic_qr, step_at

    phone = serialization.load_pem_private_key(data["phone_pem"].encode(), None)
    step = step_at(int(time.time()))
    tickets, gates = data["credentials"], data["gates"]
    if count > len(tickets) * len(gates):
        raise SystemExit("more requests than (ticket, gate) pairs: raise --tickets")
    items = []
    for i in range(count):
        credential = base64.b64decode(tickets[i % len(tickets)])
        validator_id, api_key = gates[(i // len(tickets)) % len(gates)]
        body = {
            "qr_text": make_dynamic_qr(credential, phone, step),  # type: ignore[arg-type]
            "validator_id": validator_id,
            "validator_seq": i,
            "mode": "metro",
        }
        items.append(({"Authorization": f"Bearer {api_key}"}, body))
    return items


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--tickets", type=int, default=1000)
    parser.add_argument("--validators", type=int, default=20)
    parser.add_argument("--pg", default=DEFAULT_PG, help="an admin URL of a PostgreSQL server")
    args = parser.parse_args()
    with scratch_database(args.pg) as url, tempfile.TemporaryDirectory() as instance:
        env = {"DATABASE_URL": url, "CASHLESS_INSTANCE_PATH": instance, "CASHLESS_DEMO": "1"}
        print(f"setup: {args.tickets} tickets, {args.validators} gates …", flush=True)
        data = prepare(env, args.tickets, args.validators)
        with (
            gunicorn(env, args.workers, args.threads) as base,
            multiprocessing.Pool(args.concurrency) as pool,
        ):
            drive(pool, base, "GET", "/healthz", [({}, None)] * 200, args.concurrency)  # warm-up
            health = drive(
                pool, base, "GET", "/healthz", [({}, None)] * args.requests, args.concurrency
            )
            items = validation_items(data, args.requests)
            validations = drive(pool, base, "POST", "/api/v1/validations", items, args.concurrency)
    report(args, health, validations)
    return 0 if set(validations["statuses"]) == {200} else 1


def report(args: argparse.Namespace, health: dict[str, Any], validations: dict[str, Any]) -> None:
    result = {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpus": os.cpu_count(),
        "gunicorn": {"workers": args.workers, "threads": args.threads},
        "concurrency": args.concurrency,
        "healthz": health,
        "validations": validations,
    }
    print(f"{'endpoint':<24}{'requests':>9}{'rps':>9}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for name, row in (("GET /healthz", health), ("POST /validations", validations)):
        print(
            f"{name:<24}{row['requests']:>9}{row['rps']:>9}{row['p50_ms']:>9}{row['p99_ms']:>9}"
            f"  {row['statuses']}"
        )
    print(f"decisions: {validations['decisions']}")
    out = ROOT / "bench" / "out"
    out.mkdir(exist_ok=True)
    (out / "validations_http.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
