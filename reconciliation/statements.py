"""Pure, streaming readers for bank statements: our CSV format and ISO 20022 camt.053.

Both readers take a binary stream and yield, in file order, one `StatementLine` for every line they
accept and one `LineError` for every line they refuse; a refused line never stops the stream
(SPEC §9). They hold one CSV record or one camt.053 `Ntry` in memory at a time, never the file.

`StatementFormatError` means the file as a whole is unusable (wrong CSV header, not XML, not a
camt.053 document, a DTD). It can be raised after some lines were yielded (XML that breaks
half-way), so the caller imports inside one transaction and rolls back on it: never a partial
import.

This module imports neither Flask nor the database (STYLE.md: a pure rule module).
"""

from __future__ import annotations

import csv
import io
import itertools
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from enum import StrEnum
from typing import IO, TYPE_CHECKING, NamedTuple, TypeVar

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

    from reconciliation.camt053 import read_camt053

__all__ = [
    "CSV_COLUMNS",
    "MAX_AMOUNT",
    "Direction",
    "LineError",
    "StatementFormatError",
    "StatementLine",
    "StatementSummary",
    "csv_line",
    "csv_records",
    "read_camt053",
    "read_csv",
    "summarise",
]

MAX_AMOUNT = 10**12  # SPEC §2: larger amounts are absurd and refused
CSV_COLUMNS = (
    "bank_txn_id",
    "booked_at",
    "value_date",
    "amount",
    "direction",
    "description",
    "counterparty_account",
    "counterparty_name",
)
# Vietnam has had no daylight saving time since 1975, so a fixed offset is exact for any statement
# and spares us a dependency on the system's tzdata.
VIETNAM_TZ = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")

_T = TypeVar("_T")


class Direction(StrEnum):
    """Money into the account (`CR`) or out of it (`DR`), as the bank wrote it."""

    CR = "CR"
    DR = "DR"


class StatementFormatError(ValueError):
    """The file as a whole cannot be read; nothing from it may be imported."""


@dataclass(slots=True)
class StatementLine:
    """One accepted statement line. `amount` is a positive integer in the account's currency.

    Read-only by convention; not `frozen` because a frozen dataclass costs ~2 µs per
    construction, most of the time an import of a million lines would spend here.
    """

    line_no: int
    bank_txn_id: str
    booked_at: datetime  # always timezone-aware
    value_date: date | None
    amount: int
    direction: Direction
    description: str
    counterparty_account: str | None
    counterparty_name: str | None
    references: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class LineError:
    """One refused statement line: where it is, why it was refused and, if known, the bank's id."""

    line_no: int
    message: str
    bank_txn_id: str | None = None


class StatementSummary(NamedTuple):
    lines_total: int
    lines_accepted: int
    lines_rejected: int
    errors: list[LineError]


class _Reject(Exception):
    """Internal: one field or entry is invalid; becomes a LineError with this message."""


def summarise(
    results: Iterable[StatementLine | LineError], max_errors: int = 100
) -> StatementSummary:
    """Count a reader's results (consuming them) and keep the first `max_errors` errors.

    Guarantees `lines_total == lines_accepted + lines_rejected`; accepted lines are not kept, so
    this runs in constant memory over any file (a dry run before an import).
    """
    accepted = rejected = 0
    errors: list[LineError] = []
    for result in results:
        if isinstance(result, LineError):
            rejected += 1
            if len(errors) < max_errors:
                errors.append(result)
        else:
            accepted += 1
    return StatementSummary(accepted + rejected, accepted, rejected, errors)


def _checked_amount(value: int, raw: str) -> int:
    if value <= 0:
        raise _Reject(f"amount {raw} must be positive")
    if value > MAX_AMOUNT:
        raise _Reject(f"amount {raw} exceeds the maximum of {MAX_AMOUNT}")
    return value


# --------------------------------------------------------------------------------------------
# CSV (SPEC §9 and §13 "Statement CSV")
# --------------------------------------------------------------------------------------------

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_DIGITS = re.compile(r"\d+")
# Bytes that are not UTF-8 come through `surrogateescape` as lone surrogates U+DC80..U+DCFF.
_UNDECODABLE = re.compile("[\udc80-\udcff]")


