"""The `cashless` command: serve, worker, cron, migrate, seed-demo, users, keys, gate."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import click

from core.config import load_settings

ROOT = Path(__file__).resolve().parent.parent


@click.group()
def main() -> None:
    """Hanoi Cashless: payments and transit ticketing."""


def _alembic_config(database_url: str) -> Any:
    from alembic.config import Config

    config = Config(str(ROOT / "migrations" / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def run_migrations(database_url: str, revision: str = "heads") -> None:
    """Upgrade the database to `revision` (the same migrations on PostgreSQL and SQLite)."""
    from alembic import command

    command.upgrade(_alembic_config(database_url), revision)


@main.command()
@click.option("--revision", default="heads", show_default=True)
@click.option("--downgrade", is_flag=True, help="Downgrade to REVISION instead.")
def migrate(revision: str, downgrade: bool) -> None:
    """Apply the Alembic migrations to DATABASE_URL (or the embedded SQLite file)."""
    from alembic import command

    settings = load_settings()
    if downgrade:
        command.downgrade(_alembic_config(settings.database_url), revision)
    else:
        run_migrations(settings.database_url, revision)
    click.echo(f"database at {revision}: {_redact(settings.database_url)}")


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.command("seed-demo")
def seed_demo_command() -> None:
    """Create the demo users and data (idempotent) and print the credentials."""
    from cashless import create_app
    from cashless.demo import print_credentials, seed_demo

    app = create_app()
    with app.app_context():
        credentials = seed_demo(app)
    print_credentials(credentials)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@click.option(
    "--workers",
    default=None,
    type=int,
    help="gunicorn worker processes (1 on the embedded default).",
)
@click.option("--threads", default=32, show_default=True, type=int)
def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    """Migrate, seed demo data when CASHLESS_DEMO=1, and serve with gunicorn."""
    from cashless.server import serve as run_server

    run_server(host, port, workers, threads)


# What the jobs import when they run (payments.jobs imports payments.webhooks inside the job,
# and so on). RQ forks a fresh work horse for every job: without these imported, and every
# mapper configured, in the worker before it forks, each horse imported the models and
# configured SQLAlchemy again, ~0.6 s of a webhook delivery that otherwise takes milliseconds
# (bench/bench_load_mixed.py found the webhook queue falling behind at 15 payments a second).
JOB_MODULES = (
    "core.diagnostics",
    "core.idempotency",
    "payments.jobs",
    "payments.service",
    "payments.simulator",
    "payments.webhooks",
    "merchants.jobs",
    "merchants.payouts",
    "reconciliation.jobs",
    "reconciliation.errors",
    "reconciliation.service",
)


def preload_job_modules() -> None:
    """Import every module a job needs and configure the ORM once, in the worker's parent
    process; work horses inherit both. Opens no connection (a forked socket is shared).

    Also registers the domains' payment handlers, as `cashless serve` does: a job that
    changes a payment (today only the expiry job publishes, and nothing listens to
    `payment.expired`) must run the same handlers as a request, not silently none.
    """
    import importlib

    from sqlalchemy.orm import configure_mappers

    from cashless.wiring import register_domain_handlers

    for name in JOB_MODULES:
        importlib.import_module(name)
    register_domain_handlers()
    configure_mappers()


@main.command()
@click.option("--queues", default="high,default,low", show_default=True)
@click.option("--burst", is_flag=True, help="Stop when the queues are empty.")
def worker(queues: str, burst: bool) -> None:
    """An RQ worker for our queues (needs REDIS_URL; builds no Flask app)."""
    from redis import Redis
    from rq import Worker

    from cashless.schedules import all_schedules
    from core.queue import WorkerSerializer, get_runner, set_schedule_provider

    settings = load_settings()
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: jobs run inside `cashless serve`")
    set_schedule_provider(all_schedules)
    get_runner()
    preload_job_modules()
    connection = Redis.from_url(settings.redis_url)
    names = [q.strip() for q in queues.split(",") if q.strip()]
    Worker(names, connection=connection, serializer=WorkerSerializer).work(
        burst=burst, with_scheduler=True
    )


@main.command()
def cron() -> None:
    """Run `rq cron cashless.cron` with TZ=Asia/Ho_Chi_Minh (exactly one per deployment)."""
    settings = load_settings()
    if not settings.redis_url:
        raise click.ClickException("REDIS_URL is not set: schedules run inside `cashless serve`")
    os.environ["TZ"] = "Asia/Ho_Chi_Minh"
    os.execvp(  # noqa: S606 - replaces this process with rq's own CLI
        sys.executable,
        [
            sys.executable,
            "-m",
            "rq.cli",
            "cron",
            "--url",
            settings.redis_url,
            str(ROOT / "cashless" / "cron.py"),
        ],
    )


@main.group()
def keys() -> None:
    """Signing keys: rotate, retire, export."""


PURPOSES = click.Choice(["token", "ticket", "bundle", "report"])


def _keyring() -> Any:
    from core.db import Database
    from core.keys import KeyRing

    settings = load_settings()
    return Database(settings.database_url), KeyRing(
        Database(settings.database_url), settings.key_encryption_key
    )


@keys.command("rotate")
@click.option("--purpose", type=PURPOSES, required=True)
def keys_rotate(purpose: str) -> None:
    """Add a new current key; the old one keeps verifying until retired."""
    from core.keys import Purpose, rotate

    db, ring = _keyring()
    kid = rotate(db, ring, Purpose(purpose), actor="cli")
    click.echo(json.dumps({"purpose": purpose, "kid": kid, "status": "current"}))


@keys.command("retire")
@click.option("--purpose", type=PURPOSES, required=True)
@click.option("--kid", type=int, required=True)
def keys_retire(purpose: str, kid: int) -> None:
    """Stop a previous key from verifying."""
    from core.keys import Purpose, retire

    db, ring = _keyring()
    retire(db, ring, Purpose(purpose), kid, actor="cli")
    click.echo(json.dumps({"purpose": purpose, "kid": kid, "status": "retired"}))


@keys.command("export")
@click.option("--purpose", type=PURPOSES, required=True)
def keys_export(purpose: str) -> None:
    """Print the public JWKS of a purpose (a gate gets the bundle key this way)."""
    from core.keys import Purpose, jwks

    _db, ring = _keyring()
    click.echo(json.dumps(jwks(ring, Purpose(purpose)), indent=2))


@main.command("authz-table")
def authz_table() -> None:
    """Print the role table of every API operation (docs/AUTHORIZATION.md)."""
    from cashless import create_app
    from cashless.authz import markdown

    click.echo(markdown(create_app()), nl=False)


@main.group()
def gate() -> None:
    """The offline reference gate validator."""


def _mount_gate_commands() -> None:
    try:
        from ticketing.gate_cli import gate_validate
    except ImportError:  # pragma: no cover - ticketing not built yet
        return
    gate.add_command(gate_validate, "validate")


_mount_gate_commands()


if __name__ == "__main__":  # `python -m cashless.cli` (tests start workers this way)
    main()
