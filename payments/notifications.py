"""Credits the bank tells us about: match them to payments, or park them in suspense.

Every notification is stored once (unique bank transaction id), so a duplicate posts nothing.
Unmatched, late, wrong-account and wrong-amount credits go to the suspense account, where
reconciliation finds them; nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import audit
from core.clock import as_utc, business_date, utcnow
from core.db import Database
from core.errors import Conflict, NotFound
from core.events import publish_after_commit
from payments import bulk_credits, ledger
from payments.bank import our_reference
from payments.credit_rules import (
    ChargeState,
    IncomingCredit,
    Outcome,
    classify,
    payment_memo,
    suspense_memo,
)
from payments.ledger import Leg
from payments.models import (
    BankNotification,
    ClosedDay,
    NotificationStatus,
    Payment,
    StaticCode,
)
from payments.service import PaymentsConfig, event_payload, lock_payment, succeed
from payments.states import PaymentStatus


def receive(db: Database, cfg: PaymentsConfig, credit: IncomingCredit) -> Outcome:
    """Record, match and post one credit. Idempotent by the bank's transaction id (a repeat is
    `duplicate` and posts nothing); locks the payment its reference names; moves money (bank
    clearing → the payment's beneficiary, or → suspense)."""
    return receive_many(db, cfg, [credit])[0]


def receive_many(db: Database, cfg: PaymentsConfig, credits: list[IncomingCredit]) -> list[Outcome]:
    """Record, match and post many credits in one transaction, with exactly the outcomes of
    `record_credit` called for each in order (a transaction id repeated inside the batch is a
    `duplicate`; a second credit for one charge finds it paid). Idempotent by transaction id;
    moves money. On PostgreSQL set-based (`bulk_credits`), elsewhere one credit at a time."""
    with db.transaction() as session:
        now = utcnow()
        if session.get_bind().dialect.name == "postgresql":
            return bulk_credits.record_credits(session, cfg, credits, now)
        return [record_credit(session, cfg, credit, now) for credit in credits]


def receive_each(db: Database, cfg: PaymentsConfig, credits: list[IncomingCredit]) -> list[Outcome]:
    """`receive_many` one credit at a time on any database (the reference for the set-based
    path; the only path on SQLite)."""
    with db.transaction() as session:
        now = utcnow()
        return [record_credit(session, cfg, credit, now) for credit in credits]


@dataclass(frozen=True)
class _Note:
    """A notification just stored (what matching needs; no second read of the row)."""

    id: int
    credit: IncomingCredit
    found: tuple[str, str] | None
    business_date: date
    received_at: datetime


def _posting_day(session: Session, credited_at: datetime, now: datetime) -> date:
    """The credit's own business day, or today when that day is already closed (SPEC §13)."""
    day = business_date(credited_at)
    return business_date(now) if session.get(ClosedDay, day) is not None else day


def record_credit(
    session: Session, cfg: PaymentsConfig, credit: IncomingCredit, now: datetime
) -> Outcome:
    """Store the notification (or notice the duplicate), then match or park it. Flushes."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    found = our_reference(credit.description)
    day = _posting_day(session, credit.credited_at, now)
    row_id = session.execute(
        insert(BankNotification)
        .values(
            transaction_id=credit.transaction_id,
            account_number=credit.account_number,
            amount=credit.amount,
            credited_at=as_utc(credit.credited_at),
            description=credit.description[:500],
            counterparty_name=credit.counterparty_name,
            counterparty_account=credit.counterparty_account,
            counterparty_bank_bin=credit.counterparty_bank_bin,
            status="new",
            reference=found[1] if found else None,
            received_at=now,
            business_date=day,
        )
        .on_conflict_do_nothing()
        .returning(BankNotification.id)
    ).scalar()
    if row_id is None:
        return Outcome(NotificationStatus.DUPLICATE)
    outcome = _match(session, cfg, _Note(row_id, credit, found, day, now))
    session.execute(
        update(BankNotification)
        .where(BankNotification.id == row_id)
        .values(status=outcome.status, reason=outcome.reason, payment_id=outcome.payment_id)
    )
    return outcome


def _match(session: Session, cfg: PaymentsConfig, note: _Note) -> Outcome:
    ours = note.credit.account_number == cfg.account
    kind, reference = note.found or (None, None)
    code = payment = None
    if ours and kind == "stall":
        code = session.scalars(select(StaticCode).where(StaticCode.reference == reference)).first()
    elif ours and kind == "charge":
        payment = session.scalars(
            select(Payment).where(Payment.reference == reference).with_for_update()
        ).first()
    decision = classify(
        amount=note.credit.amount,
        right_account=ours,
        kind=kind,
        stall_known=code is not None,
        charge=ChargeState(payment.status, payment.amount) if payment else None,
    )
    if decision.new_static_payment and code is not None:
        payment = _static_payment(session, note, code)
    if decision.matched and payment is not None:
        _settle_credit(session, note, payment, now=note.received_at)
        return Outcome(NotificationStatus.MATCHED, payment.id)
    linked = payment if decision.linked else None
    outcome = _to_suspense(session, note, str(decision.reason), linked)
    if decision.amount_mismatch and linked is not None:
        _announce_mismatch(session, linked, note.credit.amount)
    return outcome


def _announce_mismatch(session: Session, payment: Payment, received: int) -> None:
    publish_after_commit(
        session,
        f"payment:{payment.id}",
        {
            "type": "amount_mismatch",
            "payment_id": payment.id,
            "expected": payment.amount,
            "received": received,
            "status": payment.status,
        },
    )


def _settle_credit(session: Session, note: _Note, payment: Payment, now: datetime) -> None:
    credit = note.credit
    ledger.post(
        session,
        external_key=f"bank:{credit.transaction_id}",
        kind="bank_credit",
        business_date=note.business_date,
        payment_id=payment.id,
        memo=payment_memo(payment.reference, payment.purpose),
        legs=[
            Leg("bank_clearing", credit.amount),
            Leg(_beneficiary(session, payment), -credit.amount),
        ],
    )
    payment.counterparty_account = credit.counterparty_account
    payment.counterparty_bank_bin = credit.counterparty_bank_bin
    payment.counterparty_name = credit.counterparty_name
    succeed(session, payment, now, credit.transaction_id)


def _beneficiary(session: Session, payment: Payment) -> str:
    """The account a payment credits, made on first use (a merchant's payable, a wallet)."""
    codes = {payment.credit_account}
    if payment.merchant_id is not None and payment.credit_account.startswith("merchant:"):
        codes.add(ledger.merchant_payable_code(payment.merchant_id))
    ledger.account_refs(session, codes)  # cached per session: asked once per account
    return payment.credit_account


def _static_payment(session: Session, note: _Note, code: StaticCode) -> Payment:
    """A stall's credit becomes a payment of the amount paid (pending until settled)."""
    payment = Payment(
        reference=None,
        amount=note.credit.amount,
        method="vietqr",
        status=PaymentStatus.PENDING,
        purpose="charge",
        owner_ref=f"stall:{code.stall_id}",
        credit_account=code.credit_account,
        merchant_id=code.merchant_id,
        stall_id=code.stall_id,
        description="Static stall QR",
        external_key=f"static:{note.credit.transaction_id}",
        business_date=note.business_date,
        created_at=as_utc(note.credit.credited_at),
    )
    session.add(payment)
    session.flush()
    return payment


def _to_suspense(
    session: Session, note: _Note, reason: str, payment: Payment | None = None
) -> Outcome:
    ledger.post(
        session,
        external_key=f"bank:{note.credit.transaction_id}",
        kind="bank_credit_suspense",
        business_date=note.business_date,
        payment_id=payment.id if payment else None,
        memo=suspense_memo(reason),
        legs=[Leg("bank_clearing", note.credit.amount), Leg("suspense", -note.credit.amount)],
    )
    return Outcome(NotificationStatus.SUSPENSE, payment.id if payment else None, reason)


def list_suspense(
    db: Database, limit: int = 100, starting_after: int | None = None
) -> dict[str, Any]:
    """Credits waiting in suspense (not yet resolved), oldest first."""
    from core.pagination import paginate

    stmt = select(BankNotification).where(
        BankNotification.status == "suspense", BankNotification.resolved_at.is_(None)
    )
    with db.reader() as session:
        return dict(paginate(session, stmt, BankNotification.id, limit, starting_after))


def apply_suspense_to_payment(
    session: Session, notification_id: int, payment_id: int, actor: str, note_text: str
) -> Payment:
    """Finance matches a parked credit to a payment by hand (a late credit revives an
    expired charge). Moves suspense → the payment's beneficiary; audited. Flushes only."""
    note = _open_suspense(session, notification_id)
    payment = lock_payment(session, payment_id)
    if note.amount != payment.amount:
        raise Conflict("the credit's amount differs from the payment's", code="amount_mismatch")
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.EXPIRED):
        raise Conflict(
            f"a {payment.status} payment cannot take this credit", code="illegal_transition"
        )
    now = utcnow()
    ledger.post(
        session,
        external_key=f"suspense:{note.id}:apply",
        kind="suspense_applied",
        business_date=business_date(now),
        payment_id=payment.id,
        memo=f"late credit {note.transaction_id}",
        legs=[Leg("suspense", note.amount), Leg(_beneficiary(session, payment), -note.amount)],
    )
    payment.counterparty_account = note.counterparty_account
    payment.counterparty_bank_bin = note.counterparty_bank_bin
    succeed(session, payment, now, note.transaction_id)
    _resolve(session, note, actor, note_text, {"payment_id": payment.id})
    return payment


def refund_suspense(session: Session, notification_id: int, actor: str, note_text: str) -> None:
    """Send a parked credit back to the payer (via the bank payout file); audited."""
    note = _open_suspense(session, notification_id)
    ledger.post(
        session,
        external_key=f"suspense:{note.id}:refund",
        kind="suspense_refund",
        business_date=business_date(utcnow()),
        memo=f"return {note.transaction_id}",
        legs=[Leg("suspense", note.amount), Leg("refunds_payable", -note.amount)],
    )
    _resolve(session, note, actor, note_text, {"refunded": note.amount})


def _open_suspense(session: Session, notification_id: int) -> BankNotification:
    note = session.get(BankNotification, notification_id, with_for_update=True)
    if note is None or note.status != NotificationStatus.SUSPENSE:
        raise NotFound("no such credit in suspense")
    if note.resolved_at is not None:
        raise Conflict("this credit was already resolved", code="already_resolved")
    return note


def _resolve(
    session: Session, note: BankNotification, actor: str, text: str, after: dict[str, Any]
) -> None:
    note.resolved_at = utcnow()
    audit.record(
        session,
        actor=actor,
        action="suspense.resolve",
        entity_type="bank_notification",
        entity_id=note.id,
        before={"status": "suspense", "reason": note.reason},
        after=after,
        note=text,
    )


__all__ = [
    "IncomingCredit",
    "Outcome",
    "event_payload",
    "receive",
    "receive_each",
    "receive_many",
    "record_credit",
]
