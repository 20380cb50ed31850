"""Faults with real processes (slow tier, `make test-slow`): Redis down and back, PostgreSQL
restarted under load. Each test runs its own Redis or PostgreSQL server on a spare port, so the
shared services of the machine are never disturbed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from tests.conftest import free_port, make_settings, need, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.slow]
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def _login(client: Any, username: str) -> dict[str, str]:
    token = client.post("/api/v1/auth/token", json={"username": username, "password": "demo"}).json[
        "access_token"
    ]
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def dead_redis_port() -> Iterator[int]:
    need("redis-server", shutil.which("redis-server") is not None, "redis-server is not on PATH")
    port = free_port()
    yield port
    subprocess.run(
        ["redis-cli", "-p", str(port), "shutdown", "nosave"], capture_output=True, check=False
    )


def test_redis_down_payments_still_work_and_jobs_catch_up(
    tmp_path: Path, template_instance: Path, pg_url: str, dead_redis_port: int, monkeypatch: Any
) -> None:
    from cashless import create_app
    from core import diagnostics, queue
    from tests.integration.conftest import WorkerProcess, truncate_all

    instance = tmp_path / "instance"
    shutil.copytree(template_instance, instance)
    (instance / "cashless.sqlite3").unlink()
    redis_url = f"redis://127.0.0.1:{dead_redis_port}/0"
    app = create_app(make_settings(instance, env={"DATABASE_URL": pg_url, "REDIS_URL": redis_url}))
    from cashless.demo import seed_demo

    with app.app_context():
        seed_demo(app)
    client = app.test_client()
    try:
        ready = client.get("/readyz")
        assert ready.status_code == 503 and ready.json["checks"]["redis"].startswith("error")
        assert ready.json["checks"]["database"] == "ok"
        commuter = _login(client, "commuter1")
        topup = client.post(
            "/api/v1/wallets/me/topups",
            json={"amount": 20000},
            headers={**commuter, "Idempotency-Key": "redis-down"},
        )
        assert topup.status_code == 201
        admin = _login(client, "admin1")
        ping = client.post(
            "/api/v1/system/pings", json={"message": "queued while down"}, headers=admin
        ).json
        svc = app.extensions["cashless"]
        with svc.db.reader() as session:
            assert session.get(queue.OutboxJob, f"ping:{ping['id']}").status == "pending"
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(dead_redis_port),
                "--bind",
                "127.0.0.1",
                "--daemonize",
                "yes",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(tmp_path),
            ],
            check=True,
        )
        wait_for(lambda: client.get("/readyz").status_code == 200, timeout=10)
        worker = WorkerProcess(instance, pg_url, redis_url)
        try:
            monkeypatch.setattr(queue, "UNSENT_GRACE", __import__("datetime").timedelta(0))
            assert svc.runner.sweep()["resent"] >= 1
            wait_for(
                lambda: diagnostics.get_ping(svc.db, ping["id"]).status == "answered", timeout=20
            )
        finally:
            worker.stop()
    finally:
        truncate_all(app.extensions["cashless"].db)
        app.extensions["cashless"].db.dispose()


class PrivatePostgres:
    """A throw-away PostgreSQL cluster (initdb) on a spare port, run as the postgres user."""

    def __init__(self, root: Path) -> None:
        self.port = free_port()
        self.data = root / "pgdata"
        root.mkdir(parents=True, exist_ok=True)
        shutil.chown(root, "postgres")
        self._as_postgres(
            [
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ]
        )
        self.ctl("start", "-w", "-o", f"-p {self.port} -k {root} -c fsync=off")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _as_postgres(self, args: list[str]) -> None:
        subprocess.run(
            ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(args)],
            check=True,
            capture_output=True,
        )

    def ctl(self, *args: str) -> None:
        quoted = [f"'{a}'" if " " in a else a for a in args]
        self._as_postgres(
            [
                str(PG_BIN / "pg_ctl"),
                "-D",
                str(self.data),
                "-l",
                str(self.data.parent / "pg.log"),
                *quoted,
            ]
        )


@pytest.fixture
def private_pg(tmp_path: Path) -> Iterator[PrivatePostgres]:
    need("PostgreSQL binaries", (PG_BIN / "initdb").exists(), f"{PG_BIN}/initdb is missing")
    root = Path("/tmp") / f"cashless-pg-{os.getpid()}-{free_port()}"
    server = PrivatePostgres(root)
    yield server
    server.ctl("stop", "-m", "immediate")
    shutil.rmtree(root, ignore_errors=True)


def test_postgres_restart_under_load_fails_cleanly_and_recovers(
    tmp_path: Path, template_instance: Path, private_pg: PrivatePostgres
) -> None:
    from cashless import create_app
    from cashless.cli import run_migrations
    from core.clock import utcnow
    from payments import bank

    run_migrations(private_pg.url)
    instance = tmp_path / "instance"
    shutil.copytree(template_instance, instance)
    (instance / "cashless.sqlite3").unlink()
    app = create_app(make_settings(instance, env={"DATABASE_URL": private_pg.url}))
    settings = app.extensions["cashless"].settings
    statuses: list[int] = []
    bodies: list[str] = []
    stop = threading.Event()
    lock = threading.Lock()

    def load(worker: int) -> None:
        client = app.test_client()
        sequence = 0
        while not stop.is_set():
            sequence += 1
            body = json.dumps(
                {
                    "transaction_id": f"FT-LOAD-{worker}-{sequence}",
                    "account_number": settings.collection_account,
                    "amount": 1000,
                    "credited_at": utcnow().isoformat(),
                    "description": "no reference",
                }
            ).encode()
            header = bank.sign(settings.bank_webhook_secret, body, int(time.time()))
            response = client.post(
                "/api/v1/bank/notifications",
                data=body,
                headers={"X-Signature": header, "Content-Type": "application/json"},
            )
            with lock:
                statuses.append(response.status_code)
                if response.status_code >= 500:
                    bodies.append(response.get_data(as_text=True))
            time.sleep(0.01)

    threads = [threading.Thread(target=load, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.5)
    private_pg.ctl(
        "restart",
        "-m",
        "fast",
        "-w",
        "-o",
        f"-p {private_pg.port} -k {private_pg.data.parent} -c fsync=off",
    )
    time.sleep(2.5)
    stop.set()
    for thread in threads:
        thread.join(20)
    print("statuses", {s: statuses.count(s) for s in set(statuses)})
    assert set(statuses) <= {200, 503}, set(statuses)
    assert all(json.loads(b)["code"] == "database_unavailable" for b in bodies)
    assert statuses[-1] == 200 or 200 in statuses[-8:]  # recovered after the restart
    engine = create_engine(private_pg.url)
    with engine.connect() as conn:
        notes = conn.execute(text("SELECT count(*) FROM bank_notifications")).scalar()
        txns = conn.execute(
            text(
                "SELECT count(*) FROM journal_transactions WHERE external_key LIKE 'bank:FT-LOAD-%'"
            )
        ).scalar()
        total = conn.execute(text("SELECT coalesce(sum(amount), 0) FROM postings")).scalar()
        unsealed = conn.execute(
            text(
                "SELECT count(*) FROM journal_transactions t LEFT JOIN journal_seals s "
                "ON s.transaction_id = t.id WHERE s.transaction_id IS NULL"
            )
        ).scalar()
    engine.dispose()
    assert notes == txns == statuses.count(200)  # every accepted credit posted, once
    assert total == 0 and unsealed == 0  # nothing half-written
    app.extensions["cashless"].db.dispose()
