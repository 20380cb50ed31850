"""HTTP helpers: the one error mapping to problem+json, request ids, JSON logs, idempotency.

Every error a client can see leaves through `problem_response`: RFC 9457 fields plus a stable
`code`, the `request_id` and, for validation failures, `errors: [{field, code, message}]`.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import marshmallow as ma
from flask import Flask, Response, current_app, g, has_request_context, render_template, request
from pythonjsonlogger.json import JsonFormatter
from sqlalchemy.exc import DataError, OperationalError
from werkzeug.exceptions import HTTPException

from core import idempotency
from core.config import Settings
from core.db import Database
from core.errors import AppError, FieldError
from core.events import LiveBus
from core.keys import KeyRing
from core.queue import JobRunner

log = logging.getLogger("cashless.http")
F = TypeVar("F", bound=Callable[..., Any])
REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9._-]{8,64}$")
PROBLEM_TYPE = "https://docs.hanoi-cashless.vn/problems/"


@dataclass
class Services:
    """What views need, bound to the app once in create_app (never a global)."""

    settings: Settings
    db: Database
    keyring: KeyRing
    runner: JobRunner
    bus: LiveBus
    extra: dict[str, Any]


def services() -> Services:
    return cast(Services, current_app.extensions["cashless"])


# -- problem+json -------------------------------------------------------------------------------
class ProblemErrorSchema(ma.Schema):
    field = ma.fields.String()
    code = ma.fields.String()
    message = ma.fields.String()


class ProblemSchema(ma.Schema):
    """RFC 9457 problem details, as every error of this API is shaped."""

    type = ma.fields.String()
    title = ma.fields.String()
    status = ma.fields.Integer()
    detail = ma.fields.String()
    code = ma.fields.String()
    request_id = ma.fields.String()
    errors = ma.fields.List(ma.fields.Nested(ProblemErrorSchema))


def request_id() -> str:
    return str(getattr(g, "request_id", "")) if has_request_context() else ""


def problem_body(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": PROBLEM_TYPE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": request_id(),
    }
    if errors:
        body["errors"] = [{"field": e.field, "code": e.code, "message": e.message} for e in errors]
    body.update(extra)
    return body


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[FieldError] | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> Response:
    body = problem_body(status, code, title, detail, errors, **extra)
    response = Response(
        json.dumps(body, ensure_ascii=False), status=status, mimetype="application/problem+json"
    )
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _flatten(messages: Any, prefix: str = "") -> list[FieldError]:
    """webargs/marshmallow messages {"json": {"amount": ["..."]}} → [FieldError("amount", ...)]."""
    out: list[FieldError] = []
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = (
                str(key)
                if key not in ("json", "query", "form", "files", "headers", "_schema")
                else ""
            )
            path = f"{prefix}.{name}" if prefix and name else (name or prefix)
            out.extend(_flatten(value, path))
    elif isinstance(messages, list) and all(isinstance(m, str) for m in messages):
        for message in messages:
            code = "required" if "required" in message.lower() else "invalid"
            out.append(FieldError(prefix or "body", code, message))
    elif isinstance(messages, list):
        for index, item in enumerate(messages):
            out.extend(_flatten(item, f"{prefix}[{index}]"))
    else:
        out.append(FieldError(prefix or "body", "invalid", str(messages)))
    return out


def app_error_response(error: AppError) -> Response:
    return problem_response(
        error.status,
        error.instance_code,
        error.title,
        error.detail,
        error.errors,
        error.headers,
        **error.extra,
    )


def _wants_html() -> bool:
    path = request.path
    if path.startswith(("/api/", "/.well-known/", "/openapi.json", "/healthz", "/readyz")):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def _html_error(status: int, title: str, detail: str) -> Response:
    html = render_template("error.html", status=status, title=title, detail=detail)
    return Response(html, status=status, mimetype="text/html")


def handle_http_exception(error: HTTPException) -> Response:
    status = error.code or 500
    data = getattr(error, "data", None) or {}
    if status == 400 and data.get("messages", {}).get("json") == ["Invalid JSON body."]:
        return problem_response(
            400, "malformed_json", "Malformed JSON", "the request body is not valid JSON"
        )
    if status == 422 and "messages" in data:
        errors = _flatten(data["messages"])
        return problem_response(
            422,
            "validation_failed",
            "Invalid input",
            "; ".join(f"{e.field}: {e.message}" for e in errors[:5]),
            errors,
        )
    if status == 429:
        retry_after = str(getattr(error, "retry_after", None) or 60)
        headers = {"Retry-After": retry_after}
        return problem_response(
            429, "rate_limited", "Too many requests", "slow down and retry later", headers=headers
        )
    if _wants_html():
        return _html_error(status, error.name, error.description or error.name)
    code = {
        404: "not_found",
        405: "method_not_allowed",
        401: "unauthorized",
        403: "forbidden",
        413: "too_large",
        415: "unsupported_media_type",
    }.get(status, re.sub(r"[^a-z]+", "_", error.name.lower()).strip("_"))
    headers = dict(error.get_headers()) if status == 405 else {}
    headers = {k: v for k, v in headers.items() if k == "Allow"}
    return problem_response(
        status, code, error.name, error.description or error.name, headers=headers
    )


def handle_app_error(error: AppError) -> Response:
    if _wants_html() and error.status in (401, 403, 404):
        return _html_error(error.status, error.title, error.detail)
    return app_error_response(error)


def handle_database_unavailable(error: Exception) -> Response:
    """The database went away (restart, failover): a clean 503 the client may retry."""
    log.error("database unavailable", exc_info=error)
    return problem_response(
        503,
        "database_unavailable",
        "Service unavailable",
        "the database is unavailable; retry shortly",
        headers={"Retry-After": "2"},
    )


def handle_out_of_range(error: Exception) -> Response:
    """A number too large for the database (an id or cursor past 2^63): the input's fault."""
    return problem_response(
        422, "value_out_of_range", "Invalid input", "a number in the request is out of range"
    )


