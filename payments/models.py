"""Payments' tables: the ledger (accounts, journal transactions, postings), payments, refunds,
static codes, bank notifications, the sandbox bank, merchant events and webhook deliveries.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, BigId


class AccountType(StrEnum):
    ASSET = "asset"
    LIABILITY = "liability"
    REVENUE = "revenue"
    EXPENSE = "expense"


class LedgerAccount(Base):
    """A typed, owned account. `balance` is debits minus credits, kept in step by `post`."""

    __tablename__ = "ledger_accounts"
    __table_args__ = (
        # Stored value can never go below zero: the database refuses it, whatever the code does.
        CheckConstraint("NOT no_overdraft OR balance <= 0", name="no_overdraft"),
        CheckConstraint("type IN ('asset','liability','revenue','expense')", name="type"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(80), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200), default="")
    owner_type: Mapped[str | None] = mapped_column(String(40))
    owner_id: Mapped[str | None] = mapped_column(String(80))
    no_overdraft: Mapped[bool] = mapped_column(default=False)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JournalTransaction(Base):
    """One money movement. Append-only; a correction is a new transaction that `reverses` it."""

    __tablename__ = "journal_transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    external_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    business_date: Mapped[date] = mapped_column(Date, index=True)
    memo: Mapped[str] = mapped_column(String(500), default="")
    payment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    reverses_id: Mapped[int | None] = mapped_column(
        ForeignKey("journal_transactions.id"), unique=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Posting(Base):
    """One leg: positive = debit, negative = credit. Never updated, never deleted."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount <> 0", name="nonzero"),
        Index("ix_postings_account_id_id", "account_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("journal_transactions.id"), index=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("ledger_accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class JournalSeal(Base):
    """Sealing a transaction checks it balances (a trigger); no leg may be added afterwards."""

    __tablename__ = "journal_seals"

    transaction_id: Mapped[int] = mapped_column(
        ForeignKey("journal_transactions.id"), primary_key=True
    )


class ClosedDay(Base):
    """A closed business day: postings dated in it are refused (by a trigger)."""

    __tablename__ = "closed_days"

    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_by: Mapped[str] = mapped_column(String(120))


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("refunded_amount >= 0 AND refunded_amount <= amount", name="refunds"),
        Index("ix_payments_status_expires_at", "status", "expires_at"),
        Index("ix_payments_merchant_id_business_date", "merchant_id", "business_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str | None] = mapped_column(String(16), unique=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="VND")
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24), index=True)
    purpose: Mapped[str] = mapped_column(String(24))
    owner_ref: Mapped[str | None] = mapped_column(String(80), index=True)
    credit_account: Mapped[str] = mapped_column(String(80))
    payer_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    merchant_id: Mapped[int | None] = mapped_column(BigInteger)
    stall_id: Mapped[int | None] = mapped_column(BigInteger)
    description: Mapped[str | None] = mapped_column(String(500))
    qr_payload: Mapped[str | None] = mapped_column(String(512))
    external_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    expires_at: Mapped[datetime | None]
    succeeded_at: Mapped[datetime | None]
    cancelled_at: Mapped[datetime | None]
    refunded_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    bank_transaction_id: Mapped[str | None] = mapped_column(String(100))
    counterparty_account: Mapped[str | None] = mapped_column(String(40))
    counterparty_bank_bin: Mapped[str | None] = mapped_column(String(6))
    counterparty_name: Mapped[str | None] = mapped_column(String(200))


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (CheckConstraint("amount > 0", name="amount_positive"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    destination: Mapped[str] = mapped_column(String(16))  # wallet | bank
    status: Mapped[str] = mapped_column(String(16))  # succeeded (wallet) | pending_payout (bank)
    reason: Mapped[str | None] = mapped_column(String(300))
    counterparty_account: Mapped[str | None] = mapped_column(String(40))
    counterparty_bank_bin: Mapped[str | None] = mapped_column(String(6))
    business_date: Mapped[date] = mapped_column(Date, index=True)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class StaticCode(Base):
    """A stall's static VietQR: its reference routes a credit to the stall's merchant."""

    __tablename__ = "static_codes"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    reference: Mapped[str] = mapped_column(String(16), unique=True)
    stall_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger)
    credit_account: Mapped[str] = mapped_column(String(80))
    terminal_label: Mapped[str] = mapped_column(String(25))
    payload: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NotificationStatus(StrEnum):
    MATCHED = "matched"
    SUSPENSE = "suspense"
    DUPLICATE = "duplicate"


class BankNotification(Base):
    """Every credit the bank told us about, once (unique bank transaction id)."""

    __tablename__ = "bank_notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(100), unique=True)
    account_number: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    credited_at: Mapped[datetime]
    description: Mapped[str] = mapped_column(String(500), default="")
    counterparty_name: Mapped[str | None] = mapped_column(String(200))
    counterparty_account: Mapped[str | None] = mapped_column(String(40))
    counterparty_bank_bin: Mapped[str | None] = mapped_column(String(6))
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(60))
    reference: Mapped[str | None] = mapped_column(String(16))
    payment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]


class SandboxTransfer(Base):
    """What the simulated bank 'transferred' (sandbox only); also feeds simulated statements."""

    __tablename__ = "sandbox_transfers"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[str] = mapped_column(String(100), unique=True)
    account_number: Mapped[str] = mapped_column(String(40))
    amount: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(2), default="CR")
    description: Mapped[str] = mapped_column(String(500))
    counterparty_name: Mapped[str] = mapped_column(String(200))
    counterparty_account: Mapped[str] = mapped_column(String(40))
    counterparty_bank_bin: Mapped[str] = mapped_column(String(6))
    credited_at: Mapped[datetime]
    notified_at: Mapped[datetime | None]
    created_by: Mapped[int | None] = mapped_column(BigInteger)


class MerchantEvent(Base):
    """An event for a merchant (Standard Webhooks payload); the catch-up list reads these."""

    __tablename__ = "merchant_events"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    type: Mapped[str] = mapped_column(String(60))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(BigInteger, index=True)
    url: Mapped[str] = mapped_column(String(500))
    secrets: Mapped[list[str]] = mapped_column(JSON)  # newest first; all sign during rotation
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (UniqueConstraint("event_id", "endpoint_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("merchant_events.id"))
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
