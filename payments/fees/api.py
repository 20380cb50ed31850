"""HTTP adapters of fees and waivers: thin views over payments.fees.service."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from core.auth import current_principal, require
from core.clock import Clock, utcnow
from core.http import idempotent, services
from payments.fees import admin, service
from payments.fees.schemas import (
    FeeApplicationListSchema,
    FeeApplicationRequestSchema,
    FeeApplicationSchema,
    FeeQuoteRequestSchema,
    FeeQuoteSchema,
    FeeVersionListSchema,
    FeeVersionRequestSchema,
    FeeVersionSchema,
    PublicServiceListSchema,
    PublicServiceRequestSchema,
    PublicServiceSchema,
    WaivedFeeReportQuerySchema,
    WaivedFeeReportSchema,
    WaiverRuleListSchema,
    WaiverRuleRequestSchema,
    WaiverRuleSchema,
)
from payments.schemas import PageQuerySchema
from payments.service import PaymentsConfig

blp = Blueprint(
    "fees",
    __name__,
    url_prefix="/api/v1",
    description="Public services: fees by channel, waivers, applications, revenue foregone",
)


def _clock() -> Clock:
    """The app's clock: tests inject one in `Services.extra["clock"]`."""
    clock = services().extra.get("clock")
    return clock if callable(clock) else utcnow


def _cfg() -> PaymentsConfig:
    return PaymentsConfig.from_settings(services().settings)


@blp.route("/public-services")
@blp.response(200, PublicServiceListSchema)
@blp.arguments(PageQuerySchema, location="query")
def list_public_services(query: dict[str, Any]) -> Any:
    """The catalogue of public services with today's fee by channel."""
    return service.list_services(
        services().db, _clock(), query["limit"], query.get("starting_after")
    )


@blp.route("/public-services", methods=["POST"])
@idempotent(required=False)
@blp.response(201, PublicServiceSchema)
@require("admin")
@blp.arguments(PublicServiceRequestSchema)
def add_public_service(body: dict[str, Any]) -> Any:
    """Admin: add a public service with its first fee version (audited)."""
    return admin.add_service(services().db, current_principal().username, body, _clock())


@blp.route("/public-services/<code>")
@blp.response(200, PublicServiceSchema)
def get_public_service(code: str) -> Any:
    """One public service with today's fee by channel."""
    return service.get_service(services().db, code, _clock())


@blp.route("/public-services/<code>/quotes", methods=["POST"])
@blp.response(200, FeeQuoteSchema)
@blp.arguments(FeeQuoteRequestSchema)
def quote(body: dict[str, Any], code: str) -> Any:
    """Quote a submission: gross fee, waived amount, payable, the rule that won and why."""
    return service.quote_fee(
        services().db, code, body["channel"], body["beneficiary_category"], _clock()
    )


@blp.route("/public-services/<code>/applications", methods=["POST"])
@idempotent(required=True)
@blp.response(201, FeeApplicationSchema)
@require()
@blp.arguments(FeeApplicationRequestSchema)
def file_application(body: dict[str, Any], code: str) -> Any:
    """File an application: payable 0 gets its receipt at once; otherwise a VietQR payment."""
    return service.file_application(
        services().db,
        _cfg(),
        code=code,
        channel=body["channel"],
        beneficiary_category=body["beneficiary_category"],
        user_id=current_principal().user_id,
        clock=_clock(),
    )


@blp.route("/public-services/<code>/fee-versions")
@blp.response(200, FeeVersionListSchema)
def list_fee_versions(code: str) -> Any:
    """Every fee version of a service (the full history; versions are never edited)."""
    return admin.list_fee_versions(services().db, code)


@blp.route("/public-services/<code>/fee-versions", methods=["POST"])
@idempotent(required=False)
@blp.response(201, FeeVersionSchema)
@require("admin")
@blp.arguments(FeeVersionRequestSchema)
def add_fee_version(body: dict[str, Any], code: str) -> Any:
    """Admin: add a fee version from today or later (audited with the version it succeeds)."""
    return admin.add_fee_version(services().db, current_principal().username, code, body, _clock())


@blp.route("/fee-waiver-rules")
@blp.response(200, WaiverRuleListSchema)
@blp.arguments(PageQuerySchema, location="query")
def list_waiver_rules(query: dict[str, Any]) -> Any:
    """Every waiver rule with its legal basis and validity."""
    return admin.list_waiver_rules(services().db, query["limit"], query.get("starting_after"))


@blp.route("/fee-waiver-rules", methods=["POST"])
@idempotent(required=False)
@blp.response(201, WaiverRuleSchema)
@require("admin")
@blp.arguments(WaiverRuleRequestSchema)
def add_waiver_rule(body: dict[str, Any]) -> Any:
    """Admin: add a waiver rule, or a version superseding one (audited)."""
    return admin.add_waiver_rule(services().db, current_principal().username, body, _clock())


@blp.route("/fee-applications")
@blp.response(200, FeeApplicationListSchema)
@require()
@blp.arguments(PageQuerySchema, location="query")
def my_applications(query: dict[str, Any]) -> Any:
    """The caller's applications."""
    return service.my_applications(
        services().db, current_principal().user_id, query["limit"], query.get("starting_after")
    )


@blp.route("/fee-applications/<int:application_id>")
@blp.response(200, FeeApplicationSchema)
@require()
def get_application(application_id: int) -> Any:
    """One application, for its applicant, finance and admins."""
    principal = current_principal()
    return service.application_for(
        services().db, application_id, principal.user_id, principal.roles
    )


@blp.route("/fee-applications/<int:application_id>/payments", methods=["POST"])
@idempotent(required=True)
@blp.response(200, FeeApplicationSchema)
@require()
def renew_payment(application_id: int) -> Any:
    """A fresh VietQR payment when the application's payment expired or was cancelled."""
    return service.renew_payment(
        services().db, _cfg(), application_id, current_principal().user_id, _clock()
    )


@blp.route("/reports/waived-fees")
@blp.response(200, WaivedFeeReportSchema)
@blp.doc(responses={200: {"content": {"text/csv": {}}}})
@require("finance", "admin")
@blp.arguments(WaivedFeeReportQuerySchema, location="query")
def waived_fees(query: dict[str, Any]) -> Any:
    """Revenue foregone per service per business day or month (JSON, or CSV with format=csv)."""
    report = service.waived_fee_report(services().db, query["from_"], query["to"], query["group"])
    if query["format"] != "csv":
        return report
    filename = f"waived-fees-{query['from_']}-{query['to']}-{query['group']}.csv"
    return Response(
        service.report_csv(report).encode("utf-8"),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
