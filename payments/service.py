"""Payment use cases: VietQR charges and top-ups, wallet payments, refunds, expiry, cancel.

Functions taking a `db` own their transaction; functions taking a `session` are building
blocks the other domains call inside their own transaction (they flush, never commit).
Every money movement goes through `ledger.post` with a unique external key.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.clock import as_utc, business_date, utcnow
from core.config import Settings
from core.db import Database
from core.events import handlers, publish_after_commit
from core.money import check_amount
from core.pagination import paginate
from payments import ledger, references, vietqr
from payments.errors import (
    IllegalTransition,
    NotPending,
    PaymentNotFound,
    RefundTooLarge,
    StaleRefundAmount,
)
from payments.ledger import Leg
from payments.models import Payment, Refund
from payments.states import REFUNDABLE, PaymentStatus, can_transition, status_after_refund

PURPOSES = ("ticket", "parking", "public_fee", "charge", "topup")


@dataclass(frozen=True)
class PaymentsConfig:
    """What payments needs from the settings (handed in; services never read Flask)."""

    bin: str
    account: str
    merchant_name: str
    city: str
    payment_ttl: timedelta
    webhook_secret: str
    sandbox: bool

    @classmethod
    def from_settings(cls, settings: Settings) -> PaymentsConfig:
        return cls(
            settings.collection_bin,
            settings.collection_account,
            settings.collection_name,
            settings.collection_city,
            timedelta(seconds=settings.payment_ttl_seconds),
            settings.bank_webhook_secret,
            settings.sandbox,
        )


def _amount(value: object) -> int:
    from core.errors import invalid
    from core.money import MoneyError

    try:
        return int(check_amount(value))
    except MoneyError as exc:
        raise invalid("amount", str(exc)) from exc


def _unique_reference(session: Session) -> str:
    while True:  # 40 bits of randomness: a collision is rare, but retry rather than fail
        reference = references.new_charge_reference()
        if session.scalar(select(Payment.id).where(Payment.reference == reference)) is None:
            return reference


def dynamic_payload(cfg: PaymentsConfig, amount: int, reference: str) -> str:
    """The dynamic VietQR of one payment: amount locked, our reference in 62/08."""
    return vietqr.encode(
        vietqr.VietQRPayload(
            bin=cfg.bin,
            account=cfg.account,
            amount=amount,
            merchant_name=cfg.merchant_name,
            city=cfg.city,
            purpose=reference,
        )
    )


def create_vietqr_payment(
    session: Session,
    cfg: PaymentsConfig,
    *,
    amount: int,
    purpose: str,
    owner_ref: str | None,
    credit_account: str,
    payer_user_id: int | None = None,
    merchant_id: int | None = None,
    stall_id: int | None = None,
    description: str | None = None,
    external_key: str | None = None,
    now: datetime | None = None,
) -> Payment:
    """A pending VietQR payment with a fresh reference and its dynamic QR (flushes only).

    Idempotent by `external_key` when one is given: the existing payment is returned.
    """
    amount = _amount(amount)
    if amount >= vietqr.INTERBANK_CAP_VND:
        from core.errors import invalid

        raise invalid("amount", "above the 500,000,000 VND interbank transfer cap", "too_large")
    if external_key:
        found = session.scalars(select(Payment).where(Payment.external_key == external_key)).first()
        if found is not None:
            return found
    now = now or utcnow()
    reference = _unique_reference(session)
    payment = Payment(
        reference=reference,
        amount=amount,
        method="vietqr",
        status=PaymentStatus.PENDING,
        purpose=purpose,
        owner_ref=owner_ref,
        credit_account=credit_account,
        payer_user_id=payer_user_id,
        merchant_id=merchant_id,
        stall_id=stall_id,
        description=description,
        external_key=external_key,
        business_date=business_date(now),
        created_at=now,
        expires_at=now + cfg.payment_ttl,
        qr_payload=dynamic_payload(cfg, amount, reference),
    )
    session.add(payment)
    session.flush()
    return payment


def spend_from_wallet(
    session: Session,
    *,
    user_id: int,
    amount: int,
    purpose: str,
    owner_ref: str | None,
    credit_account: str,
    external_key: str,
    description: str = "",
    merchant_id: int | None = None,
    now: datetime | None = None,
) -> Payment:
    """Pay `amount` from a commuter's wallet at once (a succeeded wallet payment).

    Idempotent by `external_key`. Raises InsufficientFunds (422) rather than overdraw; the
    wallet row is updated conditionally, so concurrent spends never overdraw or lose updates.
    """
    amount = _amount(amount)
    found = session.scalars(select(Payment).where(Payment.external_key == external_key)).first()
    if found is not None:
        return found
    now = now or utcnow()
    ledger.wallet_account(session, user_id)
    payment = Payment(
        amount=amount,
        method="wallet",
        status=PaymentStatus.PENDING,
        purpose=purpose,
        owner_ref=owner_ref,
        credit_account=credit_account,
        payer_user_id=user_id,
        merchant_id=merchant_id,
        description=description or None,
        external_key=external_key,
        business_date=business_date(now),
        created_at=now,
    )
    session.add(payment)
    session.flush()
    _settle_from_wallet(session, payment, user_id, now)
    return payment


def _settle_from_wallet(session: Session, payment: Payment, user_id: int, now: datetime) -> None:
    ledger.wallet_account(session, user_id)
    ledger.post(
        session,
        external_key=f"payment:{payment.id}:wallet",
        kind="wallet_payment",
        business_date=business_date(now),
        payment_id=payment.id,
        memo=f"{payment.purpose} {payment.owner_ref or ''}".strip(),
        legs=[
            Leg(ledger.wallet_code(user_id), payment.amount),
            Leg(_credit_account(session, payment), -payment.amount),
        ],
    )
    payment.method = "wallet"
    payment.payer_user_id = user_id
    succeed(session, payment, now)


def _credit_account(session: Session, payment: Payment) -> str:
    """Make sure the beneficiary account exists (merchant payables are created on demand)."""
    code = payment.credit_account
    if code.startswith("merchant:") and payment.merchant_id is not None:
        ledger.merchant_payable(session, payment.merchant_id)
    elif code.startswith("wallet:"):
        ledger.wallet_account(session, int(code.split(":", 1)[1]))
    return code


def succeed(
    session: Session, payment: Payment, now: datetime, bank_transaction_id: str | None = None
) -> None:
    """Mark a payment succeeded and tell everyone: domain handlers (same transaction), the
    live stream and the merchant's event list (after commit)."""
    transition(payment, PaymentStatus.SUCCEEDED)
    payment.succeeded_at = now
    payment.bank_transaction_id = bank_transaction_id or payment.bank_transaction_id
    session.flush()
    payload = event_payload(payment)
    handlers.publish(session, "payment.succeeded", payload)
    publish_after_commit(session, f"payment:{payment.id}", {"type": "status", **payload})
    if payment.merchant_id is not None:
        from payments.events import record_merchant_event

        record_merchant_event(session, payment.merchant_id, "payment.succeeded", payload)