def read_csv(stream: IO[bytes]) -> Iterator[StatementLine | LineError]:
    """Read a statement in our CSV format, one result per record, in file order.

    Guarantees: UTF-8 with an optional BOM; RFC 4180 quoting (quoted fields may hold commas and
    newlines); `line_no` is the physical line on which a record starts, the header being line 1;
    a bad record yields a `LineError` and reading continues. A header other than exactly
    `CSV_COLUMNS`, or an empty file, raises `StatementFormatError` before anything is yielded.
    The stream is read lazily and is not closed.
    """
    for record in csv_records(stream):
        yield record if isinstance(record, LineError) else csv_line(*record)


def csv_records(stream: IO[bytes]) -> Iterator[tuple[int, list[str]] | LineError]:
    """The records of a statement CSV as `(line_no, fields)`, unchecked, or a `LineError` for
    a record that is not even CSV; what `read_csv` reads, for a loader with a faster path.

    Same guarantees as `read_csv` for the header, line numbers, lazy reading and the stream.
    """
    # Undecodable bytes are reported per line instead of aborting the whole file mid-way.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text, strict=True)
        _check_csv_header(reader)
        yield from _csv_records(text, reader.line_num)
    finally:
        # A garbage-collected TextIOWrapper would close the caller's stream.
        text.detach()


def _check_csv_header(reader: _CsvReader) -> None:
    try:
        header = next(reader)
    except StopIteration:
        raise StatementFormatError("the file is empty: expected a header row") from None
    except csv.Error as exc:
        raise StatementFormatError(f"line 1: unreadable header row ({exc})") from None
    if tuple(header) != CSV_COLUMNS:
        raise StatementFormatError(
            f"line 1: the header must be exactly {','.join(CSV_COLUMNS)}; got {','.join(header)}"
        )


# A physical line with no quote in it (nor NUL, nor the length of the csv module's field
# limit) is one record whose fields are its comma-separated parts: what the csv module would
# read, at less cost. Any other line starts a record that the csv module reads.
_PLAIN_LINE_LIMIT = 100_000


def _csv_records(text: IO[str], line_num: int) -> Iterator[tuple[int, list[str]] | LineError]:
    """The records after the header (which ended on physical line `line_num`)."""
    for line in text:
        line_num += 1
        if '"' not in line and "\x00" not in line and len(line) < _PLAIN_LINE_LIMIT:
            fields = line.rstrip("\r\n").split(",")
            if fields != [""]:  # a blank line is not a record
                yield line_num, fields
            continue
        start, more = line_num, _CountedLines(text)
        reader = csv.reader(itertools.chain((line,), more), strict=True)
        try:
            row = next(reader)  # a quoted field may go on over the next lines
        except csv.Error as exc:
            line_num += more.count
            yield LineError(start, f"malformed CSV: {exc}")
            continue
        line_num += more.count
        if row:
            yield start, row


class _CountedLines:
    """The lines of `text`, counting those taken (the csv module reads a record through it)."""

    def __init__(self, text: IO[str]) -> None:
        self.text = text
        self.count = 0

    def __iter__(self) -> _CountedLines:
        return self

    def __next__(self) -> str:
        line = next(self.text)
        self.count += 1
        return line


_FAST_DIRECTIONS = {"CR": Direction.CR, "DR": Direction.DR}


def csv_line(line_no: int, row: list[str]) -> StatementLine | LineError:
    """One record: the fast path for a clean line, else the checked path that explains."""
    if len(row) == len(CSV_COLUMNS):
        line = _csv_line_fast(line_no, row)
        if line is not None:
            return line
    return _csv_line_checked(line_no, row)


