"""The payment state machine (SPEC §13 "Payment states"): a pure transition table."""

from __future__ import annotations

from enum import StrEnum


class PaymentStatus(StrEnum):
    PENDING = "pending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"


S = PaymentStatus
TRANSITIONS: dict[PaymentStatus, frozenset[PaymentStatus]] = {
    S.PENDING: frozenset({S.SUCCEEDED, S.FAILED, S.EXPIRED, S.CANCELLED}),
    # Only a finance resolution of a late credit revives an expired charge.
    S.EXPIRED: frozenset({S.SUCCEEDED}),
    S.SUCCEEDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.PARTIALLY_REFUNDED: frozenset({S.PARTIALLY_REFUNDED, S.REFUNDED}),
    S.FAILED: frozenset(),
    S.CANCELLED: frozenset(),
    S.REFUNDED: frozenset(),
}
REFUNDABLE = frozenset({S.SUCCEEDED, S.PARTIALLY_REFUNDED})
TERMINAL = frozenset({S.FAILED, S.CANCELLED, S.REFUNDED})


def can_transition(current: str, target: str) -> bool:
    """True when the table allows `current → target`."""
    return PaymentStatus(target) in TRANSITIONS[PaymentStatus(current)]


def status_after_refund(amount: int, refunded_total: int) -> PaymentStatus:
    """A refund leaves a payment refunded when nothing is left, else partially refunded."""
    if refunded_total > amount:
        raise ValueError("refunds exceed the payment")
    return S.REFUNDED if refunded_total == amount else S.PARTIALLY_REFUNDED
