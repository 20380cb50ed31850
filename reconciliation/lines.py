"""Turn a read statement line into the row we store: normalised text, our reference, the day.

Pure: no Flask, no database. Done once at import so that matching is an equality join
(SPEC §13 "Payment references": upper-case, keep only letters and digits, look for a reference
with a valid check character).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import NamedTuple

from payments.references import find_normalised_references, find_references
from reconciliation.statements import MAX_AMOUNT, LineError, StatementLine

VIETNAM = timezone(timedelta(hours=7), "Asia/Ho_Chi_Minh")  # no DST since 1975
_SEVEN_HOURS = timedelta(hours=7)
# Bytes to delete from an upper-cased, ASCII-encoded text: everything but A-Z and 0-9.
_NOT_ALNUM_BYTES = bytes(b for b in range(128) if not chr(b).isalnum() or chr(b).islower())
MAX_TXN_ID = 100
MAX_ACCOUNT = 100
MAX_REF = 100


class LineRow(NamedTuple):
    """The stored columns of one accepted line, in `LINE_COLUMNS` order."""

    line_no: int
    bank_txn_id: str
    booked_at: datetime
    business_date: date
    value_date: date | None
    amount: int
    direction: str
    description: str
    norm_description: str
    reference: str | None
    ref_count: int
    counterparty_account: str | None
    counterparty_name: str | None


LINE_COLUMNS = LineRow._fields


def normalise(text: str) -> str:
    """`"hc4k-7q2m 9xj thanh toán"` → `"HC4K7Q2M9XJTHANHTON"`: what matching compares.

    Upper-case first (so `ı` still becomes `I`), then keep only A-Z and 0-9; done on bytes
    because a million lines spend real time here (same result as removing `[^A-Z0-9]`).
    """
    return text.upper().encode("ascii", "ignore").translate(None, _NOT_ALNUM_BYTES).decode()


def business_day(moment: datetime) -> date:
    """The Asia/Ho_Chi_Minh calendar day of an aware instant (SPEC §2)."""
    if moment.utcoffset() == _SEVEN_HOURS:  # already Vietnamese time: most statements
        return moment.date()
    return moment.astimezone(VIETNAM).date()


def to_row(line: StatementLine) -> tuple[LineRow, tuple[str, ...]] | LineError:
    """The row to store and, for a line naming several payments, its references.

    `reference` is set only when the description (or, failing that, the camt.053 references)
    names exactly one of our payments; a line naming several is a batch, matched one-to-many
    through its references. A field too long to store is refused as a line error.
    """
    if len(line.bank_txn_id) > MAX_TXN_ID:
        return LineError(line.line_no, f"bank_txn_id longer than {MAX_TXN_ID} characters")
    if line.counterparty_account and len(line.counterparty_account) > MAX_ACCOUNT:
        return LineError(line.line_no, f"counterparty_account longer than {MAX_ACCOUNT} characters")
    norm = normalise(line.description)
    ours = find_normalised_references(norm)
    if not ours and line.references:
        ours = find_references(" ".join(line.references))
    refs = (
        tuple(dict.fromkeys([*ours, *(r[:MAX_REF] for r in line.references)]))
        if line.references
        else tuple(ours)
    )
    batch = len(refs) > 1
    row = LineRow(
        line.line_no,
        line.bank_txn_id,
        line.booked_at,
        business_day(line.booked_at),
        line.value_date,
        line.amount,
        line.direction.value,
        line.description,
        norm,
        ours[0] if len(ours) == 1 else None,
        len(refs) if batch else 0,
        line.counterparty_account,
        line.counterparty_name,
    )
    return row, refs if batch else ()


# -- PostgreSQL COPY text format ---------------------------------------------------------------
# One line per row, fields separated by tabs, NULL as \N; backslash, tab, newline and carriage
# return inside a value are escaped. Built here, in pure code, so that the loader streams plain
# text (psycopg's per-value adaptation costs more than the whole fast path below).
_COPY_NULL = "\\N"
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _plain_booked_at(text: str) -> bool:
    """The separators of `YYYY-MM-DDTHH:MM:SS±HH:MM` in place (the caller's `fromisoformat`
    checks the digits): what a clean line's booked_at looks like, in the one spelling that
    reads back the same ("-00:00" reads back as "+00:00"). One slice takes every third
    character from the first separator on (`--T::+:`): cheaper than seven tests.
    """
    if len(text) != 25 or text[23] >= "6":  # "+07:60" parses, but reads back as "+08:00"
        return False
    separators = text[4::3]
    return separators == "--T::+:" or (separators == "--T::-:" and text[20:] != "00:00")


_FAST_DIRECTIONS = frozenset(("CR", "DR"))


def copy_value(value: object) -> str:
    """One value in COPY text format."""
    if value is None:
        return _COPY_NULL
    if isinstance(value, str):
        return value.translate(_COPY_ESCAPES)
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)


def copy_text(row: LineRow) -> str:
    """`row` as one line of COPY text (`LINE_COLUMNS` order, newline-terminated)."""
    return "\t".join(map(copy_value, row)) + "\n"


def fast_copy_text(line_no: int, fields: list[str]) -> str | None:
    """The COPY text of a plainly valid CSV record naming at most one payment, else None.

    Exactly `copy_text(to_row(csv_line(line_no, fields)))` whenever it returns text (a
    property test compares them); None (never an error) sends the record down that general
    path. It exists because a million-line import spends most of its Python time here.
    """
    if len(fields) != 8:
        return None
    joined = "".join(fields)
    if not joined.isascii() or "\\" in joined or "\t" in joined or "\n" in joined or "\r" in joined:
        return None
    txn, booked, value, amount_raw, direction, description, account, name = map(str.strip, fields)
    if (
        not txn
        or len(txn) > MAX_TXN_ID
        or direction not in _FAST_DIRECTIONS
        or not amount_raw.isdigit()
        or len(account) > MAX_ACCOUNT
        or not _plain_booked_at(booked)
    ):
        return None
    amount = int(amount_raw)
    if amount <= 0 or amount > MAX_AMOUNT:
        return None
    try:  # with the separators in place, these parse only when every other character is a digit
        moment = datetime.fromisoformat(booked)
        if value:
            if len(value) != 10 or value[4::3] != "--":  # the separators of YYYY-MM-DD
                return None
            date.fromisoformat(value)
    except ValueError:
        return None
    norm = normalise(description)
    refs = find_normalised_references(norm)
    if len(refs) > 1:
        return None  # a batch line: its references go to their own table
    day = booked[:10] if booked.endswith("+07:00") else business_day(moment).isoformat()
    null = _COPY_NULL
    return (
        f"{line_no}\t{txn}\t{booked}\t{day}\t{value or null}\t{amount}\t{direction}\t"
        f"{description}\t{norm}\t{refs[0] if refs else null}\t0\t{account or null}\t"
        f"{name or null}\n"
    )
