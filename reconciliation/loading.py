# ruff: noqa: S608 - SQL is assembled from module constants only; every value is a bind parameter
"""Bulk loading of statement lines inside the caller's transaction (flushes, never commits).

PostgreSQL: the lines are written as COPY text (`reconciliation.lines`) straight into
`recon_statement_lines` under a savepoint, so the database inserts while Python parses the
next lines. A bank transaction id we already hold (or one repeated in the file) makes that
COPY fail on the unique index; the savepoint is rolled back and the file is read again into a
temporary staging table, then moved with one set-based `INSERT … ON CONFLICT DO NOTHING`
that skips the ids we hold (the first occurrence in a file wins). SQLite: the staging path,
filled with `executemany` in batches. Memory stays flat: rows are streamed, never collected.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import IO, Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from reconciliation.lines import (
    LINE_COLUMNS,
    LineRow,
    copy_text,
    copy_value,
    fast_copy_text,
    to_row,
)
from reconciliation.statements import (
    LineError,
    StatementLine,
    csv_line,
    csv_records,
    read_camt053,
    read_csv,
)

MAX_ERRORS = 1000  # kept per statement; the counts cover every line
SQLITE_BATCH = 2000
COPY_CHUNK = 1000  # lines per write to the COPY stream
UNIQUE_VIOLATION = "23505"
ANALYZE_AFTER = 10_000  # accepted lines after which the lines' statistics are refreshed

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

OpenStream = Callable[[], AbstractContextManager[IO[bytes]]]


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
    """Turns a reader's results into rows (or COPY text) to load, and counted, capped errors."""

    def __init__(self, result: LoadResult) -> None:
        self.result = result
        self.valid = 0
        self.refs: list[tuple[int, str, str]] = []

    def rows(self, results: Iterable[StatementLine | LineError]) -> Iterator[LineRow]:
        for item in results:
            row = self.row(item)
            if row is not None:
                yield row

    def row(self, item: StatementLine | LineError) -> LineRow | None:
        outcome = item if isinstance(item, LineError) else to_row(item)
        if isinstance(outcome, LineError):
            self.reject(outcome)
            return None
        row, refs = outcome
        self.valid += 1
        for ref in refs:
            self.refs.append((row.line_no, row.bank_txn_id, ref))
        return row

    def copy_chunks(self, fmt: str, stream: IO[bytes], prefix: str = "") -> Iterator[str]:
        """COPY text of every accepted line, `prefix` before each, COPY_CHUNK lines at a time.

        A plain CSV line never becomes an object (`fast_copy_text`); one loop, no generator
        per line: a million-line import spends its Python time here.
        """
        lines: Iterator[str] = (
            self._csv_copy_lines(stream)
            if fmt == "csv"
            else (copy_text(row) for row in self.rows(read_statement(fmt, stream)))
        )
        chunk: list[str] = []
        for line in lines:
            chunk.append(prefix)
            chunk.append(line)
            if len(chunk) >= 2 * COPY_CHUNK:
                yield "".join(chunk)
                chunk = []
        if chunk:
            yield "".join(chunk)

    def _csv_copy_lines(self, stream: IO[bytes]) -> Iterator[str]:
        for record in csv_records(stream):
            if isinstance(record, LineError):
                self.reject(record)
                continue
            fast = fast_copy_text(*record)
            if fast is not None:
                self.valid += 1
                yield fast
                continue
            checked = self.row(csv_line(*record))
            if checked is not None:
                yield copy_text(checked)

    def reject(self, error: LineError) -> None:
        self.result.rejected += 1
        if len(self.result.errors) < MAX_ERRORS:
            self.result.errors.append({"line": error.line_no, "message": error.message})


def read_statement(fmt: str, stream: IO[bytes]) -> Iterator[StatementLine | LineError]:
    """The reader of a statement format (`csv` or `camt053`, into a VND account)."""
    if fmt == "csv":
        yield from read_csv(stream)
    else:
        yield from read_camt053(stream, account_currency="VND")


