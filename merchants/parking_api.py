"""HTTP adapters of parking: lots, quotes, sessions (entry, exit, correction, trail), monthly
passes, the enforcement look-up and the operator's remittance report. Thin views."""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from core.auth import Principal, current_principal, require
from core.http import idempotent, services
from merchants import lots, parking, parking_reports, service
from merchants.schemas import (
    EnforcementSchema,
    EntryRequestSchema,
    ExitRequestSchema,
    ExitSchema,
    LotCreateSchema,
    LotListSchema,
    LotSchema,
    LotSummarySchema,
    LotUpdateSchema,
    PageQuerySchema,
    ParkingQuoteRequestSchema,
    ParkingQuoteSchema,
    ParkingSessionListSchema,
    ParkingSessionSchema,
    PassListSchema,
    PassRequestSchema,
    PassSchema,
    PlateCorrectionSchema,
    RemittanceQuerySchema,
    RemittanceSchema,
    SessionListQuerySchema,
    SessionTrailSchema,
)
from payments.service import PaymentsConfig

blp = Blueprint(
    "parking",
    __name__,
    url_prefix="/api/v1",
    description="Parking lots, sessions, passes, enforcement and remittance",
)
OVERSIGHT = ("admin", "finance")


def _actor(device: str = "web") -> parking.Actor:
    principal = current_principal()
    return parking.Actor(principal.user_id, principal.username, principal.roles, device)


def _operates(principal: Principal, operator_id: int) -> bool:
    if principal.has(*OVERSIGHT):
        return True
    return service.is_staff(services().db, principal.user_id, operator_id)


def lot_staff(principal: Principal, lot_id: int, **_: Any) -> bool:
    """The lot's operator's staff, finance and admins."""
    return _operates(principal, lots.lot_operator(services().db, lot_id))


def session_staff(principal: Principal, session_id: int, **_: Any) -> bool:
    return _operates(principal, parking.session_operator(services().db, session_id))


def session_staff_or_driver(principal: Principal, session_id: int, **_: Any) -> bool:
    """Staff of the lot, or a driver paying their own exit from the wallet."""
    return principal.has("commuter") or session_staff(principal, session_id)


def operator_staff(principal: Principal, merchant_id: int, **_: Any) -> bool:
    return _operates(principal, merchant_id)


# -- lots ---------------------------------------------------------------------------------------
@blp.route("/parking/lots")
@blp.response(200, LotListSchema)
@require()
@blp.arguments(PageQuerySchema, location="query")
def list_lots(query: dict[str, Any]) -> Any:
    """Parking lots with their capacity per vehicle class."""
    return lots.list_lots(
        services().db, limit=query["limit"], starting_after=query.get("starting_after")
    )


@blp.route("/parking/lots", methods=["POST"])
@idempotent(required=False)
@blp.response(201, LotSummarySchema)
@require("admin")
@blp.arguments(LotCreateSchema)
def create_lot(body: dict[str, Any]) -> Any:
    """A lot run by a parking operator, with capacities, tariff and monthly pass prices."""
    return lots.create_lot(services().db, actor=current_principal().username, **body)


@blp.route("/parking/lots/<int:lot_id>")
@blp.response(200, LotSchema)
@require()
def get_lot(lot_id: int) -> Any:
    """Occupancy: capacity, vehicles inside and free spaces per class, and the tariff."""
    return lots.lot_occupancy(services().db, lot_id)


@blp.route("/parking/lots/<int:lot_id>", methods=["PATCH"])
@idempotent(required=False)
@blp.response(200, LotSchema)
@require("admin")
@blp.arguments(LotUpdateSchema)
def update_lot(body: dict[str, Any], lot_id: int) -> Any:
    """Change a lot's capacity, tariff, pass prices or name (audited)."""
    return lots.update_lot(services().db, lot_id, body, current_principal().username)


@blp.route("/parking/lots/<int:lot_id>/quotes", methods=["POST"])
@blp.response(200, ParkingQuoteSchema)
@require()
@blp.arguments(ParkingQuoteRequestSchema)
def quote(body: dict[str, Any], lot_id: int) -> Any:
    """The price of a stay by the lot's tariff, with its breakdown."""
    return lots.quote(services().db, lot_id, **body)


