"""What a reconciliation run calls each outcome, and the rules that pick one (SPEC §9, §13).

Pure: no Flask, no database. The SQL phases in `reconciliation/phases.py` read their constants
and their precedence from here, and docs/RECONCILIATION.md explains them to finance staff.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Exactly the categories of SPEC §9."""

    MATCHED = "matched"
    MATCHED_WITH_FEE = "matched_with_fee"
    AMOUNT_MISMATCH = "amount_mismatch"
    MISSING_IN_BANK = "missing_in_bank"  # in our ledger, not on the statement
    MISSING_IN_LEDGER = "missing_in_ledger"  # on the statement, not (attributed) in our ledger
    DUPLICATE = "duplicate"  # another bank id for an entry that is already matched
    OTHER_DAY = "other_day"  # matches an entry of another business day


class Method(StrEnum):
    """How a pair was found, in the order the phases run."""

    TXN_ID = "txn_id"  # the statement line's bank id is the notification's transaction id
    REFERENCE = "reference"  # our payment reference in the description
    AMOUNT_TIME = "amount_time"  # static stall QR: amount, time window, stall reference/label
    BATCH = "batch"  # one line settles several ledger lines (possibly net of a fee)
    PAYOUT = "payout"  # a DR line pays one payout batch
    NONE = "none"


class Action(StrEnum):
    ACCEPT = "accept"
    WRITE_OFF = "write_off"
    LINK = "link"
    ADJUST = "adjust"


class Phase(StrEnum):
    """A run's phases with the progress (percent) reached when each one is done."""

    QUEUED = "queued"
    LOAD = "load"
    TXN_ID = "txn_id"
    REFERENCE = "reference"
    AMOUNT_TIME = "amount_time"
    BATCH = "batch"
    PAYOUT = "payout"
    CLASSIFY = "classify"
    DONE = "done"


PROGRESS = {
    Phase.QUEUED: 0,
    Phase.LOAD: 15,
    Phase.TXN_ID: 30,
    Phase.REFERENCE: 45,
    Phase.AMOUNT_TIME: 55,
    Phase.BATCH: 65,
    Phase.PAYOUT: 75,
    Phase.CLASSIFY: 95,
    Phase.DONE: 100,
}

MATCHED_CATEGORIES = frozenset({Category.MATCHED, Category.MATCHED_WITH_FEE})
# SPEC §13: only non-matched categories need a resolution before the day can close.
NEEDS_RESOLUTION = frozenset(Category) - MATCHED_CATEGORIES

# Lines and ledger lines this many business days either side of the run's day take part in
# matching, so a line booked at 23:58 whose credit was posted after midnight is `other_day`.
NEIGHBOUR_DAYS = 2
# Static stall QR: the bank books the transfer within seconds of notifying us; 15 minutes
# absorbs clock skew and retries without letting two different sales look alike.
TIME_WINDOW_SECONDS = 15 * 60
# A batch settlement that arrives short by at most this share of its total is taken as
# netted of the acquirer's fee (basis points: 500 = 5 %); more than that is a mismatch.
MAX_FEE_BASIS_POINTS = 500
# The payout note the bank shows: `PAYOUT <business date> <merchant>` (normalised).
PAYOUT_PREFIX = "PAYOUT"
# Ledger lines that reconciliation posted itself (write-offs, adjustments) are the answers to
# items, not new discrepancies.
OWN_KIND_PREFIX = "recon_"

# payments parks a credit in suspense with memo "suspense: <reason>" (payments/notifications.py).
SUSPENSE_MEMO_PREFIX = "suspense: "
# The payer paid a charge that had already been paid: a second credit for one entry.
DUPLICATE_SUSPENSE_REASONS = ("payment_succeeded", "payment_partially_refunded", "payment_refunded")
AMOUNT_MISMATCH_SUSPENSE_REASONS = ("amount_mismatch",)


def suspense_memos(reasons: tuple[str, ...]) -> list[str]:
    """The ledger memos that payments writes for credits parked for these reasons."""
    return [SUSPENSE_MEMO_PREFIX + reason for reason in reasons]


def fee_category(ledger_total: int, line_amount: int) -> tuple[Category, int | None]:
    """A batch line against the ledger lines it names: matched, netted of a fee, or not.

    Returns the category and the fee (None unless `matched_with_fee`).
    """
    fee = ledger_total - line_amount
    if fee == 0:
        return Category.MATCHED, None
    if 0 < fee * 10_000 <= ledger_total * MAX_FEE_BASIS_POINTS:
        return Category.MATCHED_WITH_FEE, fee
    return Category.AMOUNT_MISMATCH, None
