"""The double-entry ledger: accounts, balanced append-only journal transactions, balances.

Helpers here take the caller's session and flush; they never commit. The database enforces
the invariants as well (migration 0002): legs balance per transaction (a deferred constraint
trigger on PostgreSQL, the seal trigger on both), postings are never updated or deleted,
stored value never goes below zero, and nothing is posted into a closed business day.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, and_, event, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.errors import Conflict, NotFound
from payments.errors import DayClosed, InsufficientFunds
from payments.models import (
    AccountType,
    ClosedDay,
    JournalSeal,
    JournalTransaction,
    LedgerAccount,
    Payment,
    Posting,
    StaticCode,
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
    external_key, kind, payment_id; and, for matching and reports: memo, created_at (when the
    line was posted), payment_reference (the charge's `HC…`), stall_reference and
    terminal_label (the static code of the payment's stall), purpose, method, merchant_id,
    payment_created_at (for a static-QR payment: when the bank credited it).
    Reconciliation joins against this, never our tables.
    """
    return (
        select(
            Posting.id.label("posting_id"),
            Posting.amount.label("amount"),
            Posting.business_date.label("business_date"),
            JournalTransaction.external_key.label("external_key"),
            JournalTransaction.kind.label("kind"),
            JournalTransaction.payment_id.label("payment_id"),
            JournalTransaction.memo.label("memo"),
            JournalTransaction.created_at.label("created_at"),
            Payment.reference.label("payment_reference"),
            StaticCode.reference.label("stall_reference"),
            StaticCode.terminal_label.label("terminal_label"),
            Payment.purpose.label("purpose"),
            Payment.method.label("method"),
            Payment.merchant_id.label("merchant_id"),
            Payment.created_at.label("payment_created_at"),
        )
        .join(JournalTransaction, Posting.transaction_id == JournalTransaction.id)
        .join(LedgerAccount, Posting.account_id == LedgerAccount.id)
        .outerjoin(Payment, Payment.id == JournalTransaction.payment_id)
        .outerjoin(StaticCode, StaticCode.stall_id == Payment.stall_id)
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


# -- set-based helpers (bank credit batches on PostgreSQL) ---------------------------------------
_ACCOUNT_CACHE = "payments.ledger.account_refs"


@dataclass(frozen=True)
class AccountRef:
    """What posting needs of an account: its id and whether it may be overdrawn."""

    id: int
    code: str
    no_overdraft: bool


@dataclass(frozen=True)
class Entry:
    """One journal transaction for `post_many` (the arguments of `post`)."""

    external_key: str
    kind: str
    business_date: date
    legs: tuple[Leg, ...]
    memo: str = ""
    payment_id: int | None = None


@event.listens_for(Session, "after_soft_rollback")
def _forget_accounts(session: Session, _previous: Any) -> None:
    # An account created inside a rolled-back savepoint no longer exists: drop the cache.
    session.info.pop(_ACCOUNT_CACHE, None)


def ensure_account_by_code(session: Session, code: str) -> LedgerAccount:
    """`ensure_account` for any code whose owner the code names: system accounts,
    `wallet:{user_id}` and `merchant:{id}:payable` are created on first use; NotFound else."""
    kind, _, rest = code.partition(":")
    if kind == "wallet" and rest.isdigit():
        return wallet_account(session, int(rest))
    owner, _, suffix = rest.partition(":")
    if kind == "merchant" and owner.isdigit() and suffix == "payable":
        return merchant_payable(session, int(owner))
    return ensure_account(session, code)


def account_refs(session: Session, codes: Iterable[str]) -> dict[str, AccountRef]:
    """The accounts with these codes, created on first use (`ensure_account_by_code`).

    Cached for the session (an account never moves or disappears once committed; the cache is
    dropped on any rollback), so a session asks the database once per account code.
    """
    cache: dict[str, AccountRef] = session.info.setdefault(_ACCOUNT_CACHE, {})
    wanted = set(codes)
    missing = sorted(wanted.difference(cache))
    if missing:
        rows = session.execute(
            select(LedgerAccount.id, LedgerAccount.code, LedgerAccount.no_overdraft).where(
                LedgerAccount.code.in_(missing)
            )
        )
        for account_id, code, no_overdraft in rows:
            cache[code] = AccountRef(account_id, code, bool(no_overdraft))
        for code in missing:
            if code not in cache:
                account = ensure_account_by_code(session, code)
                cache[code] = AccountRef(account.id, code, account.no_overdraft)
    return {code: cache[code] for code in wanted}


def closed_days(session: Session, days: Iterable[date]) -> set[date]:
    """Which of these business days are closed (one query)."""
    wanted = sorted(set(days))
    if not wanted:
        return set()
    stmt = select(ClosedDay.business_date).where(ClosedDay.business_date.in_(wanted))
    return set(session.scalars(stmt))


_INSERT_JOURNALS = text(
    "INSERT INTO journal_transactions (external_key, kind, memo, business_date, payment_id,"
    " created_at)"
    " SELECT external_key, kind, memo, business_date, payment_id, :now"
    " FROM json_populate_recordset(NULL::journal_transactions, CAST(:rows AS json))"
    " ON CONFLICT (external_key) DO NOTHING RETURNING id, external_key"
)
_INSERT_POSTINGS = text(
    "INSERT INTO postings (transaction_id, account_id, amount, business_date, created_at)"
    " SELECT transaction_id, account_id, amount, business_date, :now"
    " FROM json_populate_recordset(NULL::postings, CAST(:rows AS json))"
)
_INSERT_SEALS = text(
    "INSERT INTO journal_seals (transaction_id) SELECT unnest(CAST(:txns AS bigint[]))"
)
# Lock the balance rows in id order (no deadlock between batches), then one UPDATE for all.
# NO KEY UPDATE, as a plain UPDATE takes: FOR UPDATE would conflict with the KEY SHARE locks
# that other transactions' posting inserts (foreign key checks) hold, and deadlock.
_MOVE_BALANCES = text(
    "WITH locked AS MATERIALIZED (SELECT id FROM ledger_accounts"
    " WHERE id = ANY(CAST(:ids AS bigint[])) ORDER BY id FOR NO KEY UPDATE)"
    " UPDATE ledger_accounts AS a SET balance = a.balance + v.delta"
    " FROM locked JOIN unnest(CAST(:ids AS bigint[]), CAST(:deltas AS bigint[]))"
    " AS v(id, delta) ON v.id = locked.id"
    " WHERE a.id = v.id AND (NOT a.no_overdraft OR v.delta <= 0 OR a.balance + v.delta <= 0)"
)


def post_many(session: Session, entries: Sequence[Entry]) -> dict[str, int]:
    """Post many balanced journal transactions at once (PostgreSQL only), as `post` would
    one after the other: same rows, same checks, same balances (accounts are looked up, or
    created, by `account_refs`). Returns the new transactions' ids by external key.

    Idempotent by external key (a key already posted, or repeated in `entries`, posts
    nothing again). Raises DayClosed for a closed business day and InsufficientFunds when a
    no-overdraft account's net movement would take it below zero. Each balance row is
    updated once, last, with the rows locked in id order, so the hot rows (bank clearing, a
    merchant's payable) stay locked only until the caller commits. Flushes nothing of the ORM.
    """
    unique: dict[str, Entry] = {}
    for entry in entries:
        if len(entry.legs) < 2 or sum(leg.amount for leg in entry.legs) != 0:
            raise ValueError("a journal transaction needs two or more non-zero legs summing to 0")
        if any(leg.amount == 0 for leg in entry.legs):
            raise ValueError("a journal transaction needs two or more non-zero legs summing to 0")
        unique.setdefault(entry.external_key, entry)
    if not unique:
        return {}
    for day in sorted(closed_days(session, (entry.business_date for entry in unique.values()))):
        check_day_open(session, day)
    accounts = account_refs(session, (leg.account for e in unique.values() for leg in e.legs))
    ids = _insert_journals(session, list(unique.values()))
    posted = [entry for key, entry in unique.items() if key in ids]
    _insert_postings(session, posted, ids, accounts)
    deltas: dict[int, int] = {}
    for entry in posted:
        for leg in entry.legs:
            account_id = accounts[leg.account].id
            deltas[account_id] = deltas.get(account_id, 0) + leg.amount
    move_balances(session, deltas)
    return ids


def _insert_journals(session: Session, entries: list[Entry]) -> dict[str, int]:
    rows = json_rows(
        [
            {
                "external_key": entry.external_key,
                "kind": entry.kind,
                "memo": entry.memo[:500],
                "business_date": entry.business_date,
                "payment_id": entry.payment_id,
            }
            for entry in entries
        ]
    )
    found = session.execute(_INSERT_JOURNALS, {"now": utcnow(), "rows": rows})
    return {str(key): int(txn_id) for txn_id, key in found}


def _insert_postings(
    session: Session, entries: list[Entry], ids: dict[str, int], accounts: dict[str, AccountRef]
) -> None:
    if not entries:
        return
    rows = [
        {
            "transaction_id": ids[entry.external_key],
            "account_id": accounts[leg.account].id,
            "amount": leg.amount,
            "business_date": entry.business_date,
        }
        for entry in entries
        for leg in entry.legs
    ]
    session.execute(_INSERT_POSTINGS, {"now": utcnow(), "rows": json_rows(rows)})
    # Sealing checks each transaction balances (a trigger); the deferred check runs at commit.
    session.execute(_INSERT_SEALS, {"txns": [ids[entry.external_key] for entry in entries]})


def json_rows(rows: list[dict[str, Any]]) -> str:
    """Rows as one JSON parameter for `json_populate_recordset(NULL::table, …)` (dates and
    times in ISO 8601): one parameter for a whole batch, far cheaper to send than one array
    per column."""
    return json.dumps(rows, default=_iso, separators=(",", ":"))


def _iso(value: object) -> str:
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def move_balances(session: Session, deltas: dict[int, int]) -> None:
    """Add each account's net movement to its balance: one UPDATE, rows locked in id order.

    Raises InsufficientFunds when a no-overdraft account would go below zero. Loaded ORM
    accounts have their balance expired, so they re-read it.
    """
    moving = {account_id: delta for account_id, delta in sorted(deltas.items()) if delta}
    if not moving:
        return
    result = session.execute(_MOVE_BALANCES, {"ids": list(moving), "deltas": list(moving.values())})
    if result.rowcount != len(moving):  # type: ignore[attr-defined]
        raise InsufficientFunds("not enough money in the wallet")
    for obj in list(session.identity_map.values()):
        if isinstance(obj, LedgerAccount) and obj.id in moving:
            session.expire(obj, ["balance"])
