"""Unit tests for reconciliation/statements.py. The camt.053 tests read the ten real bank files in
`<repo>/../shared/camt053-samples` or CASHLESS_CAMT_SAMPLES; without them: skip locally, fail on CI.
"""

from __future__ import annotations

import csv
import gc
import io
import os
import re
import tracemalloc
from collections import Counter
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciliation.statements import (
    CSV_COLUMNS,
    Direction,
    LineError,
    StatementFormatError,
    StatementLine,
    csv_records,
    read_camt053,
    read_csv,
    summarise,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
ICT = timezone(timedelta(hours=7))
HEADER = ",".join(CSV_COLUMNS)

# ----------------------------------------------------------------------------------------------
# CSV
# ----------------------------------------------------------------------------------------------

SPEC_EXAMPLE = """\
bank_txn_id,booked_at,value_date,amount,direction,description,counterparty_account,counterparty_name
FT2611220001,2026-11-22T09:15:02+07:00,2026-11-22,15000,CR,HC4K7Q2M9XJ thanh toan,0123456789,NGUYEN VAN A
FT2611220002,2026-11-22T09:20:11+07:00,2026-11-22,8000,CR,HS00000012B,,
FT2611220003,2026-11-22T23:58:40+07:00,2026-11-23,50000,CR,chuyen tien,,TRAN THI B
FT2611220004,2026-11-22T17:00:00+07:00,2026-11-22,1250000,DR,PAYOUT 2026-11-21 CHO SAU,0099887766,HO KINH DOANH LE
"""  # noqa: E501  (verbatim from SPEC §13)


def csv_results(text: str, *, bom: bool = False) -> list[StatementLine | LineError]:
    data = text.encode("utf-8")
    return list(read_csv(io.BytesIO(b"\xef\xbb\xbf" + data if bom else data)))


def only_lines(results: list[StatementLine | LineError]) -> list[StatementLine]:
    assert all(isinstance(r, StatementLine) for r in results), results
    return [r for r in results if isinstance(r, StatementLine)]


def test_csv_spec_example_reads_four_valid_lines() -> None:
    lines = only_lines(csv_results(SPEC_EXAMPLE))

    assert [line.line_no for line in lines] == [2, 3, 4, 5]
    first, second, third, fourth = lines
    assert first == StatementLine(
        line_no=2,
        bank_txn_id="FT2611220001",
        booked_at=datetime(2026, 11, 22, 9, 15, 2, tzinfo=ICT),
        value_date=date(2026, 11, 22),
        amount=15000,
        direction=Direction.CR,
        description="HC4K7Q2M9XJ thanh toan",
        counterparty_account="0123456789",
        counterparty_name="NGUYEN VAN A",
    )
    assert (second.counterparty_account, second.counterparty_name) == (None, None)
    assert third.counterparty_name == "TRAN THI B"
    assert third.booked_at.astimezone(UTC) == datetime(2026, 11, 22, 16, 58, 40, tzinfo=UTC)
    assert fourth.direction == "DR" and fourth.amount == 1_250_000
    assert all(line.booked_at.tzinfo is not None for line in lines)


def test_csv_tolerates_a_byte_order_mark() -> None:
    lines = only_lines(csv_results(SPEC_EXAMPLE, bom=True))

    assert [line.bank_txn_id for line in lines][:1] == ["FT2611220001"]
    assert len(lines) == 4


def test_csv_accepts_crlf_line_endings() -> None:
    lines = only_lines(csv_results(SPEC_EXAMPLE.replace("\n", "\r\n")))

    assert [line.line_no for line in lines] == [2, 3, 4, 5]
    assert lines[0].counterparty_name == "NGUYEN VAN A"


def test_csv_quoted_comma_and_newline_shift_the_next_line_number() -> None:
    text = (
        f"{HEADER}\n"
        'A1,2026-11-22T09:00:00+07:00,2026-11-22,1000,CR,"HC4K7Q2M9XJ, tien ""cho""",,\n'
        'A2,2026-11-22T09:01:00+07:00,,2000,CR,"first line\nsecond line",,"LE, VAN C"\n'
        "A3,2026-11-22T09:02:00+07:00,,3000,CR,after,,\n"
    )
    lines = only_lines(csv_results(text))

    assert [(line.bank_txn_id, line.line_no) for line in lines] == [
        ("A1", 2),
        ("A2", 3),
        ("A3", 5),  # A2 spans physical lines 3 and 4
    ]
    assert lines[0].description == 'HC4K7Q2M9XJ, tien "cho"'
    assert lines[1].description == "first line\nsecond line"
    assert lines[1].counterparty_name == "LE, VAN C"


def test_csv_empty_optional_fields_are_allowed() -> None:
    (line,) = only_lines(csv_results(f"{HEADER}\nA1,2026-11-22T09:00:00Z,,500,DR,,,\n"))

    assert line.value_date is None
    assert line.description == ""
    assert line.counterparty_account is None and line.counterparty_name is None
    assert line.booked_at == datetime(2026, 11, 22, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "header",
    [
        HEADER.removesuffix(",counterparty_name"),  # a column missing
        HEADER + ",extra",  # a column too many
        HEADER.replace("bank_txn_id", "txn_id"),  # renamed
        HEADER.replace("bank_txn_id,booked_at", "booked_at,bank_txn_id"),  # reordered
        HEADER.upper(),  # names are case-sensitive
        "FT2611220001,2026-11-22T09:15:02+07:00,2026-11-22,15000,CR,x,,",  # no header at all
    ],
)
def test_csv_wrong_header_refuses_the_whole_file(header: str) -> None:
    with pytest.raises(StatementFormatError, match="header must be exactly"):
        csv_results(f"{header}\nA1,2026-11-22T09:00:00+07:00,,1,CR,,,\n")


def test_csv_empty_file_is_a_format_error() -> None:
    with pytest.raises(StatementFormatError, match="empty"):
        csv_results("")


def test_csv_bad_fields_are_reported_by_line_and_the_rest_continues() -> None:
    text = (
        f"{HEADER}\n"
        "OK1,2026-11-22T09:00:00+07:00,2026-11-22,1000,CR,ok,,\n"  # 2
        "BAD1,2026-11-22T09:00:00+07:00,2026-11-22,15000.5,CR,float,,\n"  # 3
        "BAD2,2026-11-22T09:00:00+07:00,2026-11-22,-15000,CR,negative,,\n"  # 4
        "BAD3,2026-11-22T09:00:00,2026-11-22,15000,CR,naive,,\n"  # 5
        "BAD4,2026-11-22T09:00:00+07:00,2026-11-22,15000,XX,direction,,\n"  # 6
        "BAD5,2026-11-22T09:00:00+07:00,22/11/2026,15000,CR,date,,\n"  # 7
        "BAD6,2026-11-22T09:00:00+07:00,2026-02-30,15000,CR,no such day,,\n"  # 8
        "BAD7,2026-11-22T09:00:00+07:00,,0,CR,zero,,\n"  # 9
        "BAD8,2026-11-22T09:00:00+07:00,,1000000000001,CR,absurd,,\n"  # 10
        "BAD9,not a time,,15000,cr,two problems,,\n"  # 11
        ",2026-11-22T09:00:00+07:00,,15000,CR,no id,,\n"  # 12
        "BAD11,2026-11-22T09:00:00+07:00,,15000,CR,too few\n"  # 13
        "OK2,2026-11-22T10:00:00+07:00,,1000000000000,DR,max amount,,\n"  # 14
    )
    results = csv_results(text)

    errors = {r.line_no: r for r in results if isinstance(r, LineError)}
    accepted = [r for r in results if isinstance(r, StatementLine)]
    assert [(line.bank_txn_id, line.line_no) for line in accepted] == [("OK1", 2), ("OK2", 14)]
    assert sorted(errors) == list(range(3, 14))
    expected = {
        3: "amount 15000.5 must be a whole number of VND",
        4: "amount -15000 must be an unsigned integer",
        5: "has no UTC offset",
        6: "direction 'XX' must be CR or DR",
        7: "value_date '22/11/2026' must be YYYY-MM-DD",
        8: "value_date '2026-02-30' is not a calendar date",
        9: "amount 0 must be positive",
        10: "exceeds the maximum",
        11: "booked_at 'not a time' is not an ISO 8601 date-time; direction 'cr' must be CR or DR",
        12: "bank_txn_id is required",
        13: "expected 8 fields, got 6",
    }
    for line_no, fragment in expected.items():
        assert fragment in errors[line_no].message, (line_no, errors[line_no].message)
    assert errors[3].bank_txn_id == "BAD1"
    assert errors[12].bank_txn_id is None


def test_csv_undecodable_bytes_and_bad_quoting_are_line_errors() -> None:
    data = (
        f"{HEADER}\n".encode()
        + b"A1,2026-11-22T09:00:00+07:00,,1000,CR,caf\xe9,,\n"  # Latin-1, not UTF-8
        + b'A2,2026-11-22T09:00:00+07:00,,1000,CR,"quoted"garbage,,\n'
        + b"A3,2026-11-22T09:00:00+07:00,,1000,CR,ti\xe1\xbb\x81n,,\n"  # "tiền"
    )
    results = list(read_csv(io.BytesIO(data)))

    assert [(r.line_no, type(r).__name__) for r in results] == [
        (2, "LineError"),
        (3, "LineError"),
        (4, "StatementLine"),
    ]
    assert "not valid UTF-8" in results[0].message  # type: ignore[union-attr]
    assert "malformed CSV" in results[1].message  # type: ignore[union-attr]
    assert results[2].description == "tiền"  # type: ignore[union-attr]


def test_csv_reader_is_lazy_and_leaves_the_stream_open() -> None:
    stream = io.BytesIO(SPEC_EXAMPLE.encode())
    reader = read_csv(stream)

    first = next(reader)
    del reader  # abandoned half-way, as an importer that stops early would
    gc.collect()

    assert isinstance(first, StatementLine) and first.line_no == 2
    assert not stream.closed
    stream.seek(0)
    assert len(list(read_csv(stream))) == 4
    assert not stream.closed


def _records_by_the_csv_module(data: bytes) -> list[tuple[int, object]]:
    """What `csv_records` must yield, read by the csv module alone (records after the header
    as (first physical line, fields), or (line, error message))."""
    text = io.TextIOWrapper(
        io.BytesIO(data), encoding="utf-8-sig", errors="surrogateescape", newline=""
    )
    reader = csv.reader(text, strict=True)
    next(reader)
    found: list[tuple[int, object]] = []
    line_num = reader.line_num
    while True:
        start = line_num + 1
        try:
            row = next(reader)
        except StopIteration:
            return found
        except csv.Error as exc:
            found.append((start, f"malformed CSV: {exc}"))
        else:
            if row:
                found.append((start, row))
        line_num = reader.line_num


def _as_compared(results: list[tuple[int, list[str]] | LineError]) -> list[tuple[int, object]]:
    return [(r.line_no, r.message) if isinstance(r, LineError) else r for r in results]


# Quotes, commas, every line ending, NUL, spaces, non-ASCII and non-UTF-8 bytes.
CSV_PIECES = st.sampled_from(
    [
        b"a",
        b"7",
        b",",
        b",,",
        b'"',
        b'""',
        b"\r",
        b"\n",
        b"\r\n",
        b" ",
        b"\x00",
        "ề".encode(),
        b"\xff",
    ]
)


@settings(max_examples=400, deadline=None)
@given(st.lists(CSV_PIECES, max_size=40))
def test_csv_records_read_what_the_csv_module_reads(pieces: list[bytes]) -> None:
    data = f"{HEADER}\r\n".encode() + b"".join(pieces)
    assert _as_compared(list(csv_records(io.BytesIO(data)))) == _records_by_the_csv_module(data)


def test_csv_records_leave_a_line_near_the_field_limit_to_the_csv_module() -> None:
    data = f"{HEADER}\nA1,{'x' * 140_000}\nA2,b\n".encode()
    results = _as_compared(list(csv_records(io.BytesIO(data))))
    assert results == _records_by_the_csv_module(data)
    assert "field larger than field limit" in str(results[0][1]) and results[1] == (3, ["A2", "b"])


def test_summarise_counts_and_caps_errors() -> None:
    text = f"{HEADER}\n" + "".join(
        f"X{i},2026-11-22T09:00:00+07:00,,{'1.5' if i % 2 else '100'},CR,,,\n" for i in range(10)
    )
    summary = summarise(read_csv(io.BytesIO(text.encode())), max_errors=3)

    lines_total, lines_accepted, lines_rejected, errors = summary
    assert (lines_total, lines_accepted, lines_rejected) == (10, 5, 5)
    assert [e.line_no for e in errors] == [3, 5, 7]


# ----------------------------------------------------------------------------------------------
# camt.053: the ten real files
# ----------------------------------------------------------------------------------------------


class Sample(NamedTuple):
    currency: str  # the account's own currency
    entries: int  # <Ntry> elements in the file, counted by hand
    accepted: int  # lines accepted when read with account_currency=currency
    rejected: dict[str, int]  # reason (with numbers masked) -> count


FRACTIONAL = "fractional amount N not valid for {}"
SAMPLES: dict[str, Sample] = {
    "at-stuzza-v02.xml": Sample("EUR", 3, 3, {}),
    "ch-postfinance-v04.xml": Sample("CHF", 13, 7, {FRACTIONAL.format("CHF"): 6}),
    # "474.4" and "88.85" CHF, and a EUR entry on the CHF account
    "ch-ubs-sps-v08.xml": Sample(
        "CHF",
        3,
        0,
        {FRACTIONAL.format("CHF"): 2, "currency EUR differs from account currency CHF": 1},
    ),
    "de-vrbank-v02.xml": Sample("EUR", 4, 4, {}),
    "fi-nordea-v02.xml": Sample("EUR", 6, 4, {FRACTIONAL.format("EUR"): 2}),
    # no entry has BookgDt or ValDt; the amount is checked first
    "lt-multistmt-v08.xml": Sample(
        "EUR", 14, 0, {FRACTIONAL.format("EUR"): 8, "no booking date": 6}
    ),
    "nl-rabobank-export-v02.xml": Sample("EUR", 9, 1, {FRACTIONAL.format("EUR"): 8}),
    "se-iso-business-example-v04.xml": Sample("SEK", 3, 2, {FRACTIONAL.format("SEK"): 1}),
    "us-bmo-v02.xml": Sample("USD", 1, 0, {FRACTIONAL.format("USD"): 1}),
    "us-goldmansachs-v02.xml": Sample(
        "USD", 15, 14, {"currency EUR differs from account currency USD": 1}
    ),
}


def samples_dir() -> Path:
    configured = os.environ.get("CASHLESS_CAMT_SAMPLES")
    folder = Path(configured) if configured else REPO_ROOT.parent / "shared" / "camt053-samples"
    if not folder.is_dir():
        reason = (
            f"camt.053 samples not found at {folder}: set CASHLESS_CAMT_SAMPLES or put a copy "
            "of shared/ beside the repository"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    return folder


def read_sample(name: str, currency: str = "VND") -> list[StatementLine | LineError]:
    with (samples_dir() / name).open("rb") as stream:
        return list(read_camt053(stream, account_currency=currency))


def patched_sample(name: str, currency: str) -> list[StatementLine | LineError]:
    """The sample with every fractional amount rounded down, so each entry can be inspected."""
    raw = (samples_dir() / name).read_bytes()
    whole = re.sub(rb'(<Amt Ccy="[A-Z]{3}">\d+)\.\d+<', rb"\1<", raw)
    return list(read_camt053(io.BytesIO(whole), account_currency=currency))


def masked(message: str) -> str:
    return re.sub(r"\d+(\.\d+)?", "N", message)


def test_every_sample_file_is_listed() -> None:
    assert sorted(p.name for p in samples_dir().glob("*.xml")) == sorted(SAMPLES)


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_into_a_vnd_account_refuses_every_line_for_its_currency(name: str) -> None:
    results = read_sample(name, "VND")

    assert len(results) == SAMPLES[name].entries
    assert [r.line_no for r in results] == list(range(1, len(results) + 1))
    for result in results:
        assert isinstance(result, LineError)
        assert re.fullmatch(r"currency [A-Z]{3} differs from account currency VND", result.message)
        assert result.bank_txn_id


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_sample_in_its_own_currency_imports_all_but_fractional_or_foreign(name: str) -> None:
    sample = SAMPLES[name]
    results = read_sample(name, sample.currency)

    accepted = [r for r in results if isinstance(r, StatementLine)]
    reasons = Counter(masked(r.message) for r in results if isinstance(r, LineError))
    assert len(results) == sample.entries
    assert len(accepted) == sample.accepted
    assert dict(reasons) == sample.rejected
    for line in accepted:
        assert line.booked_at.tzinfo is not None
        assert 0 < line.amount <= 10**12
        assert line.bank_txn_id


def test_nordea_split_ustrd_is_joined_without_a_space() -> None:
    lines = patched_sample("fi-nordea-v02.xml", "EUR")

    second = lines[1]
    assert isinstance(second, StatementLine)
    assert second.description == "Free text max 140 characters and max 35 characters in one line"
    assert second.bank_txn_id == "1905082588SM12345678"  # AcctSvcrRef wins over NtryRef "2"
    assert "NOTPROVIDED" not in second.references


def test_postfinance_reversal_debits_stay_debits() -> None:
    raw = read_sample("ch-postfinance-v04.xml", "CHF")
    lines = patched_sample("ch-postfinance-v04.xml", "CHF")

    # Entries 12 and 13 carry <CdtDbtInd>DBIT</CdtDbtInd><RvslInd>true</RvslInd>.
    assert isinstance(raw[11], StatementLine) and raw[11].direction is Direction.DR
    assert [lines[11].direction, lines[12].direction] == [Direction.DR, Direction.DR]  # type: ignore[union-attr]
    assert isinstance(lines[0], StatementLine)
    assert lines[0].description.startswith("UEBRIGE: 25-9034-2 FÜR KONTOAUSZUG")  # AddtlNtryInf


def test_goldman_reversal_credits_stay_credits_and_naive_times_are_local() -> None:
    lines = read_sample("us-goldmansachs-v02.xml", "USD")

    first = lines[0]
    assert isinstance(first, StatementLine)
    assert first.direction is Direction.CR  # RvslInd=true on a CRDT entry
    assert first.bank_txn_id == "52198201"  # no entry-level AcctSvcrRef: NtryRef
    assert "B20092800002225" in first.references  # TxDtls/Refs/AcctSvcrRef is kept
    assert first.booked_at == datetime(2023, 10, 1, 13, 37, 14, tzinfo=ICT)
    fourth = lines[3]
    assert isinstance(fourth, StatementLine)
    assert fourth.booked_at == datetime(2023, 10, 1, 21, 5, 2, tzinfo=UTC)


def test_lt_multistmt_reads_both_statements_and_integer_amounts() -> None:
    results = patched_sample("lt-multistmt-v08.xml", "EUR")

    assert len(results) == 14  # the second Stmt has no entries
    assert {r.message for r in results if isinstance(r, LineError)} == {"no booking date"}
    first = read_sample("lt-multistmt-v08.xml", "EUR")[0]
    assert first == LineError(1, "no booking date", "REF000000663800")


def test_rabobank_entries_are_numbered_across_132_statements() -> None:
    results = read_sample("nl-rabobank-export-v02.xml", "EUR")

    assert [r.line_no for r in results] == list(range(1, 10))
    assert len({r.bank_txn_id for r in results}) == 9


def test_entry_without_any_reference_gets_a_stable_hash_id() -> None:
    first = read_sample("us-bmo-v02.xml", "USD")[0]
    again = read_sample("us-bmo-v02.xml", "USD")[0]

    assert first.bank_txn_id is not None
    assert re.fullmatch(r"H[0-9a-f]{32}", first.bank_txn_id)
    assert first.bank_txn_id == again.bank_txn_id


def test_counterparty_comes_from_the_debtor_of_a_credit_and_creditor_of_a_debit() -> None:
    lines = read_sample("de-vrbank-v02.xml", "EUR")

    debit, credit = lines[0], lines[2]
    assert isinstance(debit, StatementLine) and isinstance(credit, StatementLine)
    assert debit.direction is Direction.DR
    assert (debit.counterparty_account, debit.counterparty_name) == (
        "DE09300606010012345671",
        "Testkonto Nummer 2",
    )
    assert credit.direction is Direction.CR
    assert credit.counterparty_account == "740618130100033626"  # BBAN padded with spaces
    assert credit.description == "R CKBUCHUNG"


# ----------------------------------------------------------------------------------------------
# camt.053: synthetic files
# ----------------------------------------------------------------------------------------------


def camt(
    entries: str, *, namespace: str = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.02"
) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{namespace}"><BkToCstmrStmt>'
        f"<GrpHdr><MsgId>M</MsgId></GrpHdr><Stmt><Id>S</Id>{entries}</Stmt>"
        "</BkToCstmrStmt></Document>"
    ).encode()


def entry(amount: str = "15000", ccy: str = "VND", extra: str = "") -> str:
    return (
        f'<Ntry><Amt Ccy="{ccy}">{amount}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<BookgDt><Dt>2026-11-22</Dt></BookgDt>{extra}</Ntry>"
    )


def test_synthetic_vnd_statement_imports_fully() -> None:
    with (DATA / "camt053_vnd.xml").open("rb") as stream:
        lines = only_lines(list(read_camt053(stream)))

    assert [(line.bank_txn_id, line.amount, line.direction) for line in lines] == [
        ("FT2611220001", 15000, Direction.CR),
        ("2", 8000, Direction.CR),
        (lines[2].bank_txn_id, 50000, Direction.CR),
        ("FT2611220004", 1_250_000, Direction.DR),
    ]
    first, second, third, payout = lines
    assert first.description == "HC4K7Q2M9XJ thanh toan"
    assert (first.counterparty_account, first.counterparty_name) == ("0123456789", "NGUYEN VAN A")
    assert first.references == ("1", "E2E-0001", "NAPAS-998877")
    assert first.booked_at == datetime(2026, 11, 22, 9, 15, 2, tzinfo=ICT)
    assert second.booked_at == datetime(2026, 11, 22, tzinfo=ICT)  # Dt -> midnight in Hanoi
    assert third.bank_txn_id.startswith("H") and len(third.bank_txn_id) == 33
    assert third.booked_at == datetime(2026, 11, 22, 23, 58, 40, tzinfo=ICT)
    assert third.value_date == date(2026, 11, 23)
    assert third.description == "chuyen tien"  # AddtlNtryInf when there is no Ustrd
    assert payout.counterparty_name == "HO KINH DOANH LE"  # first TxDtls of the batch
    assert payout.references == (
        "4",
        "PAYOUT-2026-11-21",
        "PO-2026-11-21-0001",
        "PO-2026-11-21-0002",
    )
    assert all(isinstance(line.amount, int) for line in lines)


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("36847", 36847), ("36847.00", 36847), ("36847.0", 36847), ("1000000000000", 10**12)],
)
def test_camt_whole_amounts_are_accepted(amount: str, expected: int) -> None:
    (line,) = list(read_camt053(io.BytesIO(camt(entry(amount)))))

    assert isinstance(line, StatementLine) and line.amount == expected


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("474.4", "fractional amount 474.4 not valid for VND"),
        ("12.50", "fractional amount 12.50 not valid for VND"),
        ("0.00", "amount 0.00 must be positive"),
        ("1000000000001", "amount 1000000000001 exceeds the maximum of 1000000000000"),
        ("-5", "amount '-5' is not a decimal number"),
        ("1e3", "amount '1e3' is not a decimal number"),
    ],
)
def test_camt_bad_amounts_are_line_errors(amount: str, message: str) -> None:
    (error,) = list(read_camt053(io.BytesIO(camt(entry(amount)))))

    assert isinstance(error, LineError) and error.message == message


