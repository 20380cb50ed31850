"""The pure parts of reconciliation: the CSV fast path, stored rows, fee rule, charts, reports."""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from payments.references import new_charge_reference, stall_reference
from reconciliation import charts, statements
from reconciliation.categories import Category, fee_category
from reconciliation.lines import (
    LineRow,
    business_day,
    copy_text,
    fast_copy_text,
    normalise,
    to_row,
)
from reconciliation.reports import DailyReport, rate_text, render_csv, render_xlsx
from reconciliation.statements import Direction, LineError, StatementLine

ICT = timezone(timedelta(hours=7))

# -- the CSV fast path accepts nothing the checked path would read differently ---------------
FIELD = st.one_of(
    st.sampled_from(
        [
            "",
            " ",
            "CR",
            "DR",
            "cr",
            "0",
            "15000",
            "15000.0",
            "-5",
            "1000000000001",
            "2026-11-22",
            "2026-02-30",
            "20261122",
            "2026-11-22T09:15:02+07:00",
            "2026-11-22T09:15:02",
            "2026-11-22T24:00:00+07:00",
            "FT1",
            " FT2 ",
            "HC4K7Q2M9XJ thanh toán",
            "１２３",
            "²",
            "\udce9",
        ]
    ),
    st.text(max_size=12),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(FIELD, min_size=8, max_size=8))
def test_fast_path_agrees_with_the_checked_path(row: list[str]) -> None:
    fast = statements._csv_line_fast(7, row)
    checked = statements._csv_line_checked(7, row)
    if fast is not None:
        assert fast == checked


def test_fast_path_takes_the_common_line() -> None:
    row = ["FT1", "2026-11-22T09:15:02+07:00", "2026-11-22", "15000", "CR", "HC ref", "", ""]
    line = statements._csv_line_fast(2, row)
    assert line == statements._csv_line_checked(2, row)
    assert isinstance(line, StatementLine) and line.counterparty_account is None


# -- the COPY fast path writes exactly what the general path writes ---------------------------
CHARGE_REF = "HC4K7Q2M9XG"


def mostly(common: str, strategy: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    """Half the time the plain value, so that the fast path is taken often enough to compare."""
    return st.one_of(st.just(common), strategy)


COLUMNS = st.tuples(
    st.sampled_from(["FT1", " FT2 ", "", "T" * 100, "T" * 101, "a\tb", "x\\y"]),
    mostly(
        "2026-11-22T09:15:02+07:00",
        st.sampled_from(
            [
                "2026-11-22T23:59:59+00:00",
                "2026-11-22T17:00:00-05:00",
                "2026-11-22T17:00:00-00:00",
                "2026-11-22T09:15:02.5+07:00",
                "2026-02-30T09:15:02+07:00",
                "2026-11-22T09:15:02",
                "2026-11-22T09:15:02Z",
                "2026-W47-7T09:15:02+07:00",
                "2026-11-22T09:15:0a+07:00",
                "2026-11-22T09:15:02+24:00",
                "2026-11-22T09:15:02+07:60",
                "2026-11-22 09:15:02+07:00",
                "2026-11-22T09:15:02+0700",
            ]
        ),
    ),
    mostly(
        "",
        st.sampled_from(
            ["2026-11-22", "2026-02-30", "20261122", " 2026-11-23 ", "2026-W47-7", "2026-11-2x"]
        ),
    ),
    mostly("15000", st.sampled_from(["0", "-5", "007", "1000000000000", "1000000000001", "1.5"])),
    st.sampled_from(["CR", "DR", "cr", " DR "]),
    st.one_of(
        st.sampled_from(
            [
                f"{CHARGE_REF} thanh toan",
                f"hc4k7q2m9xg {CHARGE_REF}",
                f"{CHARGE_REF} {stall_reference(12)}",
                "HS" + CHARGE_REF,
                "chuyen tien",
                "Chuyển tiền",
                "tab\there",
                "new\nline",
                "back\\slash",
                "",
            ]
        ),
        st.text(max_size=15),
    ),
    mostly("", st.sampled_from(["0123456789", "9" * 101])),
    st.sampled_from(["", "NGUYEN VAN A", "Trần"]),
)


@settings(max_examples=300, deadline=None)
@given(COLUMNS)
def test_copy_fast_path_agrees_with_the_general_path(fields: tuple[str, ...]) -> None:
    row = list(fields)
    fast = fast_copy_text(9, row)
    line = statements.csv_line(9, row)
    outcome = to_row(line) if isinstance(line, StatementLine) else line
    if fast is not None:
        assert not isinstance(outcome, LineError)
        stored, refs = outcome
        assert refs == ()
        assert fast == copy_text(stored)


def test_copy_fast_path_takes_the_common_line_and_escapes_in_the_general_one() -> None:
    row = ["FT1", "2026-11-22T09:15:02+07:00", "", "15000", "CR", f"{CHARGE_REF} tt", "", ""]
    text = fast_copy_text(2, row)
    assert text == (
        f"2\tFT1\t2026-11-22T09:15:02+07:00\t2026-11-22\t\\N\t15000\tCR\t{CHARGE_REF} tt\t"
        f"{CHARGE_REF}TT\t{CHARGE_REF}\t0\t\\N\t\\N\n"
    )
    row[5] = "a\tb\\c\nd"
    assert fast_copy_text(2, row) is None
    stored, _ = to_row(statements.csv_line(2, row))  # type: ignore[arg-type,misc]
    assert "\ta\\tb\\\\c\\nd\t" in copy_text(stored)


# -- stored rows ------------------------------------------------------------------------------
def line(description: str, **overrides: object) -> StatementLine:
    values: dict[str, object] = {
        "line_no": 2,
        "bank_txn_id": "FT1",
        "booked_at": datetime(2026, 11, 22, 23, 58, 40, tzinfo=ICT),
        "value_date": None,
        "amount": 15000,
        "direction": Direction.CR,
        "description": description,
        "counterparty_account": None,
        "counterparty_name": None,
    }
    values.update(overrides)
    return StatementLine(**values)  # type: ignore[arg-type]


def test_normalise_keeps_ascii_letters_and_digits() -> None:
    assert normalise("hc4k-7q2m 9xj thanh toán") == "HC4K7Q2M9XJTHANHTON"


def test_row_carries_the_one_reference_and_the_business_day() -> None:
    ref = new_charge_reference()
    row, refs = to_row(line(f"TT {ref[:5]}.{ref[5:].lower()} cam on"))  # type: ignore[misc]
    assert isinstance(row, LineRow) and refs == ()
    assert row.reference == ref and row.ref_count == 0
    assert row.business_date == date(2026, 11, 22)
    assert row.booked_at == datetime(2026, 11, 22, 16, 58, 40, tzinfo=UTC)
    assert business_day(datetime(2026, 11, 22, 17, 0, tzinfo=UTC)) == date(2026, 11, 23)
    assert business_day(datetime(2026, 11, 22, 23, 59, tzinfo=ICT)) == date(2026, 11, 22)


def test_a_line_naming_several_payments_is_a_batch() -> None:
    first, second = new_charge_reference(), new_charge_reference()
    row, refs = to_row(line(f"QUYET TOAN {first} {second}"))  # type: ignore[misc]
    assert row.reference is None and row.ref_count == 2 and refs == (first, second)
    stall = stall_reference(12)
    row, refs = to_row(line(stall))  # type: ignore[misc]
    assert row.reference == stall and refs == ()


def test_camt_references_are_kept_and_can_carry_our_reference() -> None:
    ref = new_charge_reference()
    row, refs = to_row(line("no note", references=("E2E-1", ref)))  # type: ignore[misc]
    assert row.reference == ref and set(refs) == {"E2E-1", ref}


def test_unstorable_fields_are_line_errors() -> None:
    assert isinstance(to_row(line("x", bank_txn_id="T" * 101)), LineError)
    assert isinstance(to_row(line("x", counterparty_account="9" * 101)), LineError)


# -- categories -------------------------------------------------------------------------------
def test_fee_rule() -> None:
    assert fee_category(100_000, 100_000) == (Category.MATCHED, None)
    assert fee_category(100_000, 99_000) == (Category.MATCHED_WITH_FEE, 1_000)
    assert fee_category(100_000, 95_000) == (Category.MATCHED_WITH_FEE, 5_000)
    assert fee_category(100_000, 94_999) == (Category.AMOUNT_MISMATCH, None)
    assert fee_category(100_000, 100_001) == (Category.AMOUNT_MISMATCH, None)


# -- charts -----------------------------------------------------------------------------------
def test_volume_chart_escapes_labels_and_stacks_integers() -> None:
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(3)]
    svg = charts.volume_chart(
        "Volume", days, {"<script>": [1000, 0, 5], "vietqr:ticket": [1, 2, 3]}
    )
    assert "<script>" not in svg and "&lt;script&gt;" in svg
    assert svg.startswith("<svg") and svg.count('class="bar"') == 5
    assert not re.search(r'\b(x|y|width|height)="-?\d+\.\d', svg)  # integer coordinates


