"""HTTP adapters of the merchants package: thin views over service functions.

Merchants, staff, stalls and their static codes, dynamic charges, the day's sales and payouts.
Parking is in merchants/parking_api.py (its own blueprint).
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask_smorest import Blueprint

from core.auth import Principal, current_principal, require
from core.http import idempotent, services
from merchants import payouts, poster, service
from merchants.schemas import (
    ChargeRequestSchema,
    ChargeSchema,
    DayQuerySchema,
    MerchantCreateSchema,
    MerchantListQuerySchema,
    MerchantListSchema,
    MerchantSchema,
    MerchantUpdateSchema,
    PageQuerySchema,
    PayoutFileQuerySchema,
    PayoutListQuerySchema,
    PayoutListSchema,
    PayoutRunRequestSchema,
    PayoutRunSchema,
    SalesSummarySchema,
    StaffInputSchema,
    StaffSchema,
    StallCreateSchema,
    StallQRSchema,
    StallSchema,
)
from payments import qrimage
from payments.service import PaymentsConfig

blp = Blueprint(
    "merchants",
    __name__,
    url_prefix="/api/v1",
    description="Merchants, stalls, charges, sales and payouts",
)
OVERSIGHT = ("admin", "finance")


def _cfg() -> PaymentsConfig:
    return PaymentsConfig.from_settings(services().settings)


def _actor() -> str:
    return current_principal().username


def staff_or_oversight(principal: Principal, merchant_id: int, **_: Any) -> bool:
    """The merchant's own staff, finance and admins; others get a 404."""
    if principal.has(*OVERSIGHT):
        return True
    return service.is_staff(services().db, principal.user_id, merchant_id)


def staff_or_admin(principal: Principal, merchant_id: int, **_: Any) -> bool:
    if principal.has("admin"):
        return True
    return service.is_staff(services().db, principal.user_id, merchant_id)


# -- merchants ----------------------------------------------------------------------------------
@blp.route("/merchants", methods=["POST"])
@idempotent(required=False)
@blp.response(201, MerchantSchema)
@require("admin")
@blp.arguments(MerchantCreateSchema)
def onboard(body: dict[str, Any]) -> Any:
    """Onboard a merchant: category, settlement bank (checked against the BIN table), staff."""
    application = service.MerchantApplication(**body)
    return service.onboard_merchant(services().db, application, actor=_actor())