def test_camt_currency_is_checked_before_the_amount() -> None:
    (error,) = list(read_camt053(io.BytesIO(camt(entry("12.50", "EUR")))))

    assert error == LineError(
        1, "currency EUR differs from account currency VND", error.bank_txn_id
    )


def test_camt_pending_and_undated_entries_are_refused() -> None:
    pending = entry(extra="<Sts>PDNG</Sts><NtryRef>P1</NtryRef>")
    undated = '<Ntry><NtryRef>U1</NtryRef><Amt Ccy="VND">5</Amt><CdtDbtInd>DBIT</CdtDbtInd></Ntry>'
    by_value_date = (
        '<Ntry><NtryRef>V1</NtryRef><Amt Ccy="VND">5</Amt><CdtDbtInd>DBIT</CdtDbtInd>'
        "<ValDt><Dt>2026-11-21</Dt></ValDt></Ntry>"
    )
    results = list(read_camt053(io.BytesIO(camt(pending + undated + by_value_date))))

    assert results[:2] == [
        LineError(1, "entry status PDNG is not booked (BOOK)", "P1"),
        LineError(2, "no booking date", "U1"),
    ]
    assert isinstance(results[2], StatementLine)
    assert results[2].booked_at == datetime(2026, 11, 21, tzinfo=ICT)


