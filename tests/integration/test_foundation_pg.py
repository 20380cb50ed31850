"""The foundation on the real PostgreSQL and Redis: migrations, idempotency races, the worker."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from core import idempotency
from core.errors import Conflict
from tests.conftest import PG_URL

pytestmark = pytest.mark.integration


def test_migration_round_trip(pg_url: str) -> None:
    """upgrade → downgrade to base → upgrade again, on a scratch database."""
    from alembic import command

    from cashless.cli import _alembic_config

    name = pg_url.rsplit("/", 1)[1] + "_rt"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    try:
        config = _alembic_config(url)
        command.upgrade(config, "heads")
        engine = create_engine(url)
        assert "users" in inspect(engine).get_table_names()
        command.downgrade(config, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        command.upgrade(config, "heads")
        assert "users" in inspect(engine).get_table_names()
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def test_concurrent_same_key_one_winner(pg_committed: Any) -> None:
    """Ten threads claim one Idempotency-Key at once: exactly one runs, the rest get 409."""
    db = pg_committed.extensions["cashless"].db
    barrier = threading.Barrier(10)
    outcomes: list[str] = []
    lock = threading.Lock()

    def claim() -> None:
        barrier.wait()
        try:
            result = idempotency.claim(db, "user:1", "race-key", "print")
            outcome = "run" if result is None else "replay"
        except Conflict:
            outcome = "409"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=claim) for _ in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["409"] * 9 + ["run"]


def test_concurrent_requests_same_key_over_http(pg_committed: Any) -> None:
    """Concurrent POSTs with one key: one ping is created; the others replay or get 409."""
    client = pg_committed.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "admin1", "password": "demo"}).json[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "http-race"}
    barrier = threading.Barrier(8)
    results: list[tuple[int, Any]] = []
    lock = threading.Lock()

    def post() -> None:
        local = pg_committed.test_client()
        barrier.wait()
        response = local.post("/api/v1/system/pings", headers=headers, json={"message": "race"})
        with lock:
            results.append((response.status_code, response.json))

    threads = [threading.Thread(target=post) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    created = {body["id"] for status, body in results if status == 202}
    assert len(created) == 1
    assert all(status in (202, 409) for status, _ in results)
    from core.diagnostics import Ping

    with pg_committed.extensions["cashless"].db.reader() as session:
        assert session.query(Ping).filter(Ping.message == "race").count() == 1


def test_job_enqueued_through_api_runs_in_worker_process(pg_redis_app: Any, worker: Any) -> None:
    client = pg_redis_app.test_client()
    token = client.post("/api/v1/auth/token", json={"username": "admin1", "password": "demo"}).json[
        "access_token"
    ]
    headers = {"Authorization": f"Bearer {token}"}
    ping = client.post("/api/v1/system/pings", headers=headers, json={"message": "to worker"}).json
    deadline = time.time() + 20
    body = ping
    while body["status"] != "answered" and time.time() < deadline:
        time.sleep(0.1)
        body = client.get(f"/api/v1/system/pings/{ping['id']}", headers=headers).json
    assert body["status"] == "answered", worker.log.read_text()[-2000:]
    # RQ runs each job in a forked work horse: answered by another process than this one.
    assert not body["answered_by"].endswith(f":{os.getpid()}")
    assert worker.proc.poll() is None


def test_sweeper_resends_what_redis_never_got(pg_redis_app: Any, worker: Any) -> None:
    """A job written while the queue was unreachable stays pending; the sweeper sends it."""
    from datetime import timedelta

    from core import diagnostics
    from core.queue import OutboxJob

    svc = pg_redis_app.extensions["cashless"]
    real_send = svc.runner.dispatcher.send

    def broken(*_args: Any) -> list[str]:
        raise ConnectionError("redis down")

    svc.runner.dispatcher.send = broken
    ping = diagnostics.create_ping(svc.db, "while redis was down")
    svc.runner.dispatcher.send = real_send
    with svc.db.transaction() as session:
        job = session.get(OutboxJob, f"ping:{ping.id}")
        assert job.status == "pending"
        job.created_at = job.created_at - timedelta(minutes=5)
    assert svc.runner.sweep()["resent"] == 1
    deadline = time.time() + 20
    while diagnostics.get_ping(svc.db, ping.id).status != "answered" and time.time() < deadline:
        time.sleep(0.1)
    assert diagnostics.get_ping(svc.db, ping.id).status == "answered"


def test_worker_killed_mid_job_runs_again_once(
    pg_redis_app: Any, worker: Any, monkeypatch: Any
) -> None:
    """kill -9 the worker mid-job: the sweeper notices the stopped heartbeat, a new worker runs
    the job again, and it takes effect exactly once."""
    from datetime import timedelta

    from core import diagnostics, queue
    from core.queue import OutboxJob
    from tests.integration.conftest import WorkerProcess

    svc = pg_redis_app.extensions["cashless"]
    ping = diagnostics.create_ping(svc.db, "long job", hold_seconds=6)
    job_id = f"ping:{ping.id}"

    def status() -> str:
        with svc.db.reader() as session:
            return str(session.get(OutboxJob, job_id).status)

    deadline = time.time() + 20
    while status() != "running" and time.time() < deadline:
        time.sleep(0.05)
    assert status() == "running"
    worker.kill()
    assert diagnostics.get_ping(svc.db, ping.id).status == "queued"
    monkeypatch.setattr(queue, "STALE_HEARTBEAT", timedelta(seconds=1))
    time.sleep(1.5)
    assert svc.runner.sweep()["restarted"] == 1
    replacement = WorkerProcess(
        svc.settings.instance_path, svc.settings.database_url, svc.settings.redis_url
    )
    try:
        deadline = time.time() + 30
        while diagnostics.get_ping(svc.db, ping.id).status != "answered" and time.time() < deadline:
            time.sleep(0.1)
        assert diagnostics.get_ping(svc.db, ping.id).status == "answered"
        deadline = time.time() + 10
        while status() != "done" and time.time() < deadline:
            time.sleep(0.05)
        with svc.db.reader() as session:
            job = session.get(OutboxJob, job_id)
            assert job.status == "done" and job.attempts >= 2
    finally:
        replacement.stop()
