"""Reconciliation's tables: imported statements and their lines, runs, items, resolutions and
closed days. Ledger lines are never copied here: runs read `payments.ledger.clearing_lines()`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Date,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, BigId


class StatementStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class RunStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


UNFINISHED_RUN = (RunStatus.QUEUED, RunStatus.RUNNING)


class Statement(Base):
    """One uploaded statement file and what its import did (counts, first errors)."""

    __tablename__ = "recon_statements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_number: Mapped[str] = mapped_column(String(40))
    format: Mapped[str] = mapped_column(String(10))
    filename: Mapped[str] = mapped_column(String(255), default="")
    status: Mapped[str] = mapped_column(String(16), default=StatementStatus.PENDING)
    lines_total: Mapped[int] = mapped_column(default=0)
    lines_accepted: Mapped[int] = mapped_column(default=0)
    lines_rejected: Mapped[int] = mapped_column(default=0)
    lines_skipped: Mapped[int] = mapped_column(default=0)
    errors: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    message: Mapped[str | None] = mapped_column(Text)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    sha256: Mapped[str] = mapped_column(String(64), default="")
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    finished_at: Mapped[datetime | None]


class StatementLine(Base):
    """One accepted line, unique per (account, bank transaction id) across all statements.

    `norm_description` is the description upper-cased with everything but A-Z and 0-9 removed,
    and `reference` the one payment reference with a valid check character found in it: both
    are computed once at import so that matching is an equality join.
    """

    __tablename__ = "recon_statement_lines"
    __table_args__ = (
        UniqueConstraint("account_number", "bank_txn_id"),
        # Lines arrive a statement (a day) at a time, so they lie on disk in day order: a BRIN
        # index finds a day's lines at almost no cost per inserted line (a million a day).
        Index("ix_recon_statement_lines_business_date", "business_date", postgresql_using="brin"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign key: a per-row constraint check costs seconds on a million-line import; the
    # import writes the statement and its lines in one transaction.
    statement_id: Mapped[int] = mapped_column(BigInteger)
    account_number: Mapped[str] = mapped_column(String(40))
    bank_txn_id: Mapped[str] = mapped_column(String(100))
    line_no: Mapped[int]
    booked_at: Mapped[datetime]
    business_date: Mapped[date] = mapped_column(Date)
    value_date: Mapped[date | None] = mapped_column(Date)
    amount: Mapped[int] = mapped_column(BigInteger)
    direction: Mapped[str] = mapped_column(String(2))
    description: Mapped[str] = mapped_column(Text, default="")
    norm_description: Mapped[str] = mapped_column(Text, default="")
    reference: Mapped[str | None] = mapped_column(String(16))
    ref_count: Mapped[int] = mapped_column(default=0)
    counterparty_account: Mapped[str | None] = mapped_column(String(100))
    counterparty_name: Mapped[str | None] = mapped_column(Text)


class LineRef(Base):
    """The references of a line that names several payments (a batch settlement)."""

    __tablename__ = "recon_line_refs"

    line_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    ref: Mapped[str] = mapped_column(String(100), primary_key=True)


class Run(Base):
    """One reconciliation of one business day and one account; each re-run is a new attempt."""

    __tablename__ = "recon_runs"
    __table_args__ = (
        UniqueConstraint("account_number", "business_date", "attempt"),
        # At most one unfinished run per (day, account): a double click or a double schedule
        # finds the existing run instead of starting a second one.
        Index(
            "uq_recon_runs_unfinished",
            "account_number",
            "business_date",
            unique=True,
            postgresql_where=text("status IN ('queued', 'running')"),
            sqlite_where=text("status IN ('queued', 'running')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_number: Mapped[str] = mapped_column(String(40))
    business_date: Mapped[date] = mapped_column(Date)
    attempt: Mapped[int] = mapped_column(default=1)
    status: Mapped[str] = mapped_column(String(16), default=RunStatus.QUEUED)
    phase: Mapped[str] = mapped_column(String(30), default="queued")
    progress: Mapped[int] = mapped_column(default=0)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    lines_count: Mapped[int] = mapped_column(default=0)
    postings_count: Mapped[int] = mapped_column(default=0)
    # The run's day of bank-clearing lines as the daily report groups them: rows of
    # [kind, purpose, merchant_id, count, amount], reconciliation's own postings excepted.
    # The report reuses them while nothing has arrived since the run started.
    ledger_totals: Mapped[list[list[Any]] | None] = mapped_column(JSON)
    executions: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class Item(Base):
    """One classified outcome of a run: a statement line, a ledger line, or a pair of them.

    `line_amount` is signed (CR positive) and `ledger_amount` is the clearing debit (money in
    positive), so a match has equal amounts. Batches list their ledger lines in ItemMember.
    """

    __tablename__ = "recon_items"
    __table_args__ = (
        # A run writes its items in one statement, so they lie together on disk: BRIN finds
        # them. Items that need a human are few and have their own (partial) index. Every
        # index more costs seconds on a million-line day; uniqueness of items per line and
        # per ledger line holds by construction (phases.py) and is tested.
        Index("ix_recon_items_run_id", "run_id", postgresql_using="brin"),
        Index(
            "ix_recon_items_open",
            "run_id",
            "id",
            postgresql_where=text("category NOT IN ('matched', 'matched_with_fee')"),
            sqlite_where=text("category NOT IN ('matched', 'matched_with_fee')"),
        ),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys here either: a million per-row checks on a busy day (see above).
    run_id: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20), default="none")
    statement_line_id: Mapped[int | None] = mapped_column(BigInteger)
    posting_id: Mapped[int | None] = mapped_column(BigInteger)
    related_posting_id: Mapped[int | None] = mapped_column(BigInteger)
    member_count: Mapped[int] = mapped_column(default=0)
    line_amount: Mapped[int | None] = mapped_column(BigInteger)
    ledger_amount: Mapped[int | None] = mapped_column(BigInteger)
    fee: Mapped[int | None] = mapped_column(BigInteger)
    reason: Mapped[str | None] = mapped_column(String(500))
    resolution_id: Mapped[int | None] = mapped_column(BigInteger)


class ItemMember(Base):
    """A ledger line settled by a one-to-many (batch) item."""

    __tablename__ = "recon_item_members"

    run_id: Mapped[int] = mapped_column(ForeignKey("recon_runs.id"), primary_key=True)
    posting_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("recon_items.id"), index=True)


class Resolution(Base):
    """A finance decision about one line or ledger line of a day; it outlives re-runs.

    Keyed by what it is about (`subject` "line" or "posting" and its id) and the category it
    answered, so a re-run that classifies the same thing the same way finds it resolved.
    """

    __tablename__ = "recon_resolutions"
    __table_args__ = (UniqueConstraint("account_number", "business_date", "subject", "subject_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_number: Mapped[str] = mapped_column(String(40))
    business_date: Mapped[date] = mapped_column(Date)
    subject: Mapped[str] = mapped_column(String(10))
    subject_id: Mapped[int] = mapped_column(BigInteger)
    category: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(Text)
    amount: Mapped[int | None] = mapped_column(BigInteger)
    counter_account: Mapped[str | None] = mapped_column(String(80))
    linked_to: Mapped[str | None] = mapped_column(String(60))
    journal_key: Mapped[str | None] = mapped_column(String(200))
    item_id: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DayClose(Base):
    """A closed business day with its signed report, stored as served."""

    __tablename__ = "recon_day_closes"

    business_date: Mapped[date] = mapped_column(Date, primary_key=True)
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)
    closed_by: Mapped[str] = mapped_column(String(120))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    report_csv: Mapped[bytes] = mapped_column(LargeBinary)
    report_xlsx: Mapped[bytes] = mapped_column(LargeBinary)
    signature_csv: Mapped[str] = mapped_column(Text)
    signature_xlsx: Mapped[str] = mapped_column(Text)