def test_rate_chart_skips_days_without_a_run() -> None:
    days = [date(2026, 11, 1) + timedelta(days=n) for n in range(4)]
    svg = charts.rate_chart("Rate", days, [10_000, None, 9_950, 5_000])
    assert svg.count('class="point"') == 3 and "99.50 %" in svg and "<polyline" in svg


# -- reports ----------------------------------------------------------------------------------
def report() -> DailyReport:
    return DailyReport(
        business_date=date(2026, 11, 22),
        status="closed",
        generated_at=datetime(2026, 11, 23, 8, 0, tzinfo=UTC),
        closed_by="finance1",
        runs=[
            {
                "account_number": "001",
                "run_id": 1,
                "attempt": 1,
                "status": "done",
                "counts": {"matched": 3, "missing_in_bank": 1},
                "matched": 3,
                "total": 4,
            }
        ],
        channels=[{"channel": "vietqr:ticket", "count": 3, "amount": 45_000}],
        merchants=[{"merchant_id": 7, "count": 3, "amount": 45_000}],
        items=[
            {
                "item_id": 9,
                "category": "missing_in_bank",
                "ledger_amount": 15_000,
                "resolution": "accept",
                "note": "late",
                "resolved_by": "finance1",
            }
        ],
    )


def test_rate_text_is_integer_arithmetic() -> None:
    assert rate_text(3, 4) == "75.00 %" and rate_text(2, 3) == "66.66 %"
    assert rate_text(0, 0) == "n/a"


def test_csv_report_has_every_section() -> None:
    text = render_csv(report()).decode()
    for section in ("# Summary", "# Runs", "# Channels", "# Merchants", "# Items"):
        assert section in text
    assert "75.00 %" in text and "vietqr:ticket,3,45000" in text


def test_xlsx_report_is_deterministic_with_integer_amounts() -> None:
    from openpyxl import load_workbook

    first, second = render_xlsx(report()), render_xlsx(report())
    assert first == second
    book = load_workbook(io.BytesIO(first))
    assert book.sheetnames == ["Summary", "Runs", "Channels", "Merchants", "Items"]
    amount = book["Channels"]["C2"].value
    assert amount == 45_000 and isinstance(amount, int)