def _csv_line_fast(line_no: int, row: list[str]) -> StatementLine | None:
    """A statement line when every field is plainly valid, else None (never an error).

    A strict subset of `_csv_line_checked`: whatever it accepts, the checked path accepts
    identically (a property test compares them), so there is still one rule. It exists because
    an import of a million lines spends most of its time here.
    """
    if not "".join(row).isascii():
        return None  # non-ASCII text (and undecodable bytes) take the checked path
    txn, booked_raw, value_raw, amount_raw, direction_raw, description, account, name = [
        value.strip() for value in row
    ]
    direction = _FAST_DIRECTIONS.get(direction_raw)
    if not txn or direction is None or not amount_raw.isdigit():
        return None
    amount = int(amount_raw)
    if amount <= 0 or amount > MAX_AMOUNT:
        return None
    try:
        booked_at = datetime.fromisoformat(booked_raw)
        value_date = date.fromisoformat(value_raw) if value_raw else None
    except ValueError:
        return None
    if booked_at.tzinfo is None or (value_raw and not _ISO_DATE.fullmatch(value_raw)):
        return None
    return StatementLine(
        line_no,
        txn,
        booked_at,
        value_date,
        amount,
        direction,
        description,
        account or None,
        name or None,
    )


def _csv_line_checked(line_no: int, row: list[str]) -> StatementLine | LineError:
    bank_txn_id = row[0].strip() or None
    if len(row) != len(CSV_COLUMNS):
        return LineError(
            line_no, f"expected {len(CSV_COLUMNS)} fields, got {len(row)}", bank_txn_id
        )
    if any(_UNDECODABLE.search(field) for field in row):
        return LineError(line_no, "the line is not valid UTF-8", None)
    field = dict(zip(CSV_COLUMNS, (value.strip() for value in row), strict=True))
    problems: list[str] = []

    def parsed(parse: Callable[[str], _T], column: str) -> _T | None:
        try:
            return parse(field[column])
        except _Reject as exc:
            problems.append(str(exc))
            return None

    booked_at = parsed(_csv_booked_at, "booked_at")
    value_date = parsed(_csv_value_date, "value_date")
    amount = parsed(_csv_amount, "amount")
    direction = parsed(_csv_direction, "direction")
    if bank_txn_id is None:
        problems.insert(0, "bank_txn_id is required")
    if problems or bank_txn_id is None or booked_at is None or amount is None or direction is None:
        return LineError(line_no, "; ".join(problems), bank_txn_id)
    return StatementLine(
        line_no=line_no,
        bank_txn_id=bank_txn_id,
        booked_at=booked_at,
        value_date=value_date,
        amount=amount,
        direction=direction,
        description=field["description"],
        counterparty_account=field["counterparty_account"] or None,
        counterparty_name=field["counterparty_name"] or None,
    )


def _csv_booked_at(raw: str) -> datetime:
    if not raw:
        raise _Reject("booked_at is required")
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise _Reject(f"booked_at {raw!r} is not an ISO 8601 date-time") from None
    if moment.tzinfo is None:
        # Without an offset we cannot tell the business day (SPEC §2), so we do not guess.
        raise _Reject(f"booked_at {raw!r} has no UTC offset (e.g. +07:00)")
    return moment


def _csv_value_date(raw: str) -> date | None:
    if not raw:
        return None
    if not _ISO_DATE.fullmatch(raw):
        raise _Reject(f"value_date {raw!r} must be YYYY-MM-DD")
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise _Reject(f"value_date {raw!r} is not a calendar date") from None


def _csv_amount(raw: str) -> int:
    if not raw:
        raise _Reject("amount is required")
    if _DIGITS.fullmatch(raw):
        return _checked_amount(int(raw), raw)
    if raw.startswith(("-", "+")):
        raise _Reject(f"amount {raw} must be an unsigned integer (direction gives the sign)")
    if "." in raw or "," in raw:
        raise _Reject(f"amount {raw} must be a whole number of VND, without decimals")
    raise _Reject(f"amount {raw!r} is not an integer")


def _csv_direction(raw: str) -> Direction:
    try:
        return Direction(raw)
    except ValueError:
        raise _Reject(f"direction {raw!r} must be CR or DR") from None


def __getattr__(name: str) -> object:
    """`read_camt053` lives in reconciliation/camt053.py (which builds on this module) and is
    part of this module's API; imported on first use so that neither import comes first."""
    if name == "read_camt053":
        from reconciliation.camt053 import read_camt053

        return read_camt053
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