def handle_unexpected(error: Exception) -> Response:
    log.error("unhandled error", exc_info=error)
    return problem_response(
        500,
        "internal_error",
        "Internal error",
        "something went wrong on our side; quote the request_id",
    )


def register_error_handlers(app: Flask) -> None:
    """Install the one mapping. Call after flask-smorest's Api so ours wins."""
    app.register_error_handler(AppError, handle_app_error)
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(OperationalError, handle_database_unavailable)
    app.register_error_handler(OverflowError, handle_out_of_range)
    app.register_error_handler(DataError, handle_out_of_range)
    app.register_error_handler(Exception, handle_unexpected)


# -- request ids and JSON logs --------------------------------------------------------------------
class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id()
        return True


def configure_logging(level: str) -> None:
    """JSON lines on stderr, each with the request id when there is one."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s")
    )
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)


def install_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if REQUEST_ID_RE.match(incoming) else uuid.uuid4().hex
        g.started = time.perf_counter()

    @app.after_request
    def _stamp(response: Response) -> Response:
        response.headers["X-Request-ID"] = request_id()
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        if response.mimetype == "text/html":
            response.headers.setdefault("X-Frame-Options", "DENY")
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault(
                "Content-Security-Policy",
                "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'",
            )
        elapsed = (time.perf_counter() - getattr(g, "started", time.perf_counter())) * 1000
        if not request.path.startswith(("/static", "/healthz")):
            log.info(
                "request",
                extra={
                    "method": request.method,
                    "path": request.path,
                    "status": response.status_code,
                    "ms": round(elapsed, 1),
                },
            )
        return response


# -- idempotency ----------------------------------------------------------------------------------
def idempotent(required: bool = True) -> Callable[[F], F]:
    """Honour `Idempotency-Key` on a view: replay, 422 on a changed body, 409 while in flight.

    The key is scoped to the authenticated caller. A 4xx answer is stored and replayed like a
    success (the request was understood); a 5xx releases the key so a retry runs again.
    """

    def decorator(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            from core.auth import current_principal

            key = idempotency.check_key(request.headers.get("Idempotency-Key"), required=required)
            if key is None:
                return view(*args, **kwargs)
            scope = current_principal().scope
            db = services().db
            print_ = idempotency.fingerprint(request.method, request.path, request.get_data())
            replay = idempotency.claim(db, scope, key, print_)
            if replay is not None:
                return _replayed(replay)
            try:
                response = current_app.make_response(view(*args, **kwargs))
            except AppError as error:
                response = app_error_response(error)
            except Exception:
                idempotency.release(db, scope, key)
                raise
            if response.status_code >= 500:
                idempotency.release(db, scope, key)
            else:
                idempotency.complete(
                    db, scope, key, response.status_code, response.get_data(as_text=True)
                )
            return response

        return cast(F, wrapper)

    return decorator


def _replayed(replay: idempotency.Replay) -> Response:
    mimetype = "application/problem+json" if replay.status >= 400 else "application/json"
    response = Response(replay.body, status=replay.status, mimetype=mimetype)
    response.headers["Idempotent-Replayed"] = "true"
    return response
