"""HTTP adapters of the reconciliation package: thin views over service functions.

Finance staff only. Statement imports and runs answer 202 and continue as jobs; a run asked
for while one is under way for the same day and account answers 200 with that run.
"""

from __future__ import annotations

import hashlib
from datetime import date
from typing import Any

import jwt
from flask import Response, request
from flask_smorest import Blueprint

from core.auth import current_principal, require
from core.errors import invalid
from core.http import idempotent, services
from reconciliation import closing, dashboard, resolutions, service
from reconciliation.categories import Action
from reconciliation.schemas import (
    DayCloseSchema,
    ItemListSchema,
    ItemQuerySchema,
    PageQuerySchema,
    ReportKeysSchema,
    ReportQuerySchema,
    ReportSignatureSchema,
    ResolutionRequestSchema,
    ResolutionSchema,
    RunListQuerySchema,
    RunListSchema,
    RunRequestSchema,
    RunSchema,
    SandboxStatementSchema,
    StatementFileSchema,
    StatementFormSchema,
    StatementListSchema,
    StatementSchema,
)

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="/api/v1",
    description="Statements, matching, resolutions and daily close",
)
FINANCE = ("finance",)


def _cfg() -> service.ReconConfig:
    return service.ReconConfig.from_settings(services().settings)


def _actor() -> str:
    return current_principal().username


@blp.route("/reconciliation/statements", methods=["POST"])
@idempotent(required=False)
@blp.response(202, StatementSchema)
@require(*FINANCE)
@blp.arguments(StatementFormSchema, location="form")
@blp.arguments(StatementFileSchema, location="files")
def upload_statement(form: dict[str, Any], files: dict[str, Any]) -> Any:
    """Upload a bank statement (CSV or camt.053); it is imported by a job (202)."""
    upload = files["file"]
    return service.submit_statement(
        services().db,
        _cfg(),
        account_number=form["account_number"],
        fmt=form["format"],
        filename=upload.filename or "",
        stream=upload.stream,
        actor=_actor(),
    )


@blp.route("/reconciliation/statements")
@blp.response(200, StatementListSchema)
@require(*FINANCE)
@blp.arguments(PageQuerySchema, location="query")
def list_statements(query: dict[str, Any]) -> Any:
    """Uploaded statements, newest first."""
    return service.list_statements(services().db, query["limit"], query.get("starting_after"))


@blp.route("/reconciliation/statements/<int:statement_id>")
@blp.response(200, StatementSchema)
@require(*FINANCE)
def get_statement(statement_id: int) -> Any:
    """One statement's import: status, counts and the refused lines with their numbers."""
    return service.get_statement(services().db, statement_id)


@blp.route("/reconciliation/runs", methods=["POST"])
@idempotent(required=False)
@blp.response(202, RunSchema)
@blp.alt_response(200, schema=RunSchema, description="A run of that day is already under way")
@require(*FINANCE)
@blp.arguments(RunRequestSchema)
def start_run(body: dict[str, Any]) -> Any:
    """Reconcile one business day of one account (a job with progress)."""
    run, created = service.start_run(
        services().db,
        _cfg(),
        day=body["business_date"],
        account_number=body["account_number"],
        actor=_actor(),
    )
    return run, 202 if created else 200


