"""What becomes of one bank credit (SPEC §4, §13): matched to a payment, or parked in suspense.

Pure: no Flask, no database. Both ways of receiving credits (one by one, and the set-based
batch path on PostgreSQL) decide with `classify`, so the rule exists once.

The order of the checks is the rule: the wrong collection account first, then a missing
reference, then what the reference points at (a stall's static code, or a charge that must
still be pending and be paid its exact amount).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from payments.states import PaymentStatus


@dataclass(frozen=True)
class IncomingCredit:
    """One credit to our collection account, as the bank notifies it."""

    transaction_id: str
    account_number: str
    amount: int
    credited_at: datetime
    description: str = ""
    counterparty_name: str | None = None
    counterparty_account: str | None = None
    counterparty_bank_bin: str | None = None


@dataclass(frozen=True)
class Outcome:
    """`matched`, `suspense` (with its reason) or `duplicate`, and the payment it concerns."""

    status: str
    payment_id: int | None = None
    reason: str | None = None


@dataclass(frozen=True)
class ChargeState:
    """What matching needs to know of the charge a reference names."""

    status: str
    amount: int


@dataclass(frozen=True)
class Decision:
    """`matched` credits are posted to the payment's beneficiary, the others to suspense.

    `linked`: the credit names an existing charge (the notification and the suspense posting
    carry its payment id). `new_static_payment`: a stall's credit becomes a new payment.
    `amount_mismatch`: the charge's live stream is told.
    """

    matched: bool
    reason: str | None = None
    linked: bool = False
    new_static_payment: bool = False
    amount_mismatch: bool = False


def _suspense(reason: str, *, linked: bool = False, mismatch: bool = False) -> Decision:
    return Decision(False, reason, linked=linked, amount_mismatch=mismatch)


def classify(
    *,
    amount: int,
    right_account: bool,
    kind: str | None,
    stall_known: bool = False,
    charge: ChargeState | None = None,
) -> Decision:
    """Decide one credit of `amount` whose note carries a reference of `kind` (`"charge"`,
    `"stall"`, or None for no reference).

    `stall_known`: a stall reference names a registered static code. `charge`: the state of
    the charge a charge reference names (None when no payment has it).
    """
    if not right_account:
        return _suspense("wrong_account")
    if kind is None:
        return _suspense("no_reference")
    if kind == "stall":
        return Decision(True, new_static_payment=True) if stall_known else _unknown()
    if charge is None:
        return _unknown()
    if charge.status != PaymentStatus.PENDING:
        return _suspense(late_reason(charge.status), linked=True)
    if amount != charge.amount:
        return _suspense("amount_mismatch", linked=True, mismatch=True)
    return Decision(True, linked=True)


def _unknown() -> Decision:
    return _suspense("unknown_reference")


def late_reason(status: str) -> str:
    """Why a credit for a charge that is no longer pending went to suspense."""
    return "late_credit" if status == PaymentStatus.EXPIRED else f"payment_{status}"


def payment_memo(reference: str | None, purpose: str) -> str:
    """The memo of a matched credit's journal transaction (`None charge` for a stall's)."""
    return f"{reference} {purpose}"


def suspense_memo(reason: str) -> str:
    return f"suspense: {reason}"
