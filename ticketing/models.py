"""Ticketing tables: fare products, concessions, devices, tickets, revocations, validators, taps.

Ticket ids are integers below 2^63 and fare-product ids at most 65,535: the same numbers the TV2
credential carries (SPEC §13). Money is integer VND (BIGINT).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, BigId


class TicketStatus(StrEnum):
    ACTIVE = "active"
    REVOKED = "revoked"
    CONSUMED = "consumed"


class TapSource(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class FlagKind(StrEnum):
    IMPOSSIBLE_JOURNEY = "impossible_journey"
    RIDE_REUSED = "ride_reused"  # a single ride accepted twice by offline gates


class FlagStatus(StrEnum):
    OPEN = "open"
    CONFIRMED = "confirmed"  # staff agree: the ticket stays revoked
    DISMISSED = "dismissed"  # staff disagree: the ticket was un-revoked


class FareProduct(Base):
    __tablename__ = "fare_products"
    __table_args__ = (
        CheckConstraint("id >= 1 AND id <= 65535", name="id_u16"),
        CheckConstraint("price >= 0 AND price <= 1000000000000", name="price_range"),
        CheckConstraint("passback_seconds >= 0", name="passback_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    kind: Mapped[str] = mapped_column(String(20))
    mode: Mapped[str] = mapped_column(String(10))
    price: Mapped[int] = mapped_column(BigInteger)
    validity_hours: Mapped[int | None] = mapped_column(Integer)
    routes: Mapped[list[str] | None] = mapped_column(JSON)
    passback_seconds: Mapped[int] = mapped_column(Integer, default=900)
    concession_prices: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)
    band: Mapped[str | None] = mapped_column(String(80))
    name_vi: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConcessionCategory(Base):
    """A group of riders the city lets ride free or at half price (set by admins)."""

    __tablename__ = "concession_categories"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    group: Mapped[str] = mapped_column(String(20))
    name_vi: Mapped[str] = mapped_column(String(200))
    name_en: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CommuterConcession(Base):
    """A commuter's concession, verified by an admin against documents (audited)."""

    __tablename__ = "commuter_concessions"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    category_code: Mapped[str] = mapped_column(ForeignKey("concession_categories.code"))
    verified_by: Mapped[str] = mapped_column(String(120))
    verified_at: Mapped[datetime] = mapped_column(default=utcnow)
    valid_until: Mapped[datetime | None]
    note: Mapped[str | None] = mapped_column(Text)


class Device(Base):
    """A commuter's phone: the P-256 public key its credentials are bound to."""

    __tablename__ = "commuter_devices"
    __table_args__ = (UniqueConstraint("user_id", "public_key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary(33))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        CheckConstraint("price >= 0", name="price_positive"),
        Index("ix_tickets_user_id_id", "user_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    fare_product_id: Mapped[int] = mapped_column(ForeignKey("fare_products.id"))
    # None: a phone without WebCrypto, which shows pre-signed fallback tokens instead.
    device_id: Mapped[int | None] = mapped_column(ForeignKey("commuter_devices.id"))
    status: Mapped[str] = mapped_column(String(16), default=TicketStatus.ACTIVE)
    valid_from: Mapped[datetime]
    valid_until: Mapped[datetime]
    price: Mapped[int] = mapped_column(BigInteger)
    concession_category: Mapped[str | None] = mapped_column(String(40))
    payment_id: Mapped[int | None] = mapped_column(BigInteger)
    consumed_at: Mapped[datetime | None]
    rebind_count: Mapped[int] = mapped_column(Integer, default=0)
    last_rebind_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Revocation(Base):
    """A ticket (or one device binding of it) that gates must refuse until `until`.

    `seq` orders changes for the bundle's delta sync: it is taken from the `revocations`
    counter on creation and again when the revocation is lifted, so `since` finds removals too.
    """

    __tablename__ = "ticket_revocations"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    device_key: Mapped[bytes | None] = mapped_column(LargeBinary(33))
    reason: Mapped[str] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    until: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    created_by: Mapped[str] = mapped_column(String(120))
    lifted_at: Mapped[datetime | None]
    lifted_by: Mapped[str | None] = mapped_column(String(120))
    seq: Mapped[int] = mapped_column(BigInteger, index=True)


class Validator(Base):
    """A registered gate (metro, at a station) or bus validator (on a route)."""

    __tablename__ = "validators"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), default="")
    mode: Mapped[str] = mapped_column(String(10))
    route: Mapped[str | None] = mapped_column(String(40))
    station: Mapped[str | None] = mapped_column(String(40))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Tap(Base):
    """One scan at a validator, online or uploaded later; (validator, seq) is its idempotent id.

    At most one accepted tap per (validator, ticket, step): a partial unique index, so two
    requests racing to accept the same step cannot both win.
    """

    __tablename__ = "taps"
    __table_args__ = (
        UniqueConstraint("validator_id", "validator_seq"),
        Index(
            "uq_taps_accepted_step",
            "validator_id",
            "ticket_id",
            "step",
            unique=True,
            postgresql_where=text("decision = 'accept'"),
            sqlite_where=text("decision = 'accept'"),
        ),
        Index("ix_taps_ticket_id_decided_at", "ticket_id", "decided_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    validator_id: Mapped[str] = mapped_column(String(64))
    validator_seq: Mapped[int] = mapped_column(BigInteger)
    qr_sha256: Mapped[str] = mapped_column(String(64))
    ticket_id: Mapped[int | None] = mapped_column(BigInteger)
    step: Mapped[int | None] = mapped_column(BigInteger)
    decision: Mapped[str] = mapped_column(String(8))
    reason: Mapped[str] = mapped_column(String(32))
    skew: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(8))
    device_decision: Mapped[str | None] = mapped_column(String(8))
    device_reason: Mapped[str | None] = mapped_column(String(32))
    lat: Mapped[float | None] = mapped_column(Float)
    lon: Mapped[float | None] = mapped_column(Float)
    scanned_at: Mapped[datetime]  # the gate's clock, as it reported the scan
    decided_at: Mapped[datetime]  # the clock the decision used: ours online, the scan offline
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    @property
    def passed(self) -> bool:
        """Did the rider go through? Online: our accept; offline: the gate's own accept."""
        if self.source == TapSource.OFFLINE:
            return self.device_decision == "accept"
        return self.decision == "accept"


class RevenueFlag(Base):
    """Evidence of misuse found in taps; the ticket is revoked when the flag is raised."""

    __tablename__ = "revenue_flags"
    __table_args__ = (UniqueConstraint("kind", "tap_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    ticket_id: Mapped[int] = mapped_column(ForeignKey("tickets.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    tap_id: Mapped[int] = mapped_column(BigInteger)
    other_tap_id: Mapped[int | None] = mapped_column(BigInteger)
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[str] = mapped_column(String(16), default=FlagStatus.OPEN, index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(120))
    note: Mapped[str | None] = mapped_column(Text)


class Counter(Base):
    """Named counters whose row lock orders writers (`bundle`: the bundle change sequence)."""

    __tablename__ = "ticketing_counters"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
