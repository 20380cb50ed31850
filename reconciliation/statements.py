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
import hashlib
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from enum import StrEnum
from typing import IO, TYPE_CHECKING, NamedTuple, TypeVar
from xml.etree import ElementTree

import defusedxml
import defusedxml.ElementTree

if TYPE_CHECKING:
    from _csv import Reader as _CsvReader

__all__ = [
    "CSV_COLUMNS",
    "MAX_AMOUNT",
    "Direction",
    "LineError",
    "StatementFormatError",
    "StatementLine",
    "StatementSummary",
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
    # Undecodable bytes are reported per line instead of aborting the whole file mid-way.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        reader = csv.reader(text, strict=True)
        _check_csv_header(reader)
        yield from _csv_records(reader)
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


def _csv_records(reader: _CsvReader) -> Iterator[StatementLine | LineError]:
    line_num = reader.line_num
    while True:
        start = line_num + 1  # a record begins on the line after the previous one ended
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            line_num = reader.line_num
            yield LineError(start, f"malformed CSV: {exc}")
            continue
        line_num = reader.line_num
        if row:  # a blank line is not a record
            yield _csv_line(start, row)


_FAST_DIRECTIONS = {"CR": Direction.CR, "DR": Direction.DR}


def _csv_line(line_no: int, row: list[str]) -> StatementLine | LineError:
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


# --------------------------------------------------------------------------------------------
# camt.053 (SPEC §13 "camt.053 mapping")
# --------------------------------------------------------------------------------------------

Element = ElementTree.Element

_CAMT_AMOUNT = re.compile(r"(\d+)(?:\.(\d+))?")
_CAMT_DATE = re.compile(r"(\d{4}-\d{2}-\d{2})(?:Z|[+-]\d{2}:\d{2})?")
_CAMT_DIRECTIONS = {"CRDT": Direction.CR, "DBIT": Direction.DR}
# SEPA's placeholder for "the payer gave no end-to-end id": not a reference.
_PLACEHOLDER_REFS = frozenset({"NOTPROVIDED"})


@dataclass(slots=True)
class _CamtEntry:
    """An `Ntry` element plus what the reader knows about its statement."""

    element: Element
    ordinal: int
    statement_currency: str | None


def read_camt053(
    stream: IO[bytes], account_currency: str = "VND"
) -> Iterator[StatementLine | LineError]:
    """Read an ISO 20022 camt.053 statement file, one result per `Ntry`, in file order.

    Guarantees: every `Stmt` of the file is read, one line per entry (a batch is one line); the
    `line_no` of camt.053 lines is the ordinal of the entry in the file, starting at 1 (there is
    no meaningful physical line: one bank writes the whole document on one line). Elements are
    matched by local name, so any camt.053 namespace works. An entry in another currency than
    `account_currency`, with a fractional amount, not booked or with no date is a `LineError`.
    A DTD, an entity, malformed XML or a document that is not camt.053 raises
    `StatementFormatError` (possibly after earlier entries were yielded). Memory stays bounded:
    each entry is discarded once mapped. The stream is not closed.
    """
    currency = account_currency.strip().upper()
    seen_hashes: Counter[str] = Counter()
    for entry in _camt_entries(stream):
        yield _camt_line(entry, currency, seen_hashes)


def _local(tag: object) -> str:
    # Namespace-agnostic: the Austrian STUZZA files use "ISO:camt.053.001.02:APC:STUZZA:…".
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _camt_entries(stream: IO[bytes]) -> Iterator[_CamtEntry]:
    """Stream the `Ntry` elements of the file, each removed from the tree once consumed."""
    # forbid_dtd: statements never need one, and refusing it stops XXE and entity bombs early.
    events = defusedxml.ElementTree.iterparse(
        stream, events=("start", "end"), forbid_dtd=True, forbid_entities=True
    )
    stack: list[Element] = []
    ordinal = 0
    statement_currency: str | None = None
    saw_container = False
    try:
        for event, element in events:
            name = _local(element.tag)
            if event == "start":
                _check_camt_structure(stack, name)
                saw_container = saw_container or len(stack) == 1
                stack.append(element)
                if name == "Stmt":
                    statement_currency = None
                continue
            stack.pop()
            parent = _local(stack[-1].tag) if stack else ""
            if (
                name == "Ccy"
                and parent == "Acct"
                and len(stack) > 1
                and _local(stack[-2].tag) == "Stmt"
            ):
                statement_currency = (element.text or "").strip().upper() or None
            elif name == "Ntry" and parent == "Stmt":
                ordinal += 1
                yield _CamtEntry(element, ordinal, statement_currency)
                _discard(stack[-1], element)
            elif name == "Stmt":
                _discard(stack[-1], element)
    except ElementTree.ParseError as exc:
        raise StatementFormatError(f"not well-formed XML: {exc}") from None
    except defusedxml.DefusedXmlException as exc:
        raise StatementFormatError(f"refused unsafe XML ({type(exc).__name__})") from None
    if not saw_container:
        raise StatementFormatError("not a camt.053 statement: no BkToCstmrStmt element")


def _check_camt_structure(stack: list[Element], name: str) -> None:
    """Refuse anything but Document/BkToCstmrStmt (camt.052 and camt.054 look alike inside)."""
    if not stack and name != "Document":
        raise StatementFormatError(f"not a camt.053 document: root element is {name}")
    if len(stack) == 1 and name != "BkToCstmrStmt":
        raise StatementFormatError(f"not a camt.053 statement: found {name}, not BkToCstmrStmt")


def _discard(parent: Element, element: Element) -> None:
    # clear() alone leaves an empty element behind; removing it keeps memory flat on long files.
    element.clear()
    parent.remove(element)


def _camt_line(entry: _CamtEntry, currency: str, seen: Counter[str]) -> StatementLine | LineError:
    ntry = entry.element
    bank_txn_id = _camt_bank_txn_id(ntry, seen)
    try:
        _check_camt_status(ntry)
        amount = _camt_amount(ntry, currency, entry.statement_currency)
        direction = _camt_direction(ntry)
        booked_at = _camt_booked_at(ntry)
        value_date = _camt_value_date(ntry)
    except _Reject as exc:
        return LineError(entry.ordinal, str(exc), bank_txn_id)
    account, name = _camt_counterparty(ntry, direction)
    return StatementLine(
        line_no=entry.ordinal,
        bank_txn_id=bank_txn_id,
        booked_at=booked_at,
        value_date=value_date,
        amount=amount,
        direction=direction,
        description=_camt_description(ntry),
        counterparty_account=account,
        counterparty_name=name,
        references=_camt_references(ntry, bank_txn_id),
    )


def _text(element: Element | None, path: str = "") -> str:
    found = element.find(path) if element is not None and path else element
    return (found.text or "").strip() if found is not None else ""


def _camt_bank_txn_id(ntry: Element, seen: Counter[str]) -> str:
    """`AcctSvcrRef`, else `NtryRef`, else "H" + 32 hex digits of a hash of the entry."""
    for path in ("{*}AcctSvcrRef", "{*}NtryRef"):
        if value := _text(ntry, path):
            return value
    canonical = _canonical_xml(ntry)
    digest = hashlib.sha256(canonical).hexdigest()
    # Two identical entries without any bank reference (two equal card payments on one day) are
    # two transactions: the n-th repeat in a file hashes differently, yet re-reading the same file
    # gives the same ids, so the import stays idempotent.
    seen[digest] += 1
    if seen[digest] > 1:
        digest = hashlib.sha256(canonical + b"#%d" % seen[digest]).hexdigest()
    return "H" + digest[:32]


def _canonical_xml(ntry: Element) -> bytes:
    """C14N 2.0 of the entry with namespaces dropped and whitespace-only text stripped."""
    plain = _without_namespaces(ntry)
    xml = ElementTree.tostring(plain, encoding="unicode")
    return ElementTree.canonicalize(xml, strip_text=True).encode()


def _without_namespaces(element: Element) -> Element:
    # The same entry re-issued under another camt version (v02 vs v08 namespace) hashes the same.
    copy = ElementTree.Element(_local(element.tag), dict(element.attrib))
    copy.text = element.text
    copy.tail = None
    copy.extend(_without_namespaces(child) for child in element)
    return copy


def _check_camt_status(ntry: Element) -> None:
    # v02-v04 write <Sts>BOOK</Sts>, v08 <Sts><Cd>BOOK</Cd></Sts>. Only booked money is on the
    # account; a pending (PDNG) or informational entry would match money we do not hold.
    status = _text(ntry, "{*}Sts/{*}Cd") or _text(ntry, "{*}Sts")
    if status and status != "BOOK":
        raise _Reject(f"entry status {status} is not booked (BOOK)")


def _camt_amount(ntry: Element, account_currency: str, statement_currency: str | None) -> int:
    amt = ntry.find("{*}Amt")
    if amt is None:
        raise _Reject("entry has no amount (Amt)")
    currency = (amt.get("Ccy") or statement_currency or "").strip().upper()
    if not currency:
        raise _Reject("entry amount has no currency")
    if currency != account_currency:
        # e.g. UBS books a EUR entry on a CHF account; we hold VND only and never convert.
        raise _Reject(f"currency {currency} differs from account currency {account_currency}")
    raw = _text(amt)
    match = _CAMT_AMOUNT.fullmatch(raw)
    if match is None:
        raise _Reject(f"amount {raw!r} is not a decimal number")
    fraction = match.group(2) or ""
    if fraction.strip("0"):
        raise _Reject(f"fractional amount {raw} not valid for {account_currency}")
    # "36847" and "36847.00" are the same whole amount (the Lithuanian sample writes both styles).
    return _checked_amount(int(match.group(1)), raw)


def _camt_direction(ntry: Element) -> Direction:
    indicator = _text(ntry, "{*}CdtDbtInd")
    # Taken as written: RvslInd does not flip it (PostFinance's balances only add up that way).
    direction = _CAMT_DIRECTIONS.get(indicator)
    if direction is None:
        raise _Reject(f"CdtDbtInd {indicator!r} must be CRDT or DBIT")
    return direction


def _camt_booked_at(ntry: Element) -> datetime:
    # BMO and the Lithuanian sample have no BookgDt; the value date is the next best day.
    for container in ("{*}BookgDt", "{*}ValDt"):
        moment = _camt_moment(ntry.find(container))
        if moment is not None:
            return moment
    raise _Reject("no booking date")


def _camt_moment(node: Element | None) -> datetime | None:
    """`Dt` → midnight in Vietnam; `DtTm` as written, naive ones read as Vietnam time."""
    if node is None:
        return None
    # Goldman Sachs mixes "…Z" and zone-less DtTm in one file; we read the latter as local time.
    if raw := _text(node, "{*}DtTm"):
        try:
            moment = datetime.fromisoformat(raw)
        except ValueError:
            raise _Reject(f"date-time {raw!r} is not ISO 8601") from None
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=VIETNAM_TZ)
    day = _camt_date(_text(node, "{*}Dt"))
    return datetime.combine(day, time(), VIETNAM_TZ) if day is not None else None


