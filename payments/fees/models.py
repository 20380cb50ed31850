"""Tables of fees and waivers: the public-service catalogue, fee versions and waiver rules
(insert-only, versioned by effective date; triggers in migration 0005 refuse UPDATE and
DELETE), applications with their quote frozen in, and one receipt counter row per year.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.clock import utcnow
from core.db import Base, BigId
from payments.models import Payment


class ApplicationStatus(StrEnum):
    AWAITING_PAYMENT = "awaiting_payment"
    PAID = "paid"  # the payable was paid; receipt issued
    FEE_WAIVED = "fee_waived"  # nothing to pay; receipt issued at once


class PublicService(Base):
    """A public service of the city's online portal (a catalogue entry; fees are versions)."""

    __tablename__ = "public_services"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    name_vi: Mapped[str] = mapped_column(String(300))
    name_en: Mapped[str] = mapped_column(String(300))
    authority_vi: Mapped[str] = mapped_column(String(300))
    authority_en: Mapped[str] = mapped_column(String(300))
    council_procedure: Mapped[bool] = mapped_column(Boolean, default=False)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeeVersion(Base):
    """The fee of a service by channel from a date. Never edited: a new version supersedes."""

    __tablename__ = "fee_versions"
    __table_args__ = (
        CheckConstraint("counter_fee >= 0 AND online_fee >= 0", name="fees_not_negative"),
        # No convenience fee, ever (SPEC §8): online is never dearer than the counter.
        CheckConstraint("online_fee <= counter_fee", name="online_not_above_counter"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from", name="dates_ordered"
        ),
        Index("ix_fee_versions_service_id_effective_from", "service_id", "effective_from"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("public_services.id"))
    counter_fee: Mapped[int] = mapped_column(BigInteger)
    online_fee: Mapped[int] = mapped_column(BigInteger)
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    legal_basis: Mapped[str] = mapped_column(Text, default="")
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WaiverRule(Base):
    """A waiver by scope, channel and beneficiary category, valid between two dates.

    Never edited: to change or end a rule an admin adds a version that `supersedes` it from
    its own effective_from (basis_points 0 ends the waiver).
    """

    __tablename__ = "fee_waiver_rules"
    __table_args__ = (
        CheckConstraint("basis_points >= 0 AND basis_points <= 10000", name="basis_points"),
        CheckConstraint("scope IN ('all_services','council_procedures','service')", name="scope"),
        CheckConstraint(
            "(scope = 'service') = (service_id IS NOT NULL)", name="service_scope_has_service"
        ),
        CheckConstraint("channel IS NULL OR channel IN ('online','counter')", name="channel"),
        CheckConstraint(
            "effective_to IS NULL OR effective_to >= effective_from", name="dates_ordered"
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(24))
    service_id: Mapped[int | None] = mapped_column(ForeignKey("public_services.id"))
    channel: Mapped[str | None] = mapped_column(String(16))
    beneficiary_category: Mapped[str | None] = mapped_column(String(40))
    basis_points: Mapped[int] = mapped_column(Integer)
    reason_code: Mapped[str] = mapped_column(String(60), index=True)
    legal_basis: Mapped[str] = mapped_column(Text)
    effective_from: Mapped[date] = mapped_column(Date)
    effective_to: Mapped[date | None] = mapped_column(Date)
    supersedes_id: Mapped[int | None] = mapped_column(ForeignKey("fee_waiver_rules.id"))
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FeeApplication(Base):
    """A citizen's submission with the quote it was filed under (frozen: later rule changes
    never alter it). `payable = gross_fee - waived_amount` is enforced by the database."""

    __tablename__ = "fee_applications"
    __table_args__ = (
        CheckConstraint("gross_fee >= 0 AND waived_amount >= 0 AND payable >= 0", name="amounts"),
        CheckConstraint("payable = gross_fee - waived_amount", name="payable_is_gross_less_waived"),
        CheckConstraint("channel IN ('online','counter')", name="channel"),
        CheckConstraint("status IN ('awaiting_payment','paid','fee_waived')", name="status"),
        Index("ix_fee_applications_completed_day_service", "completed_business_date", "service_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    service_id: Mapped[int] = mapped_column(ForeignKey("public_services.id"))
    applicant_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    channel: Mapped[str] = mapped_column(String(16))
    beneficiary_category: Mapped[str | None] = mapped_column(String(40))
    gross_fee: Mapped[int] = mapped_column(BigInteger)
    waived_amount: Mapped[int] = mapped_column(BigInteger)
    payable: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3), default="VND")
    fee_version_id: Mapped[int] = mapped_column(ForeignKey("fee_versions.id"))
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("fee_waiver_rules.id"))
    rule_decided_by: Mapped[str | None] = mapped_column(String(32))
    rule_why: Mapped[str | None] = mapped_column(String(300))
    legal_basis: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(24), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), unique=True)
    receipt_no: Mapped[str | None] = mapped_column(String(20), unique=True)
    business_date: Mapped[date] = mapped_column(Date, index=True)
    completed_business_date: Mapped[date | None] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None]

    service: Mapped[PublicService] = relationship(lazy="joined")
    rule: Mapped[WaiverRule | None] = relationship(lazy="joined")
    payment: Mapped[Payment | None] = relationship(lazy="joined")


class ReceiptCounter(Base):
    """The last receipt number issued in a year; its row is locked while a number is taken."""

    __tablename__ = "fee_receipt_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_value: Mapped[int] = mapped_column(BigInteger, default=0)
