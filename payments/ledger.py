"""The double-entry ledger: accounts, balanced append-only journal transactions, balances.

Helpers here take the caller's session and flush; they never commit. The database enforces
the invariants as well (migration 0002): legs balance per transaction (a deferred constraint
trigger on PostgreSQL, the seal trigger on both), postings are never updated or deleted,
stored value never goes below zero, and nothing is posted into a closed business day.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import Select, and_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import Conflict, NotFound
from payments.errors import DayClosed, InsufficientFunds
from payments.models import (
    AccountType,
    ClosedDay,
    JournalSeal,
    JournalTransaction,
    LedgerAccount,
    Posting,
)

# Accounts every installation has (code → type, name).
SYSTEM_ACCOUNTS: dict[str, tuple[AccountType, str]] = {
    "bank_clearing": (AccountType.ASSET, "Bank collection account (clearing)"),
    "suspense": (AccountType.LIABILITY, "Suspense: unmatched money"),
    "transit_revenue": (AccountType.REVENUE, "Transit fare revenue"),
    "fee_revenue": (AccountType.REVENUE, "Public-service fee revenue"),
    "fees_waived": (AccountType.EXPENSE, "Public-service fees waived (memo)"),
    "fee_waiver_memo": (AccountType.REVENUE, "Public-service fee revenue foregone (memo)"),
    "parking_revenue": (AccountType.REVENUE, "Parking fee revenue (city treasury)"),
    "refunds_payable": (AccountType.LIABILITY, "Refunds owed to payers' bank accounts"),
    "payouts_in_transit": (AccountType.ASSET, "Payouts sent, not yet debited"),
    "write_offs": (AccountType.EXPENSE, "Reconciliation write-offs"),
    "bank_fees": (AccountType.EXPENSE, "Bank fees netted from settlements"),
    "sandbox_funding": (AccountType.ASSET, "Sandbox/demo funding (never in production)"),
    "merchant_discount_revenue": (AccountType.REVENUE, "Merchant discount revenue"),
}


@dataclass(frozen=True)
class Leg:
    account: str  # account code
    amount: int  # positive = debit, negative = credit


def _insert(session: Session):  # type: ignore[no-untyped-def]
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def ensure_account(
    session: Session,
    code: str,
    type_: AccountType | None = None,
    name: str = "",
    *,
    owner_type: str | None = None,
    owner_id: object = None,
    no_overdraft: bool = False,
) -> LedgerAccount:
    """The account with `code`, created on first use (race-safe: ON CONFLICT DO NOTHING)."""
    account = session.scalars(select(LedgerAccount).where(LedgerAccount.code == code)).first()
    if account is not None:
        return account
    if type_ is None:
        if code not in SYSTEM_ACCOUNTS:
            raise NotFound(f"no ledger account {code!r}")
        type_, name = SYSTEM_ACCOUNTS[code]
    session.execute(
        _insert(session)(LedgerAccount)
        .values(
            code=code,
            type=type_,
            name=name or code,
            owner_type=owner_type,
            owner_id=None if owner_id is None else str(owner_id),
            no_overdraft=no_overdraft,
            balance=0,
        )
        .on_conflict_do_nothing()
    )
    return session.scalars(select(LedgerAccount).where(LedgerAccount.code == code)).one()


def wallet_code(user_id: int) -> str:
    return f"wallet:{user_id}"


def wallet_account(session: Session, user_id: int) -> LedgerAccount:
    """A commuter's stored value: a liability that can never be overdrawn."""
    return ensure_account(
        session,
        wallet_code(user_id),
        AccountType.LIABILITY,
        f"Wallet of user {user_id}",
        owner_type="user",
        owner_id=user_id,
        no_overdraft=True,
    )


def merchant_payable_code(merchant_id: int) -> str:
    return f"merchant:{merchant_id}:payable"


def merchant_payable(session: Session, merchant_id: int) -> LedgerAccount:
    return ensure_account(
        session,
        merchant_payable_code(merchant_id),
        AccountType.LIABILITY,
        f"Owed to merchant {merchant_id}",
        owner_type="merchant",
        owner_id=merchant_id,
    )


def check_day_open(session: Session, day: date) -> None:
    if session.get(ClosedDay, day) is not None:
        raise DayClosed(f"business day {day.isoformat()} is closed; post into an open day")


def existing_transaction(session: Session, external_key: str) -> JournalTransaction | None:
    return session.scalars(
        select(JournalTransaction).where(JournalTransaction.external_key == external_key)
    ).first()


