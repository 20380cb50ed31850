"""Exceptions of fees and waivers; core/http.py maps them to problem+json."""

from __future__ import annotations

from core.errors import Conflict, NotFound, ValidationFailed


class ServiceNotFound(NotFound):
    code = "public_service_not_found"
    title = "No such public service"


class ApplicationNotFound(NotFound):
    code = "fee_application_not_found"
    title = "No such application"


class ReceiptNotFound(NotFound):
    code = "receipt_not_found"
    title = "No such receipt"


class WaiverRuleNotFound(NotFound):
    code = "waiver_rule_not_found"
    title = "No such waiver rule"


class NoFeeInEffect(Conflict):
    code = "no_fee_in_effect"
    title = "No fee in effect"


class ServiceExists(Conflict):
    code = "public_service_exists"
    title = "Public service exists"


class NothingToPay(Conflict):
    code = "nothing_to_pay"
    title = "Nothing to pay"


class BackdatedVersion(ValidationFailed):
    code = "effective_from_in_past"
    title = "Effective date in the past"


class OnlineFeeAboveCounter(ValidationFailed):
    code = "online_fee_above_counter"
    title = "Online fee above the counter fee"
