"""Exceptions of the ticketing package; core/http.py maps them to problem+json."""

from __future__ import annotations

from core.errors import Conflict, Forbidden, NotFound, ValidationFailed


class FareProductNotFound(NotFound):
    code = "fare_product_not_found"


class ConcessionCategoryNotFound(NotFound):
    code = "concession_category_not_found"


class DeviceNotFound(NotFound):
    code = "device_not_found"


class TicketNotFound(NotFound):
    code = "ticket_not_found"


class ValidatorNotFound(NotFound):
    code = "validator_not_found"


class FlagNotFound(NotFound):
    code = "revenue_flag_not_found"


class ProductUnavailable(Conflict):
    code = "fare_product_inactive"
    title = "Fare product not on sale"


class TicketNotUsable(Conflict):
    """The ticket is revoked, consumed or past its validity: no credential for it."""

    code = "ticket_not_usable"
    title = "Ticket not usable"


class DeviceMismatch(Conflict):
    code = "device_mismatch"
    title = "Ticket bound to another device"


class RebindTooSoon(Conflict):
    code = "rebind_too_soon"
    title = "Re-bound too recently"


class AlreadyExists(Conflict):
    code = "already_exists"


class FlagAlreadyResolved(Conflict):
    code = "flag_already_resolved"
    title = "Flag already decided"


class TapSequenceReused(Conflict):
    code = "tap_sequence_reused"
    title = "Validator sequence already used for another scan"


class ValidatorNotYours(Forbidden):
    code = "validator_not_yours"


class InvalidPublicKey(ValidationFailed):
    code = "invalid_public_key"


class FareRuleViolation(ValidationFailed):
    code = "fare_rule_violation"
