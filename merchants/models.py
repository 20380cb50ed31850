"""Merchants' tables: merchants and their staff, market stalls, payout batches, and parking
(lots, sessions, monthly passes). Money is integer VND (BIGINT); instants are UTC.
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
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, BigId


class MerchantCategory(StrEnum):
    MARKET_VENDOR = "market_vendor"
    PARKING_OPERATOR = "parking_operator"
    TRANSIT_OPERATOR = "transit_operator"
    PUBLIC_SERVICE = "public_service"


class StaffRole(StrEnum):
    OWNER = "owner"
    MANAGER = "manager"
    CASHIER = "cashier"
    ATTENDANT = "attendant"


class PayoutStatus(StrEnum):
    POSTED = "posted"  # posted to the ledger and listed in the bank payout file
    NOTHING_DUE = "nothing_due"  # refunds and discount ate the day: carried to the next batch


class SessionStatus(StrEnum):
    OPEN = "open"  # the vehicle is in the lot
    AWAITING_PAYMENT = "awaiting_payment"  # priced at the exit, waiting for the QR transfer
    CLOSED = "closed"  # paid (or free) and gone


class ExitMethod(StrEnum):
    WALLET = "wallet"
    VIETQR = "vietqr"
    CASH = "cash"
    PASS = "pass"  # noqa: S105 - a valid monthly pass: nothing to pay (not a password)
    FREE = "free"  # inside the grace period


class Merchant(Base):
    __tablename__ = "merchants"
    __table_args__ = (
        CheckConstraint("discount_rate_bp >= 0 AND discount_rate_bp <= 10000", name="discount"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    legal_name: Mapped[str] = mapped_column(String(200))
    short_name: Mapped[str] = mapped_column(String(25))  # QR tag 59 and payout notes
    category: Mapped[str] = mapped_column(String(24), index=True)
    settlement_bin: Mapped[str] = mapped_column(String(6))
    settlement_account: Mapped[str] = mapped_column(String(19))
    settlement_account_name: Mapped[str] = mapped_column(String(200))
    discount_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class MerchantStaff(Base):
    __tablename__ = "merchant_staff"
    __table_args__ = (UniqueConstraint("merchant_id", "user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Stall(Base):
    __tablename__ = "stalls"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    market: Mapped[str] = mapped_column(String(120))
    code: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(120))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PayoutBatch(Base):
    """One merchant's payout for one business day: a unique row, so a re-run adds nothing."""

    __tablename__ = "payout_batches"
    __table_args__ = (
        UniqueConstraint("merchant_id", "business_date"),
        CheckConstraint("net_amount >= 0 AND discount_amount >= 0", name="amounts"),
        CheckConstraint(
            "gross_amount = net_amount + discount_amount OR status <> 'posted'", name="balanced"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    business_date: Mapped[date] = mapped_column(Date, index=True)
    period_start: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16))
    charges_count: Mapped[int] = mapped_column(Integer, default=0)
    charges_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    refunds_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    gross_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    discount_rate_bp: Mapped[int] = mapped_column(Integer, default=0)
    discount_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    net_amount: Mapped[int] = mapped_column(BigInteger, default=0)
    bank_bin: Mapped[str] = mapped_column(String(6))
    bank_account: Mapped[str] = mapped_column(String(19))
    beneficiary_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(80))
    journal_key: Mapped[str | None] = mapped_column(String(60), unique=True)
    posted_on: Mapped[date | None] = mapped_column(Date)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParkingLot(Base):
    __tablename__ = "parking_lots"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(20), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(300), default="")
    operator_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    capacity: Mapped[dict[str, Any]] = mapped_column(JSON)  # vehicle class -> spaces
    tariff: Mapped[dict[str, Any]] = mapped_column(JSON)  # merchants.tariffs document
    pass_prices: Mapped[dict[str, Any]] = mapped_column(JSON)  # vehicle class -> monthly price
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParkingSession(Base):
    """One vehicle's stay. Its audit trail (who opened and closed it, on which device) is
    in these columns and, change by change, in `audit_records`."""

    __tablename__ = "parking_sessions"
    __table_args__ = (
        # One vehicle inside a lot at a time: the database decides between concurrent entries.
        Index(
            "uq_parking_sessions_lot_plate_inside",
            "lot_id",
            "plate",
            unique=True,
            postgresql_where=text("status <> 'closed'"),
            sqlite_where=text("status <> 'closed'"),
        ),
        Index("ix_parking_sessions_lot_id_status", "lot_id", "status"),
        Index("ix_parking_sessions_lot_id_business_date", "lot_id", "business_date"),
        CheckConstraint("amount IS NULL OR amount >= 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("parking_lots.id"))
    plate: Mapped[str] = mapped_column(String(16), index=True)
    vehicle_class: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(20))
    entered_at: Mapped[datetime]
    exited_at: Mapped[datetime | None]
    amount: Mapped[int | None] = mapped_column(BigInteger)
    breakdown: Mapped[list[Any] | None] = mapped_column(JSON)
    method: Mapped[str | None] = mapped_column(String(10))
    payment_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    exit_attempts: Mapped[int] = mapped_column(Integer, default=0)
    pass_id: Mapped[int | None] = mapped_column(BigInteger)
    opened_by: Mapped[str] = mapped_column(String(120))
    opened_device: Mapped[str] = mapped_column(String(64))
    closed_by: Mapped[str | None] = mapped_column(String(120))
    closed_device: Mapped[str | None] = mapped_column(String(64))
    cash_collected_by: Mapped[str | None] = mapped_column(String(120))
    business_date: Mapped[date | None] = mapped_column(Date)  # the day the fee was taken
    closed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParkingPass(Base):
    """A monthly pass for one plate at one lot, paid from the holder's wallet."""

    __tablename__ = "parking_passes"
    __table_args__ = (UniqueConstraint("lot_id", "plate", "month"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("parking_lots.id"))
    plate: Mapped[str] = mapped_column(String(16), index=True)
    vehicle_class: Mapped[str] = mapped_column(String(16))
    month: Mapped[str] = mapped_column(String(7))  # YYYY-MM
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    amount: Mapped[int] = mapped_column(BigInteger)
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    holder_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
