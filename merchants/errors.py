"""Exceptions of the merchants package; core/http.py maps them to problem+json."""

from __future__ import annotations

from core.errors import Conflict, NotFound, ValidationFailed


class MerchantNotFound(NotFound):
    code = "merchant_not_found"


class StallNotFound(NotFound):
    code = "stall_not_found"


class LotNotFound(NotFound):
    code = "parking_lot_not_found"


class SessionNotFound(NotFound):
    code = "parking_session_not_found"


class UserNotFound(NotFound):
    code = "user_not_found"


class NotStaff(NotFound):
    """The caller staffs no merchant (a 404: a merchant's existence is not confirmed)."""

    code = "not_merchant_staff"


class AlreadyExists(Conflict):
    code = "already_exists"


class MerchantInactive(Conflict):
    code = "merchant_inactive"
    title = "Merchant not active"


class PlateAlreadyInside(Conflict):
    code = "plate_already_inside"
    title = "Vehicle already inside"


class LotFull(Conflict):
    code = "lot_full"
    title = "No free space for this vehicle class"


class ExitPending(Conflict):
    """The exit waits for a QR payment; cancel it before taking another method."""

    code = "exit_payment_pending"
    title = "Exit payment pending"


class PassAlreadySold(Conflict):
    code = "parking_pass_exists"
    title = "Pass already sold"


class InvalidSettlementAccount(ValidationFailed):
    code = "invalid_settlement_account"


class InvalidPlate(ValidationFailed):
    code = "invalid_plate"
