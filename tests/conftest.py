"""Shared fixtures for every tier.

Services that a tier needs (PostgreSQL, Redis, Chromium) are checked once: on a laptop without
them the tier skips and says why; with CI=true a missing service fails the run instead.
"""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.config import load_settings

IN_CI = os.environ.get("CI", "").lower() == "true"
ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get("CASHLESS_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# A Redis database of its own per test session, so that two sessions on one machine (and the
# RQ workers they start) never take each other's jobs.
REDIS_URL = os.environ.get("CASHLESS_TEST_REDIS",
                           f"redis://127.0.0.1:6379/{1 + os.getpid() % 15}")


def need(service: str, available: bool, why: str) -> None:
    """Skip (laptop) or fail (CI) when a service a test needs is missing."""
    if available:
        return
    message = f"{service} is not available: {why}"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def make_settings(instance: Path, **overrides: Any) -> Any:
    env = {"CASHLESS_INSTANCE_PATH": str(instance), "CASHLESS_DEMO": "1", "CASHLESS_SANDBOX": "1"}
    env.update(overrides.pop("env", {}))
    overrides.setdefault("testing", True)
    overrides.setdefault("login_rate_limit", "10000 per minute")
    return load_settings(env, **overrides)


@pytest.fixture(scope="session")
def template_instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite instance with demo data, made once and copied for each test."""
    from cashless import create_app
    from cashless.cli import run_migrations
    from cashless.demo import seed_demo

    instance = tmp_path_factory.mktemp("template-instance")
    settings = make_settings(instance)
    run_migrations(settings.database_url)
    app = create_app(settings)
    with app.app_context():
        seed_demo(app)
    app.extensions["cashless"].db.dispose()
    return instance


@pytest.fixture
def app(template_instance: Path, tmp_path: Path) -> Iterator[Flask]:
    """An app on its own copy of the embedded SQLite database (demo users included)."""
    from cashless import create_app

    instance = tmp_path / "instance"
    shutil.copytree(template_instance, instance)
    application = create_app(make_settings(instance))
    yield application
    application.extensions["cashless"].runner.dispatcher.stop()
    application.extensions["cashless"].db.dispose()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def login(client: FlaskClient, username: str, password: str = "demo") -> dict[str, str]:
    response = client.post("/api/v1/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.get_data(as_text=True)
    return {"Authorization": f"Bearer {response.json['access_token']}"}


@pytest.fixture
def auth(client: FlaskClient) -> Any:
    """`auth("vendor1")` → headers with a bearer token for that demo user."""
    cache: dict[str, dict[str, str]] = {}

    def _auth(username: str) -> dict[str, str]:
        if username not in cache:
            cache[username] = login(client, username)
        return dict(cache[username])

    return _auth


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThreadedServer:
    """The app served over real HTTP from a thread (the bank simulator calls our webhook)."""

    def __init__(self, flask_app: Flask, port: int) -> None:
        import threading

        from werkzeug.serving import make_server

        self.url = f"http://127.0.0.1:{port}"
        self.server = make_server("127.0.0.1", port, flask_app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()


@pytest.fixture
def live_app(template_instance: Path, tmp_path: Path) -> Iterator[Flask]:
    """Like `app`, but also listening on HTTP, with CASHLESS_PUBLIC_URL pointing at it."""
    from cashless import create_app

    instance = tmp_path / "instance"
    shutil.copytree(template_instance, instance)
    port = free_port()
    application = create_app(make_settings(instance, public_url=f"http://127.0.0.1:{port}"))
    server = ThreadedServer(application, port)
    yield application
    server.stop()
    application.extensions["cashless"].runner.dispatcher.stop()
    application.extensions["cashless"].db.dispose()


def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.02) -> Any:
    """Poll until `predicate()` is truthy; return its value or fail after `timeout` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)