def load_lines(
    session: Session,
    statement_id: int,
    account_number: str,
    fmt: str,
    open_stream: OpenStream,
) -> LoadResult:
    """Store every accepted line of a statement file; count and keep the refused ones.

    `open_stream` opens the file afresh each time (it may be read twice: see the module).
    Guarantees: idempotent by (account, bank_txn_id) — a line already stored is counted in
    `skipped`, not stored twice (the first occurrence in a file wins); runs in the caller's
    transaction, so a `StatementFormatError` raised by the reader half-way leaves nothing
    behind once the caller rolls back.
    """
    postgres = session.get_bind().dialect.name == "postgresql"
    result = None
    if postgres:
        result = _copy_direct(session, statement_id, account_number, fmt, open_stream)
    if result is None:
        result = _load_staged(session, statement_id, account_number, fmt, open_stream, postgres)
    if postgres and result.accepted >= ANALYZE_AFTER:
        # The run of these days comes next and plans its read of them by these statistics,
        # which autovacuum would refresh only later. A small sample (row counts, distinct
        # counts: what that plan needs) keeps this quick on a table of many days.
        session.execute(text("SET LOCAL default_statistics_target = 10"))
        session.execute(text("ANALYZE recon_statement_lines"))
        session.execute(text("RESET default_statistics_target"))
    return result


def _copy_direct(
    session: Session, statement_id: int, account_number: str, fmt: str, open_stream: OpenStream
) -> LoadResult | None:
    """PostgreSQL, optimistic: COPY into the lines table; None when an id was already held."""
    result = LoadResult()
    tally = _Tally(result)
    prefix = f"{statement_id}\t{copy_value(account_number)}\t"
    savepoint = session.begin_nested()
    try:
        with open_stream() as stream:
            _copy(
                session,
                f"recon_statement_lines (statement_id, account_number, {_COLUMNS})",
                tally.copy_chunks(fmt, stream, prefix),
            )
    except Exception as exc:
        if _sqlstate(exc) != UNIQUE_VIOLATION:
            raise
        savepoint.rollback()
        return None
    savepoint.commit()
    _stage_refs(session, True, tally.refs)
    _merge_refs(session, statement_id, account_number)
    result.accepted = tally.valid
    return result


def _sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE of a driver error, raw or wrapped by SQLAlchemy."""
    while exc is not None:
        state = getattr(exc, "sqlstate", None)
        if state:
            return str(state)
        exc = getattr(exc, "orig", None) or exc.__cause__
    return None


def _load_staged(
    session: Session,
    statement_id: int,
    account_number: str,
    fmt: str,
    open_stream: OpenStream,
    postgres: bool,
) -> LoadResult:
    result = LoadResult()
    tally = _Tally(result)
    _create_staging(session, postgres)
    with open_stream() as stream:
        if postgres:
            _copy(session, f"recon_stage ({_COLUMNS})", tally.copy_chunks(fmt, stream))
        else:
            _insert_rows(session, tally.rows(read_statement(fmt, stream)))
    inserted = _merge_lines(session, statement_id, account_number)
    _stage_refs(session, postgres, tally.refs)
    _merge_refs(session, statement_id, account_number)
    result.accepted = inserted
    result.skipped = tally.valid - inserted
    session.execute(text("DROP TABLE recon_stage"))
    return result


def _create_staging(session: Session, postgres: bool) -> None:
    if postgres:
        columns = ", ".join(f"{name} {_PG_TYPES[name]}" for name in LINE_COLUMNS)
        session.execute(text(f"CREATE TEMP TABLE recon_stage ({columns})"))
    else:
        session.execute(text(f"CREATE TEMP TABLE recon_stage ({_COLUMNS})"))


def _copy(session: Session, target: str, chunks: Iterable[str]) -> None:
    """PostgreSQL: stream chunks of COPY text into `target`."""
    driver = session.connection().connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor, cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for chunk in chunks:
            copy.write(chunk)


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


def _stage_refs(session: Session, postgres: bool, refs: list[tuple[int, str, str]]) -> None:
    """The references of batch lines (a few per statement) into a temporary table."""
    columns = (
        "line_no integer, bank_txn_id text, ref text" if postgres else "line_no, bank_txn_id, ref"
    )
    session.execute(text(f"CREATE TEMP TABLE IF NOT EXISTS recon_stage_refs ({columns})"))
    session.execute(text("DELETE FROM recon_stage_refs"))
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
    session.execute(text("DROP TABLE recon_stage_refs"))
