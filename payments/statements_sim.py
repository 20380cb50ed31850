"""What the simulated bank booked on an account (sandbox only), for simulated statements.

The bank simulator records every transfer it makes (`SandboxTransfer`); a simulated statement
lists them as a real bank's statement would. Reconciliation turns these entries into its CSV
statement format; payments knows nothing about that format.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.clock import as_utc
from payments.models import SandboxTransfer


@dataclass(frozen=True)
class SimulatedEntry:
    transaction_id: str
    booked_at: datetime  # UTC
    amount: int  # positive; `direction` gives the sign
    direction: str  # "CR" money in, "DR" money out
    description: str
    counterparty_account: str
    counterparty_name: str


def sandbox_entries(
    session: Session, account_number: str, start: datetime, end: datetime
) -> list[SimulatedEntry]:
    """Transfers the simulated bank booked on `account_number` in [start, end), oldest first.

    Read-only. The bank books a transfer at the moment it credits it, so `booked_at` is the
    transfer's `credited_at`, and its id is the id the bank notified us with.
    """
    rows = session.scalars(
        select(SandboxTransfer)
        .where(
            SandboxTransfer.account_number == account_number,
            SandboxTransfer.credited_at >= start,
            SandboxTransfer.credited_at < end,
        )
        .order_by(SandboxTransfer.credited_at, SandboxTransfer.id)
    )
    return [
        SimulatedEntry(
            transaction_id=row.transaction_id,
            booked_at=as_utc(row.credited_at),
            amount=row.amount,
            direction=row.direction or "CR",
            description=row.description,
            counterparty_account=row.counterparty_account,
            counterparty_name=row.counterparty_name,
        )
        for row in rows
    ]