def transition(payment: Payment, target: PaymentStatus) -> None:
    if not can_transition(payment.status, target):
        raise IllegalTransition(f"a {payment.status} payment cannot become {target}")
    payment.status = target


def event_payload(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.id,
        "status": payment.status,
        "amount": payment.amount,
        "currency": payment.currency,
        "purpose": payment.purpose,
        "owner_ref": payment.owner_ref,
        "method": payment.method,
        "reference": payment.reference,
        "merchant_id": payment.merchant_id,
        "stall_id": payment.stall_id,
        "refunded_amount": payment.refunded_amount,
        "succeeded_at": payment.succeeded_at.isoformat() if payment.succeeded_at else None,
    }


def lock_payment(session: Session, payment_id: int) -> Payment:
    payment = session.get(Payment, payment_id, with_for_update=True)
    if payment is None:
        raise PaymentNotFound("no such payment")
    return payment


def get_payment(db: Database, payment_id: int) -> Payment:
    with db.reader() as session:
        payment = session.get(Payment, payment_id)
        if payment is None:
            raise PaymentNotFound("no such payment")
        return payment


def pay_pending_with_wallet(db: Database, payment_id: int, user_id: int) -> Payment:
    """A commuter pays any pending payment from the wallet (SPEC §12).

    Locks the payment; 409 when it is not pending; 422 insufficient_funds. Safe to retry: a
    payment this user already paid is returned as it is.
    """
    with db.transaction() as session:
        payment = lock_payment(session, payment_id)
        if payment.status != PaymentStatus.PENDING:
            if payment.method == "wallet" and payment.payer_user_id == user_id:
                return payment
            raise NotPending(f"the payment is {payment.status}, not pending")
        if payment.purpose == "topup":
            raise NotPending("a wallet top-up cannot be paid from the wallet")
        _settle_from_wallet(session, payment, user_id, utcnow())
        return payment