def test_camt_identical_entries_without_references_get_distinct_stable_ids() -> None:
    data = camt(entry() + entry())
    ids = [r.bank_txn_id for r in read_camt053(io.BytesIO(data))]
    reindented = data.replace(b"<Amt", b"\n    <Amt").replace(b"</Ntry>", b"\n</Ntry>")
    other_namespace = camt(
        entry() + entry(), namespace="urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
    )

    assert len(set(ids)) == 2
    assert ids == [r.bank_txn_id for r in read_camt053(io.BytesIO(data))]
    assert ids == [r.bank_txn_id for r in read_camt053(io.BytesIO(reindented))]
    assert ids == [r.bank_txn_id for r in read_camt053(io.BytesIO(other_namespace))]


def test_camt_without_namespace_is_read_by_local_names() -> None:
    (line,) = list(read_camt053(io.BytesIO(camt(entry(), namespace=""))))

    assert isinstance(line, StatementLine)


_LOL_ENTITIES = "".join(
    f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10)
)  # the classic "billion laughs": lol9 expands to 10^9 "lol"s
BILLION_LAUGHS = (
    f'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">{_LOL_ENTITIES}]>'
    "<Document><BkToCstmrStmt><Stmt><Ntry><AddtlNtryInf>&lol9;</AddtlNtryInf></Ntry></Stmt>"
    "</BkToCstmrStmt></Document>"
).encode()

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE Document [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document><BkToCstmrStmt><Stmt><Ntry><AddtlNtryInf>&xxe;</AddtlNtryInf></Ntry></Stmt>
</BkToCstmrStmt></Document>
"""


@pytest.mark.parametrize(
    "document",
    [
        BILLION_LAUGHS,
        XXE,
        b'<?xml version="1.0"?><!DOCTYPE Document><Document><BkToCstmrStmt/></Document>',
    ],
    ids=["billion-laughs", "xxe", "plain-dtd"],
)
def test_camt_with_a_dtd_is_refused_as_a_whole(document: bytes) -> None:
    with pytest.raises(StatementFormatError, match="unsafe XML"):
        list(read_camt053(io.BytesIO(document)))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        (b"", "not well-formed XML"),
        (b"bank_txn_id,booked_at\n", "not well-formed XML"),
        (b"<Document><BkToCstmrDbtCdtNtfctn/></Document>", "not BkToCstmrStmt"),
        (b"<Statement/>", "root element is Statement"),
        (b"<Document/>", "no BkToCstmrStmt"),
    ],
)
def test_camt_not_a_statement_is_a_format_error(document: bytes, message: str) -> None:
    with pytest.raises(StatementFormatError, match=message):
        list(read_camt053(io.BytesIO(document)))


def test_camt_is_streamed_entry_by_entry() -> None:
    broken = camt(entry() + entry()).replace(b"</Stmt>", b"<Ntry><Amt>")[:-10]
    reader = read_camt053(io.BytesIO(broken))

    first = next(reader)  # yielded before the parser reaches the broken end

    assert isinstance(first, StatementLine)
    with pytest.raises(StatementFormatError):
        list(reader)


def test_camt_memory_stays_flat_on_a_long_statement() -> None:
    count = 20_000
    data = camt("".join(entry(str(i + 1), extra=f"<NtryRef>R{i}</NtryRef>") for i in range(count)))

    tracemalloc.start()
    try:
        total = sum(1 for _ in read_camt053(io.BytesIO(data)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert total == count
    # Keeping 20,000 parsed entries would take well over 20 MB; streaming needs a fraction.
    assert peak < 5_000_000, peak
