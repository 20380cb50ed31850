"""The sandbox bank (SPEC §4, §12): reads a VietQR payload, 'transfers' the money and calls our
webhook with a correctly signed notification over HTTP, as a real acquiring bank would.

Only reachable when CASHLESS_SANDBOX=1. The transfers it made also feed simulated statements.
"""

from __future__ import annotations

import json
import secrets
import urllib.request
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.config import Settings
from core.db import Database
from core.errors import ValidationFailed, invalid
from core.queue import enqueue
from payments import bank, vietqr
from payments.errors import SandboxDisabled
from payments.models import SandboxTransfer
from payments.service import PaymentsConfig

SANDBOX_PAYER = ("NGUYEN VAN SANDBOX", "0123456789", "970436")


def create_transfer(
    db: Database,
    settings: Settings,
    *,
    user_id: int | None,
    qr_payload: str,
    amount: int | None = None,
    description: str | None = None,
) -> SandboxTransfer:
    """Pay a VietQR code from a simulated bank account; the notification follows by job."""
    if not settings.sandbox:
        raise SandboxDisabled("the bank simulator is off (CASHLESS_SANDBOX)")
    try:
        payload = vietqr.decode(qr_payload)
    except vietqr.VietQRError as exc:
        raise invalid("qr_payload", f"not a VietQR payload: {exc.message}", exc.code) from exc
    amount = _transfer_amount(payload, amount)
    now = utcnow()
    note = (
        description
        if description is not None
        else (payload.purpose or payload.terminal_label or "chuyen tien")
    )
    with db.transaction() as session:
        transfer = SandboxTransfer(
            transaction_id=f"FT{now:%y%m%d}{secrets.token_hex(5).upper()}",
            account_number=payload.account,
            amount=amount,
            description=note[:500],
            counterparty_name=SANDBOX_PAYER[0],
            counterparty_account=SANDBOX_PAYER[1],
            counterparty_bank_bin=SANDBOX_PAYER[2],
            credited_at=now,
            created_by=user_id,
        )
        session.add(transfer)
        session.flush()
        enqueue(
            session,
            "payments.jobs.deliver_sandbox_transfer_job",
            transfer.id,
            job_id=f"sandbox-transfer:{transfer.id}",
            queue="high",
            max_attempts=5,
        )
        return transfer


def _transfer_amount(payload: vietqr.VietQRPayload, amount: int | None) -> int:
    if amount is None:
        if payload.amount is None:
            raise invalid("amount", "a static code has no amount: say how much to pay", "required")
        return payload.amount
    if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
        raise ValidationFailed("amount must be a positive integer of VND")
    return amount


def notification_body(transfer: SandboxTransfer) -> dict[str, Any]:
    return {
        "transaction_id": transfer.transaction_id,
        "account_number": transfer.account_number,
        "amount": transfer.amount,
        "credited_at": transfer.credited_at.isoformat(),
        "description": transfer.description,
        "counterparty_name": transfer.counterparty_name,
        "counterparty_account": transfer.counterparty_account,
        "counterparty_bank_bin": transfer.counterparty_bank_bin,
    }


def signed_request(secret: str, body: dict[str, Any]) -> tuple[bytes, str]:
    raw = json.dumps(body, ensure_ascii=False).encode()
    return raw, bank.sign(secret, raw, int(utcnow().timestamp()))


def deliver_notification(db: Database, settings: Settings, transfer_id: int) -> str:
    """POST the signed notification to our webhook. Raises on failure so the job retries;
    a redelivery is harmless (the webhook is idempotent by transaction id)."""
    with db.reader() as session:
        transfer = session.scalars(
            select(SandboxTransfer).where(SandboxTransfer.id == transfer_id)
        ).one()
    raw, signature = signed_request(settings.bank_webhook_secret, notification_body(transfer))
    request = urllib.request.Request(  # noqa: S310 - our own configured URL
        settings.public_url.rstrip("/") + "/api/v1/bank/notifications",
        data=raw,
        method="POST",
        headers={"Content-Type": "application/json", "X-Signature": signature},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
        answer = json.loads(response.read() or b"{}")
    with db.transaction() as session:
        row = session.get(SandboxTransfer, transfer_id)
        if row is not None and row.notified_at is None:
            row.notified_at = utcnow()
    return str(answer.get("status", "unknown"))


def book_payout(
    session: Session,
    cfg: PaymentsConfig | None,
    *,
    key: str,
    amount: int,
    description: str,
    account: str,
    bank_bin: str,
    name: str,
    at: datetime,
) -> None:
    """Sandbox only: the simulated bank executes one payout-file line, a DR on our collection
    account, so simulated statements carry payouts as a real bank's would. Idempotent by
    `key`; does nothing outside sandbox mode."""
    if cfg is None or not cfg.sandbox:
        return
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(SandboxTransfer)
        .values(
            transaction_id=f"PO{key.replace(':', '')}",
            account_number=cfg.account,
            amount=amount,
            direction="DR",
            description=description[:500],
            counterparty_name=name[:200],
            counterparty_account=account,
            counterparty_bank_bin=bank_bin,
            credited_at=at,
            notified_at=at,
        )
        .on_conflict_do_nothing()
    )