@blp.route("/reconciliation/runs")
@blp.response(200, RunListSchema)
@require(*FINANCE)
@blp.arguments(RunListQuerySchema, location="query")
def list_runs(query: dict[str, Any]) -> Any:
    """Runs, newest first, optionally of one business day."""
    return service.list_runs(
        services().db,
        day=query.get("business_date"),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/reconciliation/runs/<int:run_id>")
@blp.response(200, RunSchema)
@require(*FINANCE)
def get_run(run_id: int) -> Any:
    """A run's status, phase, progress (percent) and counts per category."""
    return service.get_run(services().db, run_id)


@blp.route("/reconciliation/runs/<int:run_id>/items")
@blp.response(200, ItemListSchema)
@require(*FINANCE)
@blp.arguments(ItemQuerySchema, location="query")
def list_items(query: dict[str, Any], run_id: int) -> Any:
    """A run's items, optionally of one category, with lines and resolutions."""
    return resolutions.list_items(
        services().db,
        run_id,
        category=query.get("category"),
        needs_resolution=query["needs_resolution"],
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/reconciliation/items/<int:item_id>/resolution", methods=["POST"])
@idempotent(required=False)
@blp.response(201, ResolutionSchema)
@require(*FINANCE)
@blp.arguments(ResolutionRequestSchema)
def resolve_item(body: dict[str, Any], item_id: int) -> Any:
    """Resolve an item (note required; write_off and adjust need an Idempotency-Key)."""
    decision = resolutions.Decision(**{**body, "action": Action(body["action"])})
    return resolutions.resolve_item(
        services().db,
        item_id,
        decision,
        actor=_actor(),
        idempotency_key=request.headers.get("Idempotency-Key"),
    )


@blp.route("/reconciliation/days/<string:business_date>/close", methods=["POST"])
@idempotent(required=False)
@blp.response(201, DayCloseSchema)
@require(*FINANCE)
def close_day(business_date: str) -> Any:
    """Close a business day once it is reconciled; its postings are refused afterwards."""
    return closing.close_business_day(
        services().db, services().keyring, _cfg(), _day(business_date), _actor()
    )


def _day(raw: str) -> date:
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise invalid("business_date", "business_date must be YYYY-MM-DD") from None


@blp.route("/reports/daily")
@blp.doc(responses={200: {"description": "text/csv or XLSX, signed in X-Report-Signature"}})
@require(*FINANCE)
@blp.arguments(ReportQuerySchema, location="query")
def daily_report(query: dict[str, Any]) -> Response:
    """The daily close report (CSV or XLSX) with a detached ES256 JWS in a header."""
    report = closing.daily_report(
        services().db, services().keyring, _cfg(), query["business_date"], query["format"]
    )
    return Response(
        report.content,
        mimetype=report.mimetype,
        headers={
            "Content-Disposition": f'attachment; filename="{report.filename}"',
            closing.SIGNATURE_HEADER: report.signature,
            "Cache-Control": "no-store",
        },
    )


@blp.route("/reports/daily/signature")
@blp.response(200, ReportSignatureSchema)
@require(*FINANCE)
@blp.arguments(ReportQuerySchema, location="query")
def daily_report_signature(query: dict[str, Any]) -> dict[str, Any]:
    """The report's signature as a sidecar document (for tools that drop headers)."""
    report = closing.daily_report(
        services().db, services().keyring, _cfg(), query["business_date"], query["format"]
    )
    header = jwt.get_unverified_header(report.signature)
    return {
        "business_date": query["business_date"],
        "format": query["format"],
        "signature": report.signature,
        "alg": header["alg"],
        "kid": header["kid"],
        "sha256": hashlib.sha256(report.content).hexdigest(),
        "keys_url": "/api/v1/reports/keys",
    }


@blp.route("/reports/keys")
@blp.response(200, ReportKeysSchema)
def report_keys() -> dict[str, Any]:
    """Public keys (JWKS) that verify report signatures; public, like any JWKS."""
    return closing.report_keys(services().keyring)


@blp.route("/reconciliation/sandbox/statements", methods=["POST"])
@idempotent(required=False)
@blp.response(202, StatementSchema)
@require(*FINANCE)
@blp.arguments(SandboxStatementSchema)
def sandbox_statement(body: dict[str, Any]) -> Any:
    """Sandbox only: import the simulated bank's statement of a business day."""
    return dashboard.import_sandbox_statement(
        services().db, _cfg(), body["business_date"], body["account_number"], _actor()
    )


@blp.route("/reconciliation/sandbox/statement.csv")
@blp.doc(responses={200: {"description": "text/csv: the simulated bank's statement"}})
@require(*FINANCE)
@blp.arguments(SandboxStatementSchema, location="query")
def sandbox_statement_csv(query: dict[str, Any]) -> Response:
    """Sandbox only: download the simulated bank's statement of a business day."""
    text = dashboard.sandbox_statement_csv(
        services().db, _cfg(), query["business_date"], query["account_number"]
    )
    name = f"sandbox-statement-{query['business_date'].isoformat()}.csv"
    return Response(
        text, mimetype="text/csv", headers={"Content-Disposition": f'attachment; filename="{name}"'}
    )