@blp.route("/merchants")
@blp.response(200, MerchantListSchema)
@require(*OVERSIGHT)
@blp.arguments(MerchantListQuerySchema, location="query")
def list_merchants(query: dict[str, Any]) -> Any:
    """Merchants by id, optionally of one category."""
    return service.list_merchants(
        services().db,
        category=query.get("category"),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/merchants/me")
@blp.response(200, MerchantSchema)
@require()
def my_merchant() -> Any:
    """The caller's merchant with its stalls (404 when the caller staffs none)."""
    return service.my_merchant(services().db, current_principal().user_id)


@blp.route("/merchants/<int:merchant_id>")
@blp.response(200, MerchantSchema)
@require(owner=staff_or_oversight)
def get_merchant(merchant_id: int) -> Any:
    """One merchant with its stalls and staff."""
    return service.get_merchant(services().db, merchant_id)


@blp.route("/merchants/<int:merchant_id>", methods=["PATCH"])
@idempotent(required=False)
@blp.response(200, MerchantSchema)
@require("admin")
@blp.arguments(MerchantUpdateSchema)
def update_merchant(body: dict[str, Any], merchant_id: int) -> Any:
    """Change names, settlement account, discount rate or the active flag (audited)."""
    return service.update_merchant(services().db, merchant_id, body, _actor())


@blp.route("/merchants/<int:merchant_id>/staff", methods=["POST"])
@idempotent(required=False)
@blp.response(201, StaffSchema)
@require("admin")
@blp.arguments(StaffInputSchema)
def add_staff(body: dict[str, Any], merchant_id: int) -> Any:
    """Add a staff user with a role (owner, manager, cashier, attendant)."""
    return service.add_staff(services().db, merchant_id, body["username"], body["role"], _actor())


@blp.route("/merchants/<int:merchant_id>/staff/<int:user_id>", methods=["DELETE"])
@blp.response(204)
@require("admin")
def remove_staff(merchant_id: int, user_id: int) -> None:
    """Detach a staff user (audited)."""
    service.remove_staff(services().db, merchant_id, user_id, _actor())


# -- stalls and static codes --------------------------------------------------------------------
@blp.route("/merchants/<int:merchant_id>/stalls", methods=["POST"])
@idempotent(required=False)
@blp.response(201, StallSchema)
@require("admin")
@blp.arguments(StallCreateSchema)
def add_stall(body: dict[str, Any], merchant_id: int) -> Any:
    """Add a market stall; its static VietQR is made at once."""
    return service.add_stall(services().db, _cfg(), merchant_id, actor=_actor(), **body)


@blp.route("/merchants/<int:merchant_id>/stalls/<int:stall_id>/qr")
@blp.response(200, StallQRSchema)
@require(owner=staff_or_oversight)
def stall_qr(merchant_id: int, stall_id: int) -> Any:
    """The stall's static code: payload, PNG and SVG links and the printable poster."""
    return service.stall_code(services().db, merchant_id, stall_id)


@blp.route("/merchants/<int:merchant_id>/stalls/<int:stall_id>/qr.png")
@blp.doc(responses={200: {"description": "image/png"}})
@require(url_token=True, owner=staff_or_oversight)
def stall_qr_png(merchant_id: int, stall_id: int) -> Response:
    """The stall's static VietQR as PNG (accepts a signed `?token=`)."""
    code = service.stall_code(services().db, merchant_id, stall_id)
    return Response(qrimage.render_png(code.payload, box_size=10), mimetype="image/png")


@blp.route("/merchants/<int:merchant_id>/stalls/<int:stall_id>/qr.svg")
@blp.doc(responses={200: {"description": "image/svg+xml"}})
@require(url_token=True, owner=staff_or_oversight)
def stall_qr_svg(merchant_id: int, stall_id: int) -> Response:
    """The stall's static VietQR as SVG (accepts a signed `?token=`)."""
    code = service.stall_code(services().db, merchant_id, stall_id)
    return Response(qrimage.render_svg(code.payload), mimetype="image/svg+xml")


@blp.route("/merchants/<int:merchant_id>/stalls/<int:stall_id>/poster.svg")
@blp.doc(responses={200: {"description": "image/svg+xml: the printable A6 poster"}})
@require(url_token=True, owner=staff_or_oversight)
def stall_poster(merchant_id: int, stall_id: int) -> Response:
    """The printable poster: stall name, QR, "Quét mã để thanh toán", empty amount line."""
    code = service.stall_code(services().db, merchant_id, stall_id)
    svg = poster.render_poster(
        stall_name=code.name,
        stall_code=code.code,
        market=code.market,
        merchant_name=code.merchant_name,
        payload=code.payload,
        reference=code.reference,
    )
    return Response(svg, mimetype="image/svg+xml")


# -- charges and sales --------------------------------------------------------------------------
@blp.route("/merchants/<int:merchant_id>/charges", methods=["POST"])
@idempotent(required=True)
@blp.response(201, ChargeSchema)
@require("vendor", "admin", owner=staff_or_admin)
@blp.arguments(ChargeRequestSchema)
def create_charge(body: dict[str, Any], merchant_id: int) -> Any:
    """A dynamic VietQR for one sale (amount locked); watch `events_url` for "paid"."""
    return service.create_charge(services().db, _cfg(), merchant_id, **body)


@blp.route("/merchants/<int:merchant_id>/sales")
@blp.response(200, SalesSummarySchema)
@require(owner=staff_or_oversight)
@blp.arguments(DayQuerySchema, location="query")
def daily_sales(query: dict[str, Any], merchant_id: int) -> Any:
    """The day's sales per stall, dynamic charges and static-QR transfers alike."""
    return service.daily_sales(services().db, merchant_id, query["business_date"])


# -- payouts ------------------------------------------------------------------------------------
@blp.route("/merchants/<int:merchant_id>/payouts")
@blp.response(200, PayoutListSchema)
@require(owner=staff_or_oversight)
@blp.arguments(PageQuerySchema, location="query")
def merchant_payouts(query: dict[str, Any], merchant_id: int) -> Any:
    """The merchant's payout batches, oldest first."""
    return payouts.list_payouts(
        services().db,
        merchant_id=merchant_id,
        day=None,
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/merchants/payouts")
@blp.response(200, PayoutListSchema)
@require(*OVERSIGHT)
@blp.arguments(PayoutListQuerySchema, location="query")
def list_payouts(query: dict[str, Any]) -> Any:
    """Payout batches of a business day and/or a merchant (finance)."""
    return payouts.list_payouts(
        services().db,
        merchant_id=query.get("merchant_id"),
        day=query.get("business_date"),
        limit=query["limit"],
        starting_after=query.get("starting_after"),
    )


@blp.route("/merchants/payouts/runs", methods=["POST"])
@idempotent(required=True)
@blp.response(201, PayoutRunSchema)
@require(*OVERSIGHT)
@blp.arguments(PayoutRunRequestSchema)
def run_payouts(body: dict[str, Any]) -> Any:
    """Make the payout batches of a business day now (the schedule does it after midnight)."""
    return payouts.run_payouts(
        services().db,
        body["business_date"],
        merchant_id=body.get("merchant_id"),
        actor=_actor(),
        cfg=PaymentsConfig.from_settings(services().settings),
    )


@blp.route("/merchants/payouts/file")
@blp.doc(responses={200: {"description": "text/csv: the bank payout file (docs/PAYOUT_FILE.md)"}})
@require(*OVERSIGHT)
@blp.arguments(PayoutFileQuerySchema, location="query")
def payout_file(query: dict[str, Any]) -> Response:
    """The bank payout file of a business day (CSV)."""
    day = query["business_date"]
    return Response(
        payouts.payout_file(services().db, day),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="payouts-{day.isoformat()}.csv"'},
    )