# -- sessions -----------------------------------------------------------------------------------
@blp.route("/parking/lots/<int:lot_id>/sessions", methods=["POST"])
@idempotent(required=True)
@blp.response(201, ParkingSessionSchema)
@require("attendant", "admin", owner=lot_staff)
@blp.arguments(EntryRequestSchema)
def enter(body: dict[str, Any], lot_id: int) -> Any:
    """A vehicle enters: one open session per plate per lot (409 for a second entry)."""
    return parking.open_session(
        services().db,
        lot_id,
        plate=body["plate"],
        vehicle_class=body["vehicle_class"],
        entered_at=body.get("entered_at"),
        actor=_actor(body["device_id"]),
    )


@blp.route("/parking/lots/<int:lot_id>/sessions")
@blp.response(200, ParkingSessionListSchema)
@require(owner=lot_staff)
@blp.arguments(SessionListQuerySchema, location="query")
def list_sessions(query: dict[str, Any], lot_id: int) -> Any:
    """Sessions of a lot (`status=inside`: the vehicles in the lot now)."""
    return parking.list_sessions(
        services().db,
        lot_id,
        status=query.get("status"),
        plate=query.get("plate"),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/parking/sessions/<int:session_id>")
@blp.response(200, SessionTrailSchema)
@require(owner=session_staff)
def get_session(session_id: int) -> Any:
    """A session with its audit trail: who opened, corrected and closed it, on which device."""
    return parking.session_trail(services().db, session_id)


@blp.route("/parking/sessions/<int:session_id>/exit", methods=["POST"])
@idempotent(required=True)
@blp.response(200, ExitSchema)
@require("attendant", "admin", "commuter", owner=session_staff_or_driver)
@blp.arguments(ExitRequestSchema)
def exit_lot(body: dict[str, Any], session_id: int) -> Any:
    """Price the exit and take the fee: cash at once, VietQR (or wallet) as a pending payment.
    Exiting twice returns the first answer."""
    return parking.exit_session(
        services().db,
        PaymentsConfig.from_settings(services().settings),
        session_id,
        method=body["method"],
        payer=body.get("payer"),
        actor=_actor(body["device_id"]),
    )


@blp.route("/parking/sessions/<int:session_id>/plate", methods=["POST"])
@idempotent(required=False)
@blp.response(200, ParkingSessionSchema)
@require("attendant", "admin", owner=session_staff)
@blp.arguments(PlateCorrectionSchema)
def correct_plate(body: dict[str, Any], session_id: int) -> Any:
    """Correct a mistyped plate; the reason and the before/after are audited."""
    return parking.correct_plate(
        services().db,
        session_id,
        plate=body["plate"],
        reason=body["reason"],
        actor=_actor(body["device_id"]),
    )


# -- passes, enforcement, remittance ------------------------------------------------------------
@blp.route("/parking/lots/<int:lot_id>/passes", methods=["POST"])
@idempotent(required=True)
@blp.response(201, PassSchema)
@require("commuter")
@blp.arguments(PassRequestSchema)
def buy_pass(body: dict[str, Any], lot_id: int) -> Any:
    """Buy a monthly pass for a plate, paid from the caller's wallet."""
    return parking_reports.buy_pass(
        services().db, lot_id, user_id=current_principal().user_id, **body
    )


@blp.route("/parking/passes/me")
@blp.response(200, PassListSchema)
@require("commuter")
@blp.arguments(PageQuerySchema, location="query")
def my_passes(query: dict[str, Any]) -> Any:
    """The caller's monthly passes."""
    return parking_reports.my_passes(
        services().db,
        current_principal().user_id,
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/parking/enforcement/<string:plate>")
@blp.response(200, EnforcementSchema)
@require("attendant", *OVERSIGHT)
def enforcement(plate: str) -> Any:
    """Is this plate paid for (inside a lot now, or a valid monthly pass)? No payer data."""
    principal = current_principal()
    return parking_reports.enforcement(
        services().db, plate, user_id=principal.user_id, roles=principal.roles
    )


@blp.route("/parking/operators/<int:merchant_id>/remittance")
@blp.response(200, RemittanceSchema)
@blp.doc(responses={200: {"description": "JSON, or text/csv with `format=csv`"}})
@require(owner=operator_staff)
@blp.arguments(RemittanceQuerySchema, location="query")
def remittance(query: dict[str, Any], merchant_id: int) -> Any:
    """The operator's day: vehicles, fees by method, and what it owes the city treasury."""
    report = parking_reports.remittance(services().db, merchant_id, query["business_date"])
    if query["format"] == "csv":
        return _csv(parking_reports.remittance_csv(report), report)
    return report


def _csv(text: str, report: parking_reports.Remittance) -> Response:
    name = f"remittance-{report.operator_id}-{report.business_date.isoformat()}.csv"
    return Response(
        text,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )
