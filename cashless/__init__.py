"""The application: `create_app`, the `cashless` command and demo seeding.

This is the only package that knows every domain: it registers their blueprints, their
payment-event handlers and their schedules. Everything else is handed what it needs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.routing import IntegerConverter

from core.config import Settings, load_settings

HERE = Path(__file__).parent


def create_app(settings: Settings | None = None, **overrides: Any) -> Flask:
    """Build a configured app. Settings come from the environment unless given."""
    settings = settings or load_settings()
    if overrides:
        settings = settings.with_overrides(**overrides)
    app = Flask(__name__, instance_path=str(settings.instance_path), instance_relative_config=False)
    configure_flask(app, settings)
    app.url_map.converters["int"] = BoundedIntConverter
    from cashless.wiring import (
        register_api,
        register_domain_handlers,
        register_pages,
        register_services,
    )

    register_services(app, settings)
    register_api(app)
    register_pages(app)
    register_domain_handlers()
    return app


class BoundedIntConverter(IntegerConverter):
    """`<int:id>` up to 2^63 - 1: a larger id cannot exist, so it is a 404, not a database
    overflow."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("max", 2**63 - 1)
        super().__init__(map, *args, **kwargs)


def configure_flask(app: Flask, settings: Settings) -> None:
    app.config.update(
        SECRET_KEY=settings.secret_key,
        TESTING=settings.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="cashless_session",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=12),
        MAX_CONTENT_LENGTH=256 * 1024 * 1024,
        JSON_SORT_KEYS=False,
        API_TITLE="Hanoi Cashless API",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="api/docs",
        OPENAPI_SWAGGER_UI_URL="/api/docs/assets/",
        RATELIMIT_STORAGE_URI=settings.redis_url or "memory://",
        RATELIMIT_HEADERS_ENABLED=True,
        # Redis down must not take logins down: fall back to per-process counters meanwhile.
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        RATELIMIT_ENABLED=not settings.extra.get("disable_rate_limits", False),
    )
