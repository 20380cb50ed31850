"""Settlement: the daily payout batch per merchant, posted to the ledger, and the bank payout
file (SPEC §7, §13 "Runs and close"; the file is documented in docs/PAYOUT_FILE.md).

A batch covers the merchant's payable postings since its last posted batch up to the business
day: normally exactly that day, more when earlier days had nothing due (refunds and discount
exceeding the charges carry over). One row per (merchant, business day), created under a lock
on the merchant: a re-run, a second scheduler or a double click adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import business_date, utcnow
from core.db import Database
from core.pagination import Page, paginate
from merchants import settlement
from merchants.errors import MerchantNotFound
from merchants.models import Merchant, PayoutBatch, PayoutStatus
from payments import banks, ledger, simulator
from payments.events import record_merchant_event
from payments.ledger import Leg
from payments.models import JournalTransaction, Posting
from payments.service import PaymentsConfig

PAYOUT_KIND = "payout"


def _batch(session: Session, merchant_id: int, day: date) -> PayoutBatch | None:
    return session.scalars(
        select(PayoutBatch).where(
            PayoutBatch.merchant_id == merchant_id, PayoutBatch.business_date == day
        )
    ).first()


def _last_posted(
    session: Session, merchant_id: int, *, before: date | None = None, after: date | None = None
) -> PayoutBatch | None:
    stmt = select(PayoutBatch).where(
        PayoutBatch.merchant_id == merchant_id, PayoutBatch.status == PayoutStatus.POSTED
    )
    if before is not None:
        stmt = stmt.where(PayoutBatch.business_date < before)
    if after is not None:
        stmt = stmt.where(PayoutBatch.business_date > after)
    return session.scalars(stmt.order_by(PayoutBatch.business_date.desc())).first()


def _payable_lines(
    session: Session, merchant_id: int, since: date | None, day: date
) -> tuple[list[int], list[int], date]:
    """Charges (credits) and refunds (debits) of the payable account in (since, day]."""
    stmt = ledger.postings_of(session, ledger.merchant_payable_code(merchant_id)).where(
        Posting.business_date <= day, JournalTransaction.kind != PAYOUT_KIND
    )
    if since is not None:
        stmt = stmt.where(Posting.business_date > since)
    charges: list[int] = []
    refunds: list[int] = []
    first = day
    for posting, _txn in session.execute(stmt.order_by(Posting.id)):
        (charges if posting.amount < 0 else refunds).append(abs(posting.amount))
        first = min(first, posting.business_date)
    return charges, refunds, since + timedelta(days=1) if since else first


def run_payout(
    db: Database,
    merchant_id: int,
    day: date,
    *,
    actor: str = "scheduler",
    now: datetime | None = None,
    cfg: PaymentsConfig | None = None,
) -> PayoutBatch | None:
    """The payout batch of one merchant for business day `day`, created once.

    Idempotent: the existing batch is returned; None when there is nothing to pay or a later
    posted batch already covered the day. Locks the merchant row. When something is due, posts
    one journal transaction `payout:{id}` (Dr payable gross, Cr discount revenue, Cr bank
    clearing net) dated the day it is sent, and records the `payout.sent` event.
    """
    now = now or utcnow()
    with db.transaction() as session:
        merchant = session.get(Merchant, merchant_id, with_for_update=True)
        if merchant is None:
            raise MerchantNotFound("no such merchant")
        found = _batch(session, merchant_id, day)
        if found is not None or _last_posted(session, merchant_id, after=day) is not None:
            return found
        last = _last_posted(session, merchant_id, before=day)
        charges, refunds, start = _payable_lines(
            session, merchant_id, last.business_date if last else None, day
        )
        if not charges and not refunds:
            return None
        totals = settlement.payout_totals(charges, refunds, merchant.discount_rate_bp)
        batch = _new_batch(merchant, day, start, totals, actor)
        try:
            with session.begin_nested():
                session.add(batch)
                session.flush()
        except IntegrityError:  # a concurrent run won (only possible without the row lock)
            return _batch(session, merchant_id, day)
        if totals.due:
            _post(session, batch, business_date(now))
            simulator.book_payout(
                session,
                cfg,
                key=f"payout:{batch.id}",
                amount=batch.net_amount,
                description=batch.description,
                account=batch.bank_account,
                bank_bin=batch.bank_bin,
                name=batch.beneficiary_name,
                at=now,
            )
        return batch


def _new_batch(
    merchant: Merchant, day: date, start: date, totals: settlement.PayoutTotals, actor: str
) -> PayoutBatch:
    return PayoutBatch(
        merchant_id=merchant.id,
        business_date=day,
        period_start=start,
        status=PayoutStatus.POSTED if totals.due else PayoutStatus.NOTHING_DUE,
        charges_count=totals.charges_count,
        charges_amount=totals.charges_amount,
        refunds_amount=totals.refunds_amount,
        gross_amount=totals.gross_amount,
        discount_rate_bp=merchant.discount_rate_bp,
        discount_amount=totals.discount_amount,
        net_amount=totals.net_amount,
        bank_bin=merchant.settlement_bin,
        bank_account=merchant.settlement_account,
        beneficiary_name=merchant.settlement_account_name,
        description=settlement.payout_description(day, merchant.short_name),
        created_by=actor,
    )


def _post(session: Session, batch: PayoutBatch, sent_on: date) -> None:
    """The contract with reconciliation: one transaction, key `payout:{id}`, kind `payout`."""
    legs = [Leg(ledger.merchant_payable_code(batch.merchant_id), batch.gross_amount)]
    if batch.discount_amount:
        legs.append(Leg("merchant_discount_revenue", -batch.discount_amount))
    legs.append(Leg("bank_clearing", -batch.net_amount))
    key = f"payout:{batch.id}"
    ledger.post(
        session,
        external_key=key,
        kind=PAYOUT_KIND,
        business_date=sent_on,
        legs=legs,
        memo=batch.description,
    )
    batch.journal_key, batch.posted_on = key, sent_on
    session.flush()
    record_merchant_event(session, batch.merchant_id, "payout.sent", event_data(batch))


def event_data(batch: PayoutBatch) -> dict[str, Any]:
    return {
        "payout_id": batch.id,
        "business_date": batch.business_date.isoformat(),
        "period_start": batch.period_start.isoformat(),
        "amount": batch.net_amount,
        "gross_amount": batch.gross_amount,
        "discount_amount": batch.discount_amount,
        "refunds_amount": batch.refunds_amount,
        "currency": "VND",
        "description": batch.description,
        "sent_on": batch.posted_on.isoformat() if batch.posted_on else None,
    }


def active_merchant_ids(db: Database) -> list[int]:
    with db.reader() as session:
        return list(
            session.scalars(
                select(Merchant.id).where(Merchant.active.is_(True)).order_by(Merchant.id)
            )
        )


@dataclass(frozen=True)
class PayoutRun:
    business_date: date
    batches: list[PayoutBatch]


def run_payouts(
    db: Database,
    day: date,
    *,
    merchant_id: int | None = None,
    actor: str = "scheduler",
    now: datetime | None = None,
    cfg: PaymentsConfig | None = None,
) -> PayoutRun:
    """Payout batches of every active merchant (or one) for `day`, each in its own transaction
    so one merchant's problem never blocks the others' money. Safe to run twice: the
    batches already made are returned as they are."""
    ids = [merchant_id] if merchant_id is not None else active_merchant_ids(db)
    batches = [run_payout(db, mid, day, actor=actor, now=now, cfg=cfg) for mid in ids]
    return PayoutRun(day, [batch for batch in batches if batch is not None])


def list_payouts(
    db: Database,
    *,
    merchant_id: int | None,
    day: date | None,
    limit: int,
    starting_after: int | None,
) -> Page:
    """Payout batches by id, for one merchant and/or one business day."""
    stmt = select(PayoutBatch)
    if merchant_id is not None:
        stmt = stmt.where(PayoutBatch.merchant_id == merchant_id)
    if day is not None:
        stmt = stmt.where(PayoutBatch.business_date == day)
    with db.reader() as session:
        return paginate(session, stmt, PayoutBatch.id, limit, starting_after)


def payout_file(db: Database, day: date) -> str:
    """The bank payout file of business day `day`: one line per posted batch (read only)."""
    with db.reader() as session:
        batches = session.scalars(
            select(PayoutBatch)
            .where(PayoutBatch.business_date == day, PayoutBatch.status == PayoutStatus.POSTED)
            .order_by(PayoutBatch.id)
        ).all()
    lines = []
    for batch in batches:
        bank = banks.bank_by_bin(batch.bank_bin)
        lines.append(
            settlement.PayoutLine(
                batch_id=batch.id,
                business_date=batch.business_date,
                value_date=batch.posted_on or batch.business_date,
                merchant_id=batch.merchant_id,
                beneficiary_name=batch.beneficiary_name,
                bank_bin=batch.bank_bin,
                bank_name=bank.short_name if bank else "",
                account_number=batch.bank_account,
                amount=batch.net_amount,
                description=batch.description,
            )
        )
    return settlement.payout_csv(lines)