def _camt_date(raw: str) -> date | None:
    if not raw:
        return None
    match = _CAMT_DATE.fullmatch(raw)  # xs:date may carry a zone; the calendar day is what counts
    try:
        return date.fromisoformat(match.group(1)) if match else date.fromisoformat(raw)
    except ValueError:
        raise _Reject(f"date {raw!r} is not YYYY-MM-DD") from None


def _camt_value_date(ntry: Element) -> date | None:
    node = ntry.find("{*}ValDt")
    if node is None:
        return None
    if raw := _text(node, "{*}DtTm"):
        return _camt_date(raw[:10])
    return _camt_date(_text(node, "{*}Dt"))


def _camt_description(ntry: Element) -> str:
    """The `Ustrd` parts of each `RmtInf` joined with nothing, else `AddtlNtryInf`, else ""."""
    texts: list[str] = []
    for remittance in ntry.iterfind(".//{*}RmtInf"):
        # Nordea wraps at 35 characters in the middle of a word ("…and ma" + "x 35…"), and our
        # references must survive such a split, so the parts are joined without a separator.
        joined = "".join(part.text or "" for part in remittance.iterfind("{*}Ustrd"))
        if joined.strip():
            texts.append(joined)
    if not texts:
        texts = [node.text or "" for node in ntry.iterfind("{*}AddtlNtryInf")]
    # Collapse VR-Bank's fixed-width padding and the XML indentation inside long texts.
    return " ".join(" ".join(texts).split())


