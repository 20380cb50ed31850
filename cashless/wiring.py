"""The `register_*` steps of create_app: services, API blueprints, pages, handlers, schedules."""

from __future__ import annotations

from pathlib import Path

import swagger_ui_bundle
from flask import Flask, send_from_directory
from flask_smorest import Api

from core import queue as jobs
from core.config import Settings
from core.db import Database
from core.events import InProcessBus, LiveBus, RedisBus, make_live_hook
from core.http import (
    ProblemSchema,
    Services,
    configure_logging,
    install_request_ids,
    register_error_handlers,
)
from core.i18n import init_i18n
from core.keys import KeyRing
from core.ratelimit import limiter

HERE = Path(__file__).parent


def register_services(app: Flask, settings: Settings) -> None:
    """Bind the database, key ring, job runner and live bus to this app (one per process)."""
    configure_logging(settings.log_level)
    db = Database(settings.database_url)
    bus: LiveBus = RedisBus(settings.redis_url) if settings.redis_url else InProcessBus()
    db.after_commit_hooks.append(make_live_hook(bus))
    dispatcher = jobs.RQDispatcher(settings.redis_url) if settings.redis_url else None
    runner = jobs.JobRunner(db, dispatcher, settings)
    from cashless.schedules import all_schedules

    jobs.set_schedule_provider(all_schedules)
    for schedule in all_schedules():
        runner.add_schedule(schedule)
    jobs.set_runner(runner)
    app.extensions["cashless"] = Services(
        settings=settings,
        db=db,
        keyring=KeyRing(db, settings.key_encryption_key),
        runner=runner,
        bus=bus,
        extra={},
    )
    install_request_ids(app)
    init_i18n(app, HERE / "translations", settings.instance_path)
    limiter.init_app(app)


def register_api(app: Flask) -> None:
    """flask-smorest Api with every domain's blueprint; then our one error mapping."""
    api = Api(
        app,
        spec_kwargs={
            "info": {
                "description": "Hanoi Cashless: payments, transit "
                "ticketing, markets, parking, fees and "
                "reconciliation."
            }
        },
    )
    api.ERROR_SCHEMA = ProblemSchema
    api.spec.components.security_scheme(
        "bearer", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    from cashless import auth_api, system_api
    from merchants.api import blp as merchants_blp
    from payments.api import blp as payments_blp
    from reconciliation.api import blp as reconciliation_blp
    from ticketing.api import blp as ticketing_blp

    for blueprint in (
        system_api.blp,
        auth_api.blp,
        auth_api.well_known,
        payments_blp,
        ticketing_blp,
        merchants_blp,
        reconciliation_blp,
    ):
        api.register_blueprint(blueprint)
    assets = Path(swagger_ui_bundle.swagger_ui_path)

    @app.get("/api/docs/assets/<path:name>")
    def swagger_assets(name: str):  # type: ignore[no-untyped-def]
        return send_from_directory(assets, name)

    app.extensions["cashless_api"] = api
    register_error_handlers(app)


def register_pages(app: Flask) -> None:
    """Server-rendered pages of every package (left out of the OpenAPI document)."""
    from cashless.pages import bp as cashless_pages
    from core.auth import csrf_token

    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(cashless_pages)


def register_domain_handlers() -> None:
    """Tell payments' handler registry what each domain does when a payment changes."""
    from core.events import handlers

    handlers.clear()
