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
    from merchants.parking_api import blp as parking_blp
    from payments.api import blp as payments_blp
    from payments.fees.api import blp as fees_blp
    from reconciliation.api import blp as reconciliation_blp
    from ticketing.api import blp as ticketing_blp
    from ticketing.api import well_known as ticketing_well_known

    for blueprint in (
        system_api.blp,
        auth_api.blp,
        auth_api.well_known,
        payments_blp,
        fees_blp,
        ticketing_blp,
        ticketing_well_known,
        merchants_blp,
        parking_blp,
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
    from merchants.pages import bp as merchants_pages
    from payments.fees.pages import bp as fees_pages
    from reconciliation.pages import bp as reconciliation_pages
    from ticketing.pages import bp as ticketing_pages

    app.jinja_env.globals["csrf_token"] = csrf_token
    app.register_blueprint(cashless_pages)
    app.register_blueprint(fees_pages)
    app.register_blueprint(ticketing_pages)
    app.register_blueprint(merchants_pages)
    app.register_blueprint(reconciliation_pages)


def register_domain_handlers() -> None:
    """Tell payments' handler registry what each domain does when a payment changes."""
    from core.events import handlers

    handlers.clear()
    from payments.fees.service import on_payment_succeeded as fees_on_payment_succeeded

    handlers.register("payment.succeeded", fees_on_payment_succeeded)
    from ticketing.service import on_payment_refunded as ticketing_on_payment_refunded

    handlers.register("payment.refunded", ticketing_on_payment_refunded)
    _register_merchants()


def _register_merchants() -> None:
    """Parking closes a session when its exit payment succeeds; payments asks merchants
    whether a user staffs a merchant. The check reads the database of the app serving the
    request (looked up per call, so several apps in one process never share one)."""
    from flask import has_app_context

    from core import access
    from core.events import handlers
    from core.http import services
    from merchants import parking
    from merchants.service import is_staff

    handlers.register("payment.succeeded", parking.on_payment_succeeded)
    access.register(
        "merchant_staff",
        # Outside a request there is no app to ask: fail closed.
        lambda user_id, merchant_id: has_app_context()
        and is_staff(services().db, user_id, merchant_id),
    )
