"""The vendor's checkout page (`/vendor`), the printable stall poster and the parking
attendant's page (`/parking`).

Server-rendered, Vietnamese by default; the pages' own JavaScript (static/merchants/) calls the
JSON API with the session cookie and the CSRF header, and follows a charge's live status over
Server-Sent Events.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, url_for
from flask_babel import gettext as _

from core.auth import Principal, current_principal
from core.errors import Forbidden
from core.http import services
from merchants import lots, service
from merchants.errors import NotStaff
from merchants.schemas import LotSchema, MerchantSchema, StallQRSchema
from merchants.tariffs import VehicleClass

bp = Blueprint(
    "merchants_pages",
    __name__,
    template_folder="templates",
    static_folder="static/merchants",
    static_url_path="/static/merchants",
)


def _page_user(path: str, *roles: str) -> Principal | Response:
    principal = current_principal(optional=True)
    if principal is None:
        return redirect(url_for("site.login", next=path))  # type: ignore[return-value]
    if not principal.has(*roles):
        raise Forbidden("this page is for merchant staff", code="forbidden_role")
    return principal


def class_names() -> dict[str, str]:
    return {
        VehicleClass.BICYCLE: _("Bicycle"),
        VehicleClass.MOTORBIKE: _("Motorbike"),
        VehicleClass.CAR_SMALL: _("Car (up to 9 seats)"),
        VehicleClass.CAR_LARGE: _("Car (more than 9 seats)"),
    }


def _vendor_messages() -> dict[str, str]:
    return {
        "pending": _("Waiting for payment"),
        "succeeded": _("Paid"),
        "expired": _("Expired"),
        "cancelled": _("Cancelled"),
        "failed": _("Failed"),
        "amount_mismatch": _("The transfer has the wrong amount: check with the customer."),
        "bad_amount": _("Type an amount in đồng, e.g. 15000."),
        "error": _("Something went wrong. Try again."),
        "sound_on": _("Sound on"),
        "sound_off": _("Turn on sound"),
        "static": _("Static QR"),
        "dynamic": _("Dynamic QR"),
        "no_sales": _("No sales yet today."),
    }


@bp.get("/vendor")
def vendor_page() -> str | Response:
    """The vendor's checkout: amount → QR → "Đã thanh toán" (and spoken), today's sales."""
    user = _page_user("/vendor", "vendor", "admin")
    if not isinstance(user, Principal):
        return user
    try:
        merchant: Any = service.my_merchant(services().db, user.user_id)
    except NotStaff:
        merchant = None
    boot = {
        "merchant": MerchantSchema().dump(merchant) if merchant else None,
        "messages": _vendor_messages(),
    }
    return render_template("merchants/vendor.html", principal=user, merchant=merchant, boot=boot)


@bp.get("/vendor/stalls/<int:stall_id>/poster")
def poster_page(stall_id: int) -> str | Response:
    """The stall's printable poster: name, static QR, "Quét mã để thanh toán", empty amount."""
    user = _page_user(f"/vendor/stalls/{stall_id}/poster", "vendor", "admin")
    if not isinstance(user, Principal):
        return user
    merchant = service.my_merchant(services().db, user.user_id)
    code = service.stall_code(services().db, merchant.id, stall_id)
    return render_template(
        "merchants/poster.html", principal=user, code=code, qr=StallQRSchema().dump(code)
    )


def _parking_messages() -> dict[str, Any]:
    return {
        "classes": class_names(),
        "entered": _("Entry recorded"),
        "already_inside": _("This vehicle is already inside."),
        "lot_full": _("No free space for this vehicle class."),
        "bad_plate": _("Check the plate number."),
        "free": _("Free (within the grace period)"),
        "pass": _("Monthly pass"),
        "day_window": _("Day"),
        "night_window": _("Night"),
        "hours": _("Period"),
        "hours_unit": _("h"),
        "capped": _("daily cap"),
        "paid": _("Paid"),
        "pending": _("Waiting for payment"),
        "cash_taken": _("Cash taken"),
        "expired": _("Expired"),
        "cancelled": _("Cancelled"),
        "error": _("Something went wrong. Try again."),
        "exit": _("Exit"),
        "no_vehicles": _("No vehicles inside."),
        "lookup_paid": _("Paid"),
        "lookup_unpaid": _("Not paid"),
        "valid_until": _("valid until"),
    }


@bp.get("/parking")
def parking_page() -> str | Response:
    """The attendant's page: entry by plate, occupancy, exit with price, breakdown and QR."""
    user = _page_user("/parking", "attendant", "admin")
    if not isinstance(user, Principal):
        return user
    views = lots.lots_for(services().db, user.user_id, user.roles)
    boot = {
        "lots": LotSchema(many=True).dump(views),
        "messages": _parking_messages(),
    }
    return render_template(
        "merchants/parking.html", principal=user, lots=views, classes=class_names(), boot=boot
    )
