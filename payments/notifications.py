"""Credits the bank tells us about: match them to payments, or park them in suspense.

Every notification is stored once (unique bank transaction id), so a duplicate posts nothing.
Unmatched, late, wrong-account and wrong-amount credits go to the suspense account, where
reconciliation finds them; nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import audit
from core.clock import as_utc, business_date, utcnow
from core.db import Database
from core.errors import Conflict, NotFound
from core.events import publish_after_commit
from payments import ledger
from payments.bank import our_reference
from payments.ledger import Leg
from payments.models import BankNotification, NotificationStatus, Payment, StaticCode
from payments.service import PaymentsConfig, event_payload, lock_payment, succeed
from payments.states import PaymentStatus


@dataclass(frozen=True)
class IncomingCredit:
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
    status: str
    payment_id: int | None = None
    reason: str | None = None


def receive(db: Database, cfg: PaymentsConfig, credit: IncomingCredit) -> Outcome:
    """Record, match and post one credit. Idempotent by the bank's transaction id."""
    with db.transaction() as session:
        return record_credit(session, cfg, credit, utcnow())


def receive_many(db: Database, cfg: PaymentsConfig, credits: list[IncomingCredit]) -> list[Outcome]:
    """A batch in one database transaction, each credit in its own savepoint."""
    now = utcnow()
    outcomes = []
    with db.transaction() as session:
        for credit in credits:
            with session.begin_nested():
                outcomes.append(record_credit(session, cfg, credit, now))
    return outcomes


def _posting_day(session: Session, credited_at: datetime, now: datetime) -> date:
    """The credit's own business day, or today when that day is already closed (SPEC §13)."""
    day = business_date(credited_at)
    from payments.models import ClosedDay

    return business_date(now) if session.get(ClosedDay, day) is not None else day


def record_credit(
    session: Session, cfg: PaymentsConfig, credit: IncomingCredit, now: datetime
) -> Outcome:
    """Store the notification (or notice the duplicate), then match or park it."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    found = _ref(credit.description)
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
            business_date=_posting_day(session, credit.credited_at, now),
        )
        .on_conflict_do_nothing()
        .returning(BankNotification.id)
    ).scalar()
    if row_id is None:
        return Outcome(NotificationStatus.DUPLICATE)
    note = session.get(BankNotification, row_id)
    assert note is not None
    outcome = _match(session, cfg, note, found, now)
    note.status, note.reason, note.payment_id = outcome.status, outcome.reason, outcome.payment_id
    session.flush()
    return outcome


def _ref(description: str) -> tuple[str, str] | None:
    return our_reference(description)


def _match(
    session: Session,
    cfg: PaymentsConfig,
    note: BankNotification,
    found: tuple[str, str] | None,
    now: datetime,
) -> Outcome:
    if note.account_number != cfg.account:
        return _to_suspense(session, note, "wrong_account")
    if found is None:
        return _to_suspense(session, note, "no_reference")
    kind, reference = found
    if kind == "stall":
        return _static_credit(session, note, reference)
    payment = session.scalars(
        select(Payment).where(Payment.reference == reference).with_for_update()
    ).first()
    if payment is None:
        return _to_suspense(session, note, "unknown_reference")
    if payment.status != PaymentStatus.PENDING:
        reason = (
            "late_credit"
            if payment.status == PaymentStatus.EXPIRED
            else f"payment_{payment.status}"
        )
        return _to_suspense(session, note, reason, payment)
    if note.amount != payment.amount:
        outcome = _to_suspense(session, note, "amount_mismatch", payment)
        publish_after_commit(
            session,
            f"payment:{payment.id}",
            {
                "type": "amount_mismatch",
                "payment_id": payment.id,
                "expected": payment.amount,
                "received": note.amount,
                "status": payment.status,
            },
        )
        return outcome
    _settle_credit(session, note, payment, now)
    return Outcome(NotificationStatus.MATCHED, payment.id)


def _settle_credit(
    session: Session, note: BankNotification, payment: Payment, now: datetime
) -> None:
    ledger.post(
        session,
        external_key=f"bank:{note.transaction_id}",
        kind="bank_credit",
        business_date=note.business_date,
        payment_id=payment.id,
        memo=f"{payment.reference} {payment.purpose}",
        legs=[Leg("bank_clearing", note.amount), Leg(_beneficiary(session, payment), -note.amount)],
    )
    payment.counterparty_account = note.counterparty_account
    payment.counterparty_bank_bin = note.counterparty_bank_bin
    payment.counterparty_name = note.counterparty_name
    succeed(session, payment, now, note.transaction_id)


def _beneficiary(session: Session, payment: Payment) -> str:
    if payment.merchant_id is not None and payment.credit_account.startswith("merchant:"):
        ledger.merchant_payable(session, payment.merchant_id)
    if payment.credit_account.startswith("wallet:"):
        ledger.wallet_account(session, int(payment.credit_account.split(":", 1)[1]))
    return payment.credit_account


def _static_credit(session: Session, note: BankNotification, reference: str) -> Outcome:
    code = session.scalars(select(StaticCode).where(StaticCode.reference == reference)).first()
    if code is None:
        return _to_suspense(session, note, "unknown_reference")
    payment = Payment(
        reference=None,
        amount=note.amount,
        method="vietqr",
        status=PaymentStatus.PENDING,
        purpose="charge",
        owner_ref=f"stall:{code.stall_id}",
        credit_account=code.credit_account,
        merchant_id=code.merchant_id,
        stall_id=code.stall_id,
        description="Static stall QR",
        external_key=f"static:{note.transaction_id}",
        business_date=note.business_date,
        created_at=note.credited_at,
    )
    session.add(payment)
    session.flush()
    _settle_credit(session, note, payment, note.received_at)
    return Outcome(NotificationStatus.MATCHED, payment.id)


def _to_suspense(
    session: Session, note: BankNotification, reason: str, payment: Payment | None = None
) -> Outcome:
    ledger.post(
        session,
        external_key=f"bank:{note.transaction_id}",
        kind="bank_credit_suspense",
        business_date=note.business_date,
        payment_id=payment.id if payment else None,
        memo=f"suspense: {reason}",
        legs=[Leg("bank_clearing", note.amount), Leg("suspense", -note.amount)],
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


__all__ = ["IncomingCredit", "Outcome", "event_payload", "receive", "receive_many"]