def _camt_references(ntry: Element, bank_txn_id: str) -> tuple[str, ...]:
    """Every reference of the entry and its transactions, in order, without repeats."""
    found: dict[str, None] = {}
    candidates = [_text(ntry, "{*}NtryRef")]
    for batch in ntry.iterfind("{*}NtryDtls/{*}Btch"):
        candidates += [_text(batch, "{*}MsgId"), _text(batch, "{*}PmtInfId")]
    for refs in ntry.iterfind("{*}NtryDtls/{*}TxDtls/{*}Refs"):
        # Refs/Prtry is a {Tp, Ref} pair; every other child of Refs is the reference itself.
        candidates += [_text(child, "{*}Ref") if len(child) else _text(child) for child in refs]
    creditor_refs = "{*}NtryDtls/{*}TxDtls/{*}RmtInf/{*}Strd/{*}CdtrRefInf/{*}Ref"
    candidates += [_text(ref) for ref in ntry.iterfind(creditor_refs)]
    for value in candidates:
        if value and value != bank_txn_id and value not in _PLACEHOLDER_REFS:
            found.setdefault(value)
    return tuple(found)


def _camt_counterparty(ntry: Element, direction: Direction) -> tuple[str | None, str | None]:
    """(account, name) of the payer of a credit or the payee of a debit, from the first TxDtls."""
    party = "Dbtr" if direction is Direction.CR else "Cdtr"
    for parties in ntry.iterfind("{*}NtryDtls/{*}TxDtls/{*}RltdPties"):
        # v08 nests the name one level deeper (Dbtr/Pty/Nm).
        name = _text(parties, f"{{*}}{party}/{{*}}Nm") or _text(
            parties, f"{{*}}{party}/{{*}}Pty/{{*}}Nm"
        )
        account_id = parties.find(f"{{*}}{party}Acct/{{*}}Id")
        # Strip: VR-Bank pads a BBAN in Othr/Id with leading spaces.
        account = _text(account_id, "{*}IBAN") or _text(account_id, "{*}Othr/{*}Id")
        return account or None, name or None
    return None, None