def topup_wallet(db: Database, cfg: PaymentsConfig, user_id: int, amount: int) -> Payment:
    """A VietQR payment that credits the commuter's wallet when the bank confirms it."""
    with db.transaction() as session:
        ledger.wallet_account(session, user_id)
        return create_vietqr_payment(
            session,
            cfg,
            amount=amount,
            purpose="topup",
            owner_ref=f"user:{user_id}",
            credit_account=ledger.wallet_code(user_id),
            payer_user_id=user_id,
            description="Nạp tiền ví",
        )


def credit_wallet(
    session: Session,
    *,
    user_id: int,
    amount: int,
    external_key: str,
    memo: str = "sandbox funding",
    now: datetime | None = None,
) -> None:
    """Demo and sandbox only: put money in a wallet from the sandbox funding account."""
    now = now or utcnow()
    ledger.wallet_account(session, user_id)
    ledger.post(
        session,
        external_key=external_key,
        kind="sandbox_funding",
        memo=memo,
        business_date=business_date(now),
        legs=[Leg("sandbox_funding", amount), Leg(ledger.wallet_code(user_id), -amount)],
    )


def wallet_balance(db: Database, user_id: int) -> int:
    with db.reader() as session:
        return ledger.spendable(session, user_id)


def wallet_statement(
    db: Database,
    user_id: int,
    *,
    start: datetime,
    end: datetime,
    limit: int,
    starting_after: int | None,
) -> dict[str, Any]:
    """Movements of a wallet in [start, end), credits positive for the holder."""
    from payments.models import JournalTransaction, Posting

    with db.reader() as session:
        stmt = ledger.postings_of(session, ledger.wallet_code(user_id)).where(
            Posting.created_at >= start, Posting.created_at < end
        )
        if starting_after is not None:
            stmt = stmt.where(Posting.id > starting_after)
        rows = session.execute(stmt.order_by(Posting.id).limit(limit + 1)).all()
    page = rows[:limit]
    data = [
        {
            "id": p.id,
            "amount": -p.amount,
            "currency": "VND",
            "kind": t.kind,
            "memo": t.memo,
            "payment_id": t.payment_id,
            "business_date": p.business_date,
            "created_at": p.created_at,
        }
        for p, t in (tuple(row) for row in page)
        if isinstance(p, Posting) and isinstance(t, JournalTransaction)
    ]
    more = len(rows) > limit
    return {"data": data, "has_more": more, "next_cursor": data[-1]["id"] if more else None}


def cancel_payment(db: Database, payment_id: int, actor: str) -> Payment:
    """A vendor cancels a pending charge. Cancelling a cancelled charge changes nothing."""
    with db.transaction() as session:
        payment = lock_payment(session, payment_id)
        if payment.status == PaymentStatus.CANCELLED:
            return payment
        if payment.status != PaymentStatus.PENDING:
            raise NotPending(f"the payment is {payment.status}, not pending")
        transition(payment, PaymentStatus.CANCELLED)
        payment.cancelled_at = utcnow()
        audit.record(
            session,
            actor=actor,
            action="payment.cancel",
            entity_type="payment",
            entity_id=payment.id,
            before={"status": "pending"},
            after={"status": "cancelled"},
        )
        publish_after_commit(
            session, f"payment:{payment.id}", {"type": "status", **event_payload(payment)}
        )
        return payment


def expire_due_payments(db: Database, now: datetime | None = None, batch: int = 500) -> int:
    """Expire pending VietQR payments past `expires_at`. Safe to run twice. Returns how many."""
    now = now or utcnow()
    with db.reader() as session:
        due = list(
            session.scalars(
                select(Payment.id)
                .where(
                    Payment.status == PaymentStatus.PENDING,
                    Payment.method == "vietqr",
                    Payment.expires_at <= now,
                )
                .order_by(Payment.id)
                .limit(batch)
            )
        )
    count = 0
    for payment_id in due:
        with db.transaction() as session:
            payment = lock_payment(session, payment_id)
            if payment.status != PaymentStatus.PENDING:
                continue
            transition(payment, PaymentStatus.EXPIRED)
            payload = event_payload(payment)
            handlers.publish(session, "payment.expired", payload)
            publish_after_commit(session, f"payment:{payment.id}", {"type": "status", **payload})
            if payment.merchant_id is not None:
                from payments.events import record_merchant_event

                record_merchant_event(session, payment.merchant_id, "payment.expired", payload)
            count += 1
    return count