def post(
    session: Session,
    *,
    external_key: str,
    kind: str,
    business_date: date,
    legs: Sequence[Leg],
    memo: str = "",
    payment_id: int | None = None,
    reverses_id: int | None = None,
) -> JournalTransaction:
    """Post one balanced journal transaction and move the balances.

    Idempotent by `external_key`: posting the same key again returns the first transaction and
    moves nothing. Raises InsufficientFunds when a no-overdraft account would go below zero
    (checked by a conditional UPDATE, so concurrent spends cannot overdraw) and DayClosed for a
    closed business day. Flushes; the caller's transaction commits.
    """
    if (
        len(legs) < 2
        or sum(leg.amount for leg in legs) != 0
        or any(leg.amount == 0 for leg in legs)
    ):
        raise ValueError("a journal transaction needs two or more non-zero legs summing to 0")
    found = existing_transaction(session, external_key)
    if found is not None:
        return found
    check_day_open(session, business_date)
    accounts = {leg.account: ensure_account(session, leg.account) for leg in legs}
    try:
        with session.begin_nested():
            txn = JournalTransaction(
                external_key=external_key,
                kind=kind,
                memo=memo[:500],
                business_date=business_date,
                payment_id=payment_id,
                reverses_id=reverses_id,
            )
            session.add(txn)
            session.flush()
    except IntegrityError:
        # A concurrent twin posted the same key first: that one stands.
        found = existing_transaction(session, external_key)
        if found is None:
            raise
        return found
    # Lock accounts in a fixed order so two transactions never deadlock on each other.
    for leg in sorted(legs, key=lambda item: accounts[item.account].id):
        _move_balance(session, accounts[leg.account], leg.amount)
    session.add_all(
        [
            Posting(
                transaction_id=txn.id,
                account_id=accounts[leg.account].id,
                amount=leg.amount,
                business_date=business_date,
            )
            for leg in legs
        ]
    )
    session.flush()
    session.add(JournalSeal(transaction_id=txn.id))
    session.flush()
    return txn


def _move_balance(session: Session, account: LedgerAccount, amount: int) -> None:
    stmt = (
        update(LedgerAccount)
        .where(LedgerAccount.id == account.id)
        .values(balance=LedgerAccount.balance + amount)
    )
    if account.no_overdraft and amount > 0:
        # A debit of credit-normal stored value: only while enough is left.
        stmt = stmt.where(LedgerAccount.balance + amount <= 0)
    result = session.execute(stmt.execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise InsufficientFunds("not enough money in the wallet")
    session.expire(account, ["balance"])


def reverse(
    session: Session, txn_id: int, *, external_key: str, business_date: date, memo: str = ""
) -> JournalTransaction:
    """Post the mirror image of a transaction (a correction never edits the original)."""
    original = session.get(JournalTransaction, txn_id)
    if original is None:
        raise NotFound("no such journal transaction")
    already = session.scalars(
        select(JournalTransaction).where(JournalTransaction.reverses_id == txn_id)
    ).first()
    if already is not None and already.external_key != external_key:
        raise Conflict("this transaction was already reversed", code="already_reversed")
    legs = [
        Leg(account.code, -posting.amount)
        for posting, account in session.execute(
            select(Posting, LedgerAccount)
            .join(LedgerAccount, Posting.account_id == LedgerAccount.id)
            .where(Posting.transaction_id == txn_id)
            .order_by(Posting.id)
        )
    ]
    return post(
        session,
        external_key=external_key,
        kind=f"reversal:{original.kind}",
        business_date=business_date,
        legs=legs,
        memo=memo or f"reverses {txn_id}",
        payment_id=original.payment_id,
        reverses_id=txn_id,
    )


def balance(session: Session, code: str) -> int:
    """Debits minus credits of an account (0 when it does not exist yet)."""
    value = session.scalar(select(LedgerAccount.balance).where(LedgerAccount.code == code))
    return int(value or 0)


def spendable(session: Session, user_id: int) -> int:
    """What a commuter can spend: the wallet's credit balance."""
    return -balance(session, wallet_code(user_id))


def postings_of(session: Session, code: str) -> Select[*tuple[Any, ...]]:
    """Postings of one account with their transactions (caller adds filters and order)."""
    return (
        select(Posting, JournalTransaction)
        .join(JournalTransaction, Posting.transaction_id == JournalTransaction.id)
        .join(
            LedgerAccount, and_(Posting.account_id == LedgerAccount.id, LedgerAccount.code == code)
        )
    )


def clearing_lines() -> Select[*tuple[Any, ...]]:
    """Read-only selectable of bank-clearing ledger lines, for set-based reconciliation.

    Columns: posting_id, amount (debit positive = money into the bank), business_date,
    external_key, kind, payment_id. Reconciliation joins against this, never our tables.
    """
    return (
        select(
            Posting.id.label("posting_id"),
            Posting.amount.label("amount"),
            Posting.business_date.label("business_date"),
            JournalTransaction.external_key.label("external_key"),
            JournalTransaction.kind.label("kind"),
            JournalTransaction.payment_id.label("payment_id"),
        )
        .join(JournalTransaction, Posting.transaction_id == JournalTransaction.id)
        .join(LedgerAccount, Posting.account_id == LedgerAccount.id)
        .where(LedgerAccount.code == "bank_clearing")
    )


def close_day(session: Session, day: date, actor: str) -> ClosedDay:
    """Mark a business day closed (reconciliation decides when). Idempotent."""
    found = session.get(ClosedDay, day)
    if found is not None:
        return found
    closed = ClosedDay(business_date=day, closed_by=actor)
    session.add(closed)
    session.flush()
    return closed
