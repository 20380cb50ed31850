"""The camt.053 half of the statement readers (see `reconciliation/statements.py`, which
re-exports `read_camt053`): ISO 20022 BankToCustomerStatement, any version, streamed.

Pure: no Flask, no database.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time
from typing import IO
from xml.etree import ElementTree

import defusedxml
import defusedxml.ElementTree

# Package-internal helpers shared with the CSV reader: one amount rule, one rejection type.
from reconciliation.statements import (
    VIETNAM_TZ,
    Direction,
    LineError,
    StatementFormatError,
    StatementLine,
    _checked_amount,
    _Reject,
)

__all__ = ["read_camt053"]


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
