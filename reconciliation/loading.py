# ruff: noqa: S608 - SQL is assembled from module constants only; every value is a bind parameter
"""Bulk loading of statement lines inside the caller's transaction (flushes, never commits).

Rows go into a temporary staging table — through COPY on PostgreSQL (psycopg's
`cursor.copy`), `executemany` in batches on SQLite — and from there into
`recon_statement_lines` with one set-based `INSERT … ON CONFLICT DO NOTHING`, which skips bank
transaction ids we already hold. Memory stays flat: rows are streamed, never collected.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from reconciliation.lines import LINE_COLUMNS, LineRow, to_row
from reconciliation.statements import LineError, StatementLine

MAX_ERRORS = 1000  # kept per statement; the counts cover every line
SQLITE_BATCH = 2000

_PG_TYPES = {
    "line_no": "integer",
    "bank_txn_id": "text",
    "booked_at": "timestamptz",
    "business_date": "date",
    "value_date": "date",
    "amount": "bigint",
    "direction": "text",
    "description": "text",
    "norm_description": "text",
    "reference": "text",
    "ref_count": "integer",
    "counterparty_account": "text",
    "counterparty_name": "text",
}
_COLUMNS = ", ".join(LINE_COLUMNS)


@dataclass
class LoadResult:
    accepted: int = 0
    rejected: int = 0
    skipped: int = 0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.accepted + self.rejected + self.skipped


class _Tally:
    """Splits a reader's results into rows to load and counted, capped errors."""

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        self.valid = 0
        self.refs: list[tuple[int, str, str]] = []

    def rows(self, results: Iterable[StatementLine | LineError]) -> Iterator[LineRow]:
        for item in results:
            outcome = item if isinstance(item, LineError) else to_row(item)
            if isinstance(outcome, LineError):
                self.reject(outcome)
                continue
            row, refs = outcome
            self.valid += 1
            for ref in refs:
                self.refs.append((row.line_no, row.bank_txn_id, ref))
            yield row

    def reject(self, error: LineError) -> None:
        self.result.rejected += 1
        if len(self.result.errors) < MAX_ERRORS:
            self.result.errors.append({"line": error.line_no, "message": error.message})


def load_lines(
    session: Session,
    statement_id: int,
    account_number: str,
    results: Iterable[StatementLine | LineError],
) -> LoadResult:
    """Store every accepted line of a reader's results; count and keep the refused ones.

    Guarantees: set-based and idempotent by (account, bank_txn_id) — a line already stored is
    counted in `skipped`, not stored twice (the first occurrence in a file wins); runs in the
    caller's transaction, so a `StatementFormatError` raised by the reader half-way leaves
    nothing behind once the caller rolls back.
    """
    result = LoadResult()
    tally = _Tally(result)
    postgres = session.get_bind().dialect.name == "postgresql"
    _create_staging(session, postgres)
    if postgres:
        _copy_rows(session, tally.rows(results))
    else:
        _insert_rows(session, tally.rows(results))
    inserted = _merge_lines(session, statement_id, account_number)
    _stage_refs(session, tally.refs)
    _merge_refs(session, statement_id, account_number)
    result.accepted = inserted
    result.skipped = tally.valid - inserted
    if not postgres:
        session.execute(text("DROP TABLE recon_stage"))
        session.execute(text("DROP TABLE recon_stage_refs"))
    return result


def _create_staging(session: Session, postgres: bool) -> None:
    if postgres:
        columns = ", ".join(f"{name} {_PG_TYPES[name]}" for name in LINE_COLUMNS)
        session.execute(text(f"CREATE TEMP TABLE recon_stage ({columns}) ON COMMIT DROP"))
        session.execute(
            text(
                "CREATE TEMP TABLE recon_stage_refs (line_no integer, bank_txn_id text, "
                "ref text) ON COMMIT DROP"
            )
        )
    else:
        session.execute(text(f"CREATE TEMP TABLE recon_stage ({_COLUMNS})"))
        session.execute(text("CREATE TEMP TABLE recon_stage_refs (line_no, bank_txn_id, ref)"))


def _copy_rows(session: Session, rows: Iterable[LineRow]) -> None:
    """PostgreSQL: stream the rows through COPY (psycopg adapts dates and times in C)."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with (
        driver.cursor() as cursor,
        cursor.copy(f"COPY recon_stage ({_COLUMNS}) FROM STDIN") as copy,
    ):
        for row in rows:
            copy.write_row(row)


def _sqlite_value(value: object) -> object:
    # SQLAlchemy stores SQLite date-times as naive UTC "YYYY-MM-DD HH:MM:SS.ffffff".
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, date):
        return value.isoformat()
    return value


def _insert_rows(session: Session, rows: Iterator[LineRow]) -> None:
    """SQLite: `executemany` in batches of SQLITE_BATCH rows."""
    connection = session.connection()
    marks = ", ".join("?" for _ in LINE_COLUMNS)
    sql = f"INSERT INTO recon_stage ({_COLUMNS}) VALUES ({marks})"
    batch: list[tuple[object, ...]] = []
    for row in rows:
        batch.append(tuple(_sqlite_value(value) for value in row))
        if len(batch) >= SQLITE_BATCH:
            connection.exec_driver_sql(sql, batch)
            batch = []
    if batch:
        connection.exec_driver_sql(sql, batch)


def _stage_refs(session: Session, refs: list[tuple[int, str, str]]) -> None:
    if refs:
        session.execute(
            text("INSERT INTO recon_stage_refs (line_no, bank_txn_id, ref) VALUES (:n, :t, :r)"),
            [{"n": n, "t": t, "r": r} for n, t, r in refs],
        )


def _merge_lines(session: Session, statement_id: int, account_number: str) -> int:
    """Move staged rows into the lines table, skipping bank ids we already hold; returns how
    many were new. The first occurrence of a bank id in a file wins: staging is read in the
    order it was written (a fresh table, scanned by this session only), so no sort is needed.
    """
    params = {"sid": statement_id, "acct": account_number}
    # "WHERE true" keeps SQLite's upsert parser from reading ON CONFLICT as a join constraint.
    inserted = session.execute(
        text(
            f"INSERT INTO recon_statement_lines (statement_id, account_number, {_COLUMNS}) "
            f"SELECT :sid, :acct, {_COLUMNS} FROM recon_stage WHERE true "
            "ON CONFLICT (account_number, bank_txn_id) DO NOTHING"
        ),
        params,
    ).rowcount  # type: ignore[attr-defined]
    return int(inserted)


def _merge_refs(session: Session, statement_id: int, account_number: str) -> None:
    params = {"sid": statement_id, "acct": account_number}
    session.execute(
        text(
            "INSERT INTO recon_line_refs (line_id, ref) "
            "SELECT l.id, r.ref FROM recon_stage_refs r JOIN recon_statement_lines l "
            "ON l.account_number = :acct AND l.bank_txn_id = r.bank_txn_id "
            "AND l.line_no = r.line_no WHERE l.statement_id = :sid "
            "ON CONFLICT DO NOTHING"
        ),
        params,
    )
