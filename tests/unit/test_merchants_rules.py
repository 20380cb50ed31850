"""Pure rules of merchants: the spoken amount (Python and its JavaScript twin), plates, payout
arithmetic, the payout file and the stall poster."""

from __future__ import annotations

import csv
import io
import json
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from merchants import settlement
from merchants.errors import InvalidPlate
from merchants.plates import normalise_plate
from merchants.poster import render_poster
from merchants.speech import announcement, number_words
from payments import vietqr

ROOT = Path(__file__).resolve().parents[2]
SPEECH_JS = ROOT / "merchants" / "static" / "merchants" / "speech.js"

WORDS = {
    0: "không",
    5: "năm",
    10: "mười",
    11: "mười một",
    14: "mười bốn",
    15: "mười lăm",
    20: "hai mươi",
    21: "hai mươi mốt",
    24: "hai mươi tư",
    25: "hai mươi lăm",
    101: "một trăm lẻ một",
    105: "một trăm lẻ năm",
    110: "một trăm mười",
    1_000: "một nghìn",
    1_005: "một nghìn không trăm lẻ năm",
    1_050: "một nghìn không trăm năm mươi",
    2_000: "hai nghìn",
    8_000: "tám nghìn",
    15_000: "mười lăm nghìn",
    21_000: "hai mươi mốt nghìn",
    85_000: "tám mươi lăm nghìn",
    100_000: "một trăm nghìn",
    250_500: "hai trăm năm mươi nghìn năm trăm",
    1_500_000: "một triệu năm trăm nghìn",
    1_000_005: "một triệu không trăm lẻ năm",
    1_000_000_000: "một tỷ",
    1_000_000_005: "một tỷ không trăm lẻ năm",
    10**12: "một nghìn tỷ",
}


@pytest.mark.parametrize(("amount", "words"), sorted(WORDS.items()))
def test_number_words(amount: int, words: str) -> None:
    assert number_words(amount) == words


def test_announcement_is_the_market_speaker_sentence() -> None:
    assert announcement(15000) == "Đã nhận mười lăm nghìn đồng"


@pytest.mark.parametrize("bad", [-1, 1.5, True, "15000"])
def test_number_words_refuses_non_integers(bad: object) -> None:
    with pytest.raises(ValueError):
        number_words(bad)  # type: ignore[arg-type]


def _node() -> str:
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the page's JavaScript cannot be run")
    return node


def test_javascript_twin_says_the_same_words() -> None:
    """The page speaks what merchants/speech.js says; it must say what the Python twin says."""
    amounts = [*sorted(WORDS), 7, 19, 99, 999, 1001, 12345, 305_000, 999_999_999, 2**53 - 1]
    amounts += list(range(0, 2200, 7)) + [n * 1000 + 15 for n in range(0, 1000, 37)]
    script = (
        f"const s = require({json.dumps(str(SPEECH_JS))});"
        "const amounts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
        "process.stdout.write(JSON.stringify(amounts.map(s.announcement)));"
    )
    done = subprocess.run(
        [_node(), "-e", script],
        input=json.dumps(amounts),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    assert json.loads(done.stdout) == [announcement(a) for a in amounts]


@pytest.mark.parametrize(
    ("raw", "plate"),
    [
        ("29A-123.45", "29A12345"),
        ("29a 123 45", "29A12345"),
        ("  30E-999.99 ", "30E99999"),
        ("29-Đ1 123.45", "29D112345"),
        ("29LD-012.34", "29LD01234"),
    ],
)
def test_plates_are_normalised(raw: str, plate: str) -> None:
    assert normalise_plate(raw) == plate
    assert normalise_plate(plate) == plate


@pytest.mark.parametrize("raw", ["", "--", "ABC", "29A-123.45.678.90", "ABCDEF"])
def test_bad_plates_are_refused(raw: str) -> None:
    with pytest.raises(InvalidPlate):
        normalise_plate(raw)


def test_discount_is_floored_per_charge() -> None:
    totals = settlement.payout_totals([15_000, 999, 8_000], [2_000], rate_bp=150)
    # 225 + 14 (14.985 floored) + 120
    assert totals.discount_amount == 225 + 14 + 120
    assert totals.gross_amount == 15_000 + 999 + 8_000 - 2_000
    assert totals.net_amount == totals.gross_amount - totals.discount_amount
    assert totals.due


def test_refunds_beyond_the_day_leave_nothing_due() -> None:
    totals = settlement.payout_totals([5_000], [20_000], rate_bp=0)
    assert totals.gross_amount == -15_000 and totals.net_amount == 0 and not totals.due


amounts = st.lists(st.integers(1, 50_000_000), max_size=30)


@settings(max_examples=50, deadline=None)
@given(amounts, amounts, st.integers(0, 10_000))
def test_payout_totals_property(charges: list[int], refunds: list[int], rate: int) -> None:
    totals = settlement.payout_totals(charges, refunds, rate)
    discount = sum(a * rate // 10_000 for a in charges)
    assert totals.discount_amount == discount
    assert totals.net_amount == max(sum(charges) - sum(refunds) - discount, 0)
    assert totals.discount_amount <= sum(charges)
    assert all(isinstance(v, int) for v in vars(totals).values())


def test_payout_description_and_file() -> None:
    day = date(2026, 11, 21)
    assert settlement.payout_description(day, "Chợ Sấu") == "PAYOUT 2026-11-21 CHO SAU"
    line = settlement.PayoutLine(
        batch_id=7,
        business_date=day,
        value_date=date(2026, 11, 22),
        merchant_id=3,
        beneficiary_name="Hộ kinh doanh Lê Thị Bình",
        bank_bin="970436",
        bank_name="Vietcombank",
        account_number="0099887766",
        amount=1_250_000,
        description="PAYOUT 2026-11-21 CHO SAU",
    )
    text = settlement.payout_csv([line])
    assert text.endswith("\r\n")
    rows = list(csv.DictReader(io.StringIO(text)))
    assert tuple(rows[0].keys()) == settlement.PAYOUT_FILE_COLUMNS
    assert rows[0]["beneficiary_name"] == "HO KINH DOANH LE THI BINH"
    assert rows[0]["amount"] == "1250000" and rows[0]["reference"] == "payout:7"
    assert rows[0]["value_date"] == "2026-11-22"


def test_poster_has_the_stall_the_qr_and_an_empty_amount() -> None:
    payload = vietqr.encode(
        vietqr.VietQRPayload(
            bin="970436",
            account="0011001234567",
            amount=None,
            merchant_name="Cho Sau",
            city="HA NOI",
            terminal_label="SAU-01",
            purpose="HS00000001Y",
        )
    )
    svg = render_poster(
        stall_name="Sạp rau <Bình>",
        stall_code="SAU-01",
        market="Chợ Sấu",
        merchant_name="Chợ Sấu",
        payload=payload,
        reference="HS00000001Y",
    )
    assert "Quét mã để thanh toán" in svg
    assert "Sạp rau &lt;Bình&gt;" in svg  # escaped, never raw markup
    assert "Số tiền:" in svg and "stroke-dasharray" in svg  # the empty amount line
    assert svg.count("<svg") == 2 and svg.count("<?xml") == 1
    from xml.etree import ElementTree

    ElementTree.fromstring(svg.split("\n", 1)[1])