def refund(
    db: Database,
    payment_id: int,
    *,
    amount: int,
    refund_amount_available: int,
    actor: str,
    reason: str | None = None,
) -> Refund:
    """Refund part or all of a payment. 412 when `refund_amount_available` is stale.

    Wallet payments go back to the wallet at once; VietQR payments become a refund owed to
    the payer's bank account, paid in the bank payout file.
    """
    amount = _amount(amount)
    with db.transaction() as session:
        payment = lock_payment(session, payment_id)
        if payment.status not in REFUNDABLE:
            raise NotPending(f"a {payment.status} payment cannot be refunded")
        available = payment.amount - payment.refunded_amount
        if refund_amount_available != available:
            raise StaleRefundAmount(
                f"refund_amount_available is {available}, not "
                f"{refund_amount_available}; re-read the payment",
                extra={"refund_amount_available": available},
            )
        if amount > available:
            raise RefundTooLarge(f"at most {available} VND can be refunded")
        return _post_refund(session, payment, amount, actor, reason)


def _post_refund(
    session: Session, payment: Payment, amount: int, actor: str, reason: str | None
) -> Refund:
    now = utcnow()
    to_wallet = payment.method == "wallet" and payment.payer_user_id is not None
    destination = (
        ledger.wallet_code(payment.payer_user_id)
        if to_wallet and payment.payer_user_id is not None
        else "refunds_payable"
    )
    row = Refund(
        payment_id=payment.id,
        amount=amount,
        reason=reason,
        created_by=actor,
        destination="wallet" if to_wallet else "bank",
        status="succeeded" if to_wallet else "pending_payout",
        counterparty_account=payment.counterparty_account,
        counterparty_bank_bin=payment.counterparty_bank_bin,
        business_date=business_date(now),
    )
    session.add(row)
    session.flush()
    ledger.post(
        session,
        external_key=f"refund:{row.id}",
        kind="refund",
        business_date=row.business_date,
        payment_id=payment.id,
        legs=[Leg(_credit_account(session, payment), amount), Leg(destination, -amount)],
    )
    payment.refunded_amount += amount
    transition(payment, status_after_refund(payment.amount, payment.refunded_amount))
    payload = {**event_payload(payment), "refund_id": row.id, "refund_amount": amount}
    handlers.publish(session, "payment.refunded", payload)
    publish_after_commit(session, f"payment:{payment.id}", {"type": "status", **payload})
    if payment.merchant_id is not None:
        from payments.events import record_merchant_event

        record_merchant_event(session, payment.merchant_id, "payment.refunded", payload)
    audit.record(
        session,
        actor=actor,
        action="payment.refund",
        entity_type="payment",
        entity_id=payment.id,
        after={"refund_id": row.id, "amount": amount},
    )
    return row


def list_payments(
    db: Database,
    *,
    start: datetime | None,
    end: datetime | None,
    day: Any = None,
    merchant_id: int | None = None,
    payer_user_id: int | None = None,
    limit: int = 50,
    starting_after: int | None = None,
) -> dict[str, Any]:
    """Payments in a time window or on a business day (required), newest id last."""
    stmt = select(Payment)
    if day is not None:
        stmt = stmt.where(Payment.business_date == day)
    if start is not None:
        stmt = stmt.where(Payment.created_at >= as_utc(start))
    if end is not None:
        stmt = stmt.where(Payment.created_at < as_utc(end))
    if merchant_id is not None:
        stmt = stmt.where(Payment.merchant_id == merchant_id)
    if payer_user_id is not None:
        stmt = stmt.where(Payment.payer_user_id == payer_user_id)
    with db.reader() as session:
        return dict(paginate(session, stmt, Payment.id, limit, starting_after))


def visible_to(payment: Payment, user_id: int, roles: frozenset[str]) -> bool:
    """Who may see a payment: its payer, staff of its merchant, finance and admins."""
    from core import access

    if roles & {"finance", "admin"} or payment.payer_user_id == user_id:
        return True
    return payment.merchant_id is not None and access.allowed(
        "merchant_staff", user_id, payment.merchant_id
    )


def payment_for(db: Database, payment_id: int, user_id: int, roles: frozenset[str]) -> Payment:
    """A payment the caller may see; 404 (not 403) otherwise, so ids of others stay unknown."""
    payment = get_payment(db, payment_id)
    if not visible_to(payment, user_id, roles):
        raise PaymentNotFound("no such payment")
    return payment


def may_manage(payment: Payment, user_id: int, roles: frozenset[str]) -> bool:
    """Who may cancel or refund: the merchant's staff, finance and admins (never the payer)."""
    from core import access

    if roles & {"finance", "admin"}:
        return True
    return payment.merchant_id is not None and access.allowed(
        "merchant_staff", user_id, payment.merchant_id
    )
