"""Static stall VietQR codes (SPEC §5, §13): one per stall, amount left to the payer.

A static code carries the stall's own reference (`HS…`) in tag 62/08, because only the transfer
note reaches the bank statement, and the stall's label in 62/07. A credit with that reference
becomes a succeeded payment for the stall (payments/notifications.py). Helpers here take the
caller's session and flush; they never commit.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.errors import invalid
from payments import ledger, references, vietqr
from payments.models import StaticCode
from payments.service import PaymentsConfig

__all__ = ["register_static_code", "static_code_for_stall", "static_payload"]


def static_payload(
    cfg: PaymentsConfig, *, reference: str, terminal_label: str, merchant_name: str
) -> str:
    """The static VietQR text of a stall: no amount, its label in 62/07, its reference in 62/08.

    Raises a 422 (field `terminal_label` or `merchant_name`) when a text does not fit the
    VietQR limits once folded to ASCII: it is never silently truncated.
    """
    try:
        payload = vietqr.VietQRPayload(
            bin=cfg.bin,
            account=cfg.account,
            amount=None,
            merchant_name=merchant_name,
            city=cfg.city,
            terminal_label=terminal_label,
            purpose=reference,
        )
    except vietqr.VietQRError as exc:
        field = "terminal_label" if "terminal" in exc.message else "merchant_name"
        raise invalid(field, exc.message, str(exc.code)) from exc
    return vietqr.encode(payload)


def static_code_for_stall(session: Session, stall_id: int) -> StaticCode | None:
    return session.scalars(select(StaticCode).where(StaticCode.stall_id == stall_id)).first()


def register_static_code(
    session: Session,
    cfg: PaymentsConfig,
    *,
    stall_id: int,
    merchant_id: int,
    terminal_label: str,
    merchant_name: str,
) -> StaticCode:
    """The static code of a stall, created on first call (flushes only).

    Idempotent by `stall_id`: a second call, or a concurrent twin, returns the existing row
    unchanged. Credits to it go to `merchant:{merchant_id}:payable`.
    """
    found = static_code_for_stall(session, stall_id)
    if found is not None:
        return found
    reference = references.stall_reference(stall_id)
    payload = static_payload(
        cfg, reference=reference, terminal_label=terminal_label, merchant_name=merchant_name
    )
    ledger.merchant_payable(session, merchant_id)
    row = StaticCode(
        reference=reference,
        stall_id=stall_id,
        merchant_id=merchant_id,
        credit_account=ledger.merchant_payable_code(merchant_id),
        terminal_label=vietqr.fold_ascii(terminal_label),
        payload=payload,
    )
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError:
        found = static_code_for_stall(session, stall_id)
        if found is None:
            raise
        return found
    return row
