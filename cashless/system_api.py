"""Health, readiness and the diagnostic ping (the API → worker path)."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView
from flask_smorest import Blueprint
from sqlalchemy import text

from cashless.schemas import HealthSchema, PingCreateSchema, PingSchema
from core import diagnostics
from core.auth import require
from core.clock import utcnow
from core.http import idempotent, services

blp = Blueprint("system", __name__, url_prefix="/", description="Health and diagnostics")


@blp.route("/healthz")
@blp.response(200, HealthSchema)
def healthz() -> dict[str, Any]:
    """Alive: the process answers."""
    return {"status": "ok", "checks": {}, "server_time": utcnow()}


def _check_database() -> str:
    try:
        with services().db.reader() as session:
            session.execute(text("SELECT 1"))
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


def _check_redis() -> str:
    url = services().settings.redis_url
    if not url:
        return "not configured (jobs run in-process)"
    try:
        from redis import Redis

        Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1).ping()
        return "ok"
    except Exception as exc:
        return f"error: {type(exc).__name__}"


@blp.route("/readyz")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="a dependency is down")
def readyz() -> tuple[dict[str, Any], int]:
    """Ready: the database (and Redis, when configured) answer."""
    checks = {"database": _check_database(), "redis": _check_redis()}
    ok = all(not value.startswith("error") for value in checks.values())
    return {
        "status": "ok" if ok else "degraded",
        "checks": checks,
        "server_time": utcnow(),
    }, 200 if ok else 503


@blp.route("/api/v1/system/pings")
class Pings(MethodView):
    @idempotent(required=False)
    @blp.response(202, PingSchema)
    @require("admin", "finance")
    @blp.arguments(PingCreateSchema)
    def post(self, body: dict[str, Any]) -> diagnostics.Ping:
        """Enqueue a ping job; the worker answers it (proves API → queue → worker)."""
        return diagnostics.create_ping(services().db, body["message"], body["hold_seconds"])


@blp.route("/api/v1/system/pings/<int:ping_id>")
@blp.response(200, PingSchema)
@require("admin", "finance")
def get_ping(ping_id: int) -> diagnostics.Ping:
    """A ping and who answered it."""
    return diagnostics.get_ping(services().db, ping_id)
