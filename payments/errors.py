"""Exceptions of the payments package; core/http.py maps them to problem+json."""

from __future__ import annotations

from core.errors import Conflict, NotFound, PreconditionFailed, Unauthorized, ValidationFailed


class PaymentNotFound(NotFound):
    code = "payment_not_found"


class IllegalTransition(Conflict):
    code = "illegal_transition"


class NotPending(Conflict):
    code = "payment_not_pending"


class InsufficientFunds(ValidationFailed):
    code = "insufficient_funds"
    title = "Insufficient funds"


class StaleRefundAmount(PreconditionFailed):
    code = "refund_amount_changed"


class RefundTooLarge(ValidationFailed):
    code = "refund_too_large"


class DayClosed(Conflict):
    code = "business_day_closed"
    title = "Business day closed"


class BadSignature(Unauthorized):
    code = "bad_signature"
    title = "Bad signature"


class SandboxDisabled(NotFound):
    code = "sandbox_disabled"
