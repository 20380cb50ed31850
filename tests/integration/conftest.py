"""PostgreSQL and Redis fixtures: a database created per run, migrated with Alembic.

`pg_db` runs each test inside a transaction rolled back at the end (every service transaction
becomes a savepoint). Tests that need other threads or processes to see their data use
`pg_committed`, which commits for real and truncates every table afterwards.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import PG_URL, REDIS_URL, ROOT, make_settings, need, port_open

pytestmark = pytest.mark.integration


def _pg_available() -> bool:
    url = make_url(PG_URL)
    return port_open(url.host or "127.0.0.1", url.port or 5432)


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this run, migrated to head; dropped at the end."""
    need("PostgreSQL", _pg_available(), f"nothing listens at {make_url(PG_URL).host}:5432")
    from cashless.cli import run_migrations

    name = f"cashless_test_{os.getpid()}_{secrets.token_hex(3)}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    run_migrations(url)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def redis_url() -> str:
    need("Redis", port_open("127.0.0.1", 6379), "nothing listens at 127.0.0.1:6379")
    from redis import Redis

    Redis.from_url(REDIS_URL).flushdb()
    return REDIS_URL


def _pg_app(tmp_path: Path, template_instance: Path, pg_url: str, **extra: Any) -> Any:
    import shutil

    from cashless import create_app

    instance = tmp_path / "instance"
    if not instance.exists():
        shutil.copytree(template_instance, instance)
        (instance / "cashless.sqlite3").unlink()
    env = {"DATABASE_URL": pg_url, **extra.pop("env", {})}
    return create_app(make_settings(instance, env=env, **extra))


@pytest.fixture
def pg_app(tmp_path: Path, template_instance: Path, pg_url: str) -> Iterator[Any]:
    """An app on PostgreSQL whose every write is rolled back after the test."""
    app = _pg_app(tmp_path, template_instance, pg_url)
    db = app.extensions["cashless"].db
    connection = db.engine.connect()
    outer = connection.begin()
    db.bind_to_connection(connection)
    _seed(app)
    yield app
    outer.rollback()
    connection.close()
    app.extensions["cashless"].runner.dispatcher.stop()
    db.dispose()


def _seed(app: Any) -> None:
    from cashless.demo import seed_demo

    with app.app_context():
        seed_demo(app)


def truncate_all(db: Any) -> None:
    from cashless.models import metadata

    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with db.engine.begin() as conn:
        conn.execute(text("SET session_replication_role = replica"))
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(text("SET session_replication_role = DEFAULT"))


@pytest.fixture
def pg_committed(tmp_path: Path, template_instance: Path, pg_url: str) -> Iterator[Any]:
    """An app on PostgreSQL that commits for real (threads, workers); truncated afterwards."""
    app = _pg_app(tmp_path, template_instance, pg_url)
    _seed(app)
    yield app
    app.extensions["cashless"].runner.dispatcher.stop()
    truncate_all(app.extensions["cashless"].db)
    app.extensions["cashless"].db.dispose()


@pytest.fixture
def pg_redis_app(
    tmp_path: Path, template_instance: Path, pg_url: str, redis_url: str
) -> Iterator[Any]:
    """An app on PostgreSQL with jobs going to Redis/RQ (committed; truncated afterwards)."""
    app = _pg_app(tmp_path, template_instance, pg_url, env={"REDIS_URL": redis_url})
    _seed(app)
    yield app
    truncate_all(app.extensions["cashless"].db)
    app.extensions["cashless"].db.dispose()


class WorkerProcess:
    """A real `cashless worker` process for the duration of a test."""

    def __init__(self, instance: Path, pg_url: str, redis_url: str) -> None:
        env = {
            **os.environ,
            "DATABASE_URL": pg_url,
            "REDIS_URL": redis_url,
            "CASHLESS_INSTANCE_PATH": str(instance),
            "PYTHONPATH": str(ROOT),
        }
        self.redis_url = redis_url
        self.log = instance / "worker.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "cashless.cli", "worker"],
            env=env,
            cwd=ROOT,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: RQ's scheduler child goes with it
        )

    def kill(self) -> None:
        """SIGKILL the worker and what it started in its group (RQ's scheduler process); a
        work horse RQ moved to a group of its own lives on, as after a real crash."""
        self._kill_group()
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()  # nothing of it may outlive the test
        self.proc.wait(10)
        # A SIGKILLed worker keeps RQ's scheduler lock until it times out (~60 s): the next
        # test's worker would run no scheduled job (enqueue_in) until then.
        connection = Redis.from_url(self.redis_url)
        stale = list(connection.scan_iter("rq:scheduler-lock:*"))
        if stale:
            connection.delete(*stale)
        connection.close()

    def _kill_group(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@pytest.fixture
def worker(pg_redis_app: Any, pg_url: str, redis_url: str) -> Iterator[WorkerProcess]:
    proc = WorkerProcess(
        pg_redis_app.extensions["cashless"].settings.instance_path, pg_url, redis_url
    )
    time.sleep(0.2)
    yield proc
    proc.stop()
