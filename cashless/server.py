"""`cashless serve`: prepare once in the master (secrets, migrations, demo data), then gunicorn.

Secrets are generated before any worker forks, so every worker reads the same ones. On the
embedded default there is one worker process (the in-process job pool and scheduler live in
it) with many threads for the live streams.
"""

from __future__ import annotations

from typing import Any

import click
from gunicorn.app.base import BaseApplication

from core.config import load_settings


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        from cashless import create_app

        return create_app()


def _post_worker_init(worker: Any) -> None:
    """Start the in-process scheduler in the (single) worker on the embedded default."""
    from core.queue import get_runner

    get_runner().dispatcher.start()


def serve(host: str, port: int, workers: int | None, threads: int) -> None:
    from cashless.cli import run_migrations

    settings = load_settings()
    run_migrations(settings.database_url)
    if settings.demo:
        from cashless import create_app
        from cashless.demo import print_credentials, seed_demo

        app = create_app(settings)
        with app.app_context():
            print_credentials(seed_demo(app))
    if workers is None:
        workers = 1 if not settings.redis_url else 2
    if not settings.redis_url and workers != 1:
        raise click.ClickException("without REDIS_URL jobs run in-process: use one worker")
    click.echo(f"Hanoi Cashless on http://{host}:{port}/  (API docs: /api/docs)")
    _Gunicorn(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "timeout": 120,
            "graceful_timeout": 5,
            "accesslog": None,
            "post_worker_init": _post_worker_init,
        }
    ).run()
