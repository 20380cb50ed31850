"""VietQR encoding and decoding (SPEC §5), QR image rendering, read back with zxing-cpp."""

from __future__ import annotations

import dataclasses
import io
import itertools
import xml.etree.ElementTree as ET

import PIL.Image
import pytest
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st

from payments.qrimage import PNG_MAGIC, render_png, render_svg
from payments.vietqr import (
    INTERBANK_CAP_VND,
    VietQRError,
    VietQRPayload,
    crc16_ccitt_false,
    decode,
    encode,
    fold_ascii,
)

STATIC = VietQRPayload(
    bin="970436",
    account="0011001234567",
    amount=None,
    merchant_name="Chợ Sấu Đông",
    city="Hà Nội",
    terminal_label="STALL-12",
    purpose="HS0000000C8",
)
DYNAMIC = dataclasses.replace(STATIC, amount=15_000, purpose="HCENG974Q1X", terminal_label=None)


def tags(text: str) -> dict[str, str]:
    """Top-level TLV fields of a payload, for assertions about its shape."""
    out, pos = {}, 0
    while pos < len(text):
        tag, length = text[pos : pos + 2], int(text[pos + 2 : pos + 4])
        out[tag] = text[pos + 4 : pos + 4 + length]
        pos += 4 + length
    return out


def with_valid_crc(body_without_crc: str) -> str:
    """Re-seal a hand-edited payload so the test reaches the rule after the CRC check."""
    head = body_without_crc + "6304"
    return head + f"{crc16_ccitt_false(head.encode()):04X}"


# ----------------------------------------------------------------------------- CRC


def test_crc_known_answer() -> None:
    assert crc16_ccitt_false(b"123456789") == 0x29B1


def bitwise_crc16_ccitt_false(data: bytes) -> int:
    """The textbook bit-at-a-time CRC, independent of the module's implementation."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_crc_matches_the_bitwise_definition(data: bytes) -> None:
    assert crc16_ccitt_false(data) == bitwise_crc16_ccitt_false(data)


def test_crc_of_empty_input_is_the_initial_value() -> None:
    assert crc16_ccitt_false(b"") == 0xFFFF


def test_crc_with_a_leading_zero_keeps_four_digits() -> None:
    payloads = (
        dataclasses.replace(DYNAMIC, amount=amount) for amount in itertools.count(1_000, 1_000)
    )
    low = next(p for p in itertools.islice(payloads, 5_000) if int(encode(p)[-4:], 16) < 0x1000)
    text = encode(low)
    assert text[-8:-4] == "6304"
    assert len(text[-4:]) == 4 and text[-4] == "0"
    assert decode(text) == low


def test_crc_is_upper_case_hex() -> None:
    crc = encode(DYNAMIC)[-4:]
    assert crc == crc.upper() and int(crc, 16) == crc16_ccitt_false(encode(DYNAMIC)[:-4].encode())


# ----------------------------------------------------------------------------- shape


def test_static_payload_has_the_exact_expected_text() -> None:
    body = (
        "000201"
        "010211"
        "38570010A000000727"
        "0127" "0006970436" "01130011001234567"
        "0208QRIBFTTA"
        "5303704"
        "5802VN"
        "5912Cho Sau Dong"
        "6006Ha Noi"
        "6227" "0708STALL-12" "0811HS0000000C8"
        "6304"
    )  # fmt: skip
    text = encode(STATIC)
    assert text == body + f"{crc16_ccitt_false(body.encode()):04X}"


def test_static_has_no_amount_and_dynamic_has_one() -> None:
    static, dynamic = tags(encode(STATIC)), tags(encode(DYNAMIC))
    assert static["01"] == "11" and "54" not in static
    assert dynamic["01"] == "12" and dynamic["54"] == "15000"
    assert not STATIC.is_dynamic and DYNAMIC.is_dynamic


def test_tags_are_in_ascending_order_and_crc_last() -> None:
    order = list(tags(encode(DYNAMIC)))
    assert order == sorted(order) and order[-1] == "63" and order[0] == "00"


def test_tag_62_left_out_when_empty() -> None:
    bare = dataclasses.replace(STATIC, terminal_label=None, purpose=None)
    assert "62" not in tags(encode(bare))
    assert decode(encode(bare)) == bare


def test_all_additional_data_fields_round_trip() -> None:
    full = dataclasses.replace(
        DYNAMIC, bill_number="INV-2026-001", reference_label="REF9", terminal_label="K12"
    )
    assert tags(encode(full))["62"].startswith("0112INV-2026-0010504REF90703K120811")
    assert decode(encode(full)) == full


def test_round_trip_static_and_dynamic() -> None:
    assert decode(encode(STATIC)) == STATIC
    assert decode(encode(DYNAMIC)) == DYNAMIC


def test_encode_is_deterministic_ascii() -> None:
    assert encode(DYNAMIC) == encode(DYNAMIC)
    assert encode(DYNAMIC).isascii()


# ----------------------------------------------------------------------------- text


@pytest.mark.parametrize(
    ("raw", "folded"),
    [
        ("Chợ Sấu", "Cho Sau"),
        ("Đồng Xuân", "Dong Xuan"),
        ("đường Láng", "duong Lang"),
        ("Hà Nội", "Ha Noi"),
        ("NGUYỄN THỊ HƯƠNG", "NGUYEN THI HUONG"),
        ("Phở Bắc 24/7", "Pho Bac 24/7"),
        ("plain ascii", "plain ascii"),
    ],
)
def test_fold_ascii(raw: str, folded: str) -> None:
    assert fold_ascii(raw) == folded


@pytest.mark.parametrize("raw", ["Phở 🍜", "河内", "tab\there", "new\nline", "€5"])
def test_fold_ascii_rejects_what_cannot_be_ascii(raw: str) -> None:
    with pytest.raises(VietQRError) as exc:
        fold_ascii(raw)
    assert exc.value.code == "bad_text"


def test_payload_holds_folded_text() -> None:
    assert STATIC.merchant_name == "Cho Sau Dong" and STATIC.city == "Ha Noi"


def test_folding_happens_before_the_length_check() -> None:
    name = "Đ" * 25  # 25 characters before and after folding
    assert dataclasses.replace(STATIC, merchant_name=name).merchant_name == "D" * 25


# ----------------------------------------------------------------------------- limits


def rejects(code: str, **changes: object) -> None:
    with pytest.raises(VietQRError) as exc:
        dataclasses.replace(STATIC, **changes)  # type: ignore[arg-type]
    assert exc.value.code == code


def test_limits_accept_the_maximum() -> None:
    at_max = dataclasses.replace(
        STATIC, merchant_name="N" * 25, city="C" * 15, account="1" * 19, purpose="P" * 25
    )
    assert decode(encode(at_max)) == at_max


@pytest.mark.parametrize(
    "changes",
    [
        {"merchant_name": "N" * 26},
        {"city": "C" * 16},
        {"account": "1" * 20},
        {"purpose": "P" * 26},
        {"bill_number": "B" * 26},
        # Each sub-field fits (25) but 62 totals 4 * (4 + 25) = 116 > 99.
        {"bill_number": "B" * 25, "reference_label": "R" * 25, "terminal_label": "T" * 25},
    ],
    ids=["name-26", "city-16", "account-20", "purpose-26", "bill-26", "tag62-over-99"],
)
def test_over_long_fields_are_rejected_not_truncated(changes: dict[str, object]) -> None:
    rejects("too_long", **changes)


def test_tag_62_of_exactly_99_is_accepted() -> None:
    # 01(4+25) + 05(4+25) + 07(4+12) + 08(4+21) = 99
    fits = dataclasses.replace(
        STATIC, bill_number="B" * 25, reference_label="R" * 25, terminal_label="T" * 12,
        purpose="P" * 21,
    )  # fmt: skip
    assert len(tags(encode(fits))["62"]) == 99
    rejects("too_long", **{**dataclasses.asdict(fits), "purpose": "P" * 22})


@pytest.mark.parametrize("amount", [0, -1, -15_000, INTERBANK_CAP_VND, 10**12])
def test_out_of_range_amounts_are_rejected(amount: int) -> None:
    rejects("bad_amount", amount=amount)


def test_largest_amount_below_the_cap_is_accepted() -> None:
    top = dataclasses.replace(DYNAMIC, amount=INTERBANK_CAP_VND - 1)
    assert tags(encode(top))["54"] == "499999999"


@pytest.mark.parametrize("amount", [True, 15000.0, "15000"])
def test_non_integer_amounts_are_rejected(amount: object) -> None:
    rejects("bad_amount", amount=amount)


@pytest.mark.parametrize("bin_", ["97043", "9704361", "97043X", ""])
def test_bad_bin(bin_: str) -> None:
    rejects("bad_bin", bin=bin_)


@pytest.mark.parametrize("account", ["", "0011 001", "001-1001", "tài123"])
def test_bad_account(account: str) -> None:
    rejects("bad_account", account=account)


@pytest.mark.parametrize("field", ["merchant_name", "purpose"])
def test_non_text_is_rejected(field: str) -> None:
    rejects("bad_text", **{field: 12345})


@pytest.mark.parametrize("field", ["merchant_name", "city", "purpose"])
@pytest.mark.parametrize("blank", ["", "   "])
def test_blank_text_is_rejected(field: str, blank: str) -> None:
    rejects("bad_text", **{field: blank})


# ----------------------------------------------------------------------------- decode errors


def decode_error(text: str) -> str:
    with pytest.raises(VietQRError) as exc:
        decode(text)
    return exc.value.code


def test_decode_rejects_a_tampered_payload() -> None:
    text = encode(DYNAMIC)
    assert decode_error(text.replace("5405150005802", "5405990005802")) == "bad_crc"
    assert decode_error(text[:-1] + ("0" if text[-1] != "0" else "1")) == "bad_crc"


def test_decode_rejects_truncation_and_garbage() -> None:
    text = encode(DYNAMIC)
    assert decode_error(text[:-8]) == "malformed"
    assert decode_error("") == "malformed"
    assert decode_error("hello world") == "malformed"
    assert decode_error(text[:-4] + text[-4:].lower()) in {"malformed", "bad_crc"}


def test_decode_rejects_a_broken_tlv_with_a_valid_crc() -> None:
    body = encode(STATIC)[:-8]
    assert decode_error(with_valid_crc(body.replace("5802VN", "5803VN"))) == "malformed"
    assert decode_error(with_valid_crc(body + "5802VN")) == "malformed"  # repeated tag


def test_decode_rejects_amount_on_static_and_missing_amount_on_dynamic() -> None:
    static_body = encode(STATIC)[:-8]
    with_amount = static_body.replace("5303704", "5303704540515000")
    assert decode_error(with_valid_crc(with_amount)) == "bad_amount"
    dynamic_body = encode(DYNAMIC)[:-8]
    assert decode_error(with_valid_crc(dynamic_body.replace("540515000", ""))) == "bad_amount"


@pytest.mark.parametrize("raw", ["15000.00", "015000", "0", "500000000"])
def test_decode_rejects_bad_amount_text(raw: str) -> None:
    body = encode(DYNAMIC)[:-8].replace("540515000", f"54{len(raw):02d}{raw}")
    assert decode_error(with_valid_crc(body)) == "bad_amount"


def test_decode_rejects_other_schemes() -> None:
    body = encode(STATIC)[:-8]
    assert decode_error(with_valid_crc(body.replace("A000000727", "A000000775"))) == "not_vietqr"
    assert decode_error(with_valid_crc(body.replace("QRIBFTTA", "QRIBFTTC"))) == "not_vietqr"
    assert decode_error(with_valid_crc(body.replace("5303704", "5303840"))) == "not_vietqr"


def test_decode_rejects_over_long_name_from_elsewhere() -> None:
    body = encode(STATIC)[:-8].replace("5912Cho Sau Dong", "5926" + "N" * 26)
    assert decode_error(with_valid_crc(body)) == "too_long"


def test_decode_ignores_tags_it_does_not_model() -> None:
    # Other generators add 52 (merchant category) and 62/03 (store label); we read past them.
    body = encode(STATIC)[:-8].replace("5303704", "520459995303704")
    body = body.replace("6227", "62350304SHOP")
    assert decode(with_valid_crc(body)) == STATIC


def test_error_is_a_value_error_with_a_stable_code() -> None:
    text = encode(STATIC)
    wrong_crc = "0000" if text[-4:] != "0000" else "FFFF"
    with pytest.raises(ValueError, match="CRC") as exc:
        decode(text[:-4] + wrong_crc)
    assert isinstance(exc.value, VietQRError) and exc.value.code == "bad_crc"


# ----------------------------------------------------------------------------- property

texts = st.text(
    alphabet=st.sampled_from("abcdefghijklmnopqrstuvwxyzABCXYZ0189 -./đĐơƯăâêôàảãạáằẳẵặắ"),
    min_size=1,
    max_size=15,
).filter(lambda s: fold_ascii(s).strip() != "")
payloads = st.builds(
    VietQRPayload,
    bin=st.from_regex(r"\A9704[0-9]{2}\Z"),
    account=st.from_regex(r"\A[0-9A-Z]{1,19}\Z"),
    amount=st.none() | st.integers(min_value=1, max_value=INTERBANK_CAP_VND - 1),
    merchant_name=texts,
    city=texts,
    bill_number=st.none() | texts,
    reference_label=st.none() | texts,
    terminal_label=st.none() | texts,
    purpose=st.none() | texts,
)


@settings(max_examples=60, deadline=None)
@given(payloads)
def test_property_round_trip(payload: VietQRPayload) -> None:
    text = encode(payload)
    assert decode(text) == payload
    assert ("54" in tags(text)) == payload.is_dynamic
    assert len(text[-4:]) == 4 and int(text[-4:], 16) == crc16_ccitt_false(text[:-4].encode())


# ----------------------------------------------------------------------------- images


def test_png_has_magic_and_decodes_back_to_the_payload() -> None:
    for payload in (STATIC, DYNAMIC):
        text = encode(payload)
        png = render_png(text)
        assert png.startswith(PNG_MAGIC)
        results = zxingcpp.read_barcodes(PIL.Image.open(io.BytesIO(png)))
        assert [r.text for r in results] == [text]
        assert results[0].format == zxingcpp.BarcodeFormat.QRCode
        assert decode(results[0].text) == payload


def test_png_box_size_and_border_set_the_pixel_size() -> None:
    small = PIL.Image.open(io.BytesIO(render_png(encode(DYNAMIC), box_size=2, border=4)))
    large = PIL.Image.open(io.BytesIO(render_png(encode(DYNAMIC), box_size=8, border=4)))
    assert large.size[0] == 4 * small.size[0]


def test_png_uses_error_correction_m() -> None:
    results = zxingcpp.read_barcodes(PIL.Image.open(io.BytesIO(render_png(encode(STATIC)))))
    assert results[0].ec_level == "M"


def test_svg_is_xml_with_an_svg_root() -> None:
    svg = render_svg(encode(DYNAMIC))
    assert svg.startswith("<?xml")
    root = ET.fromstring(svg.encode())
    assert root.tag == "{http://www.w3.org/2000/svg}svg"


def test_render_rejects_empty_text() -> None:
    with pytest.raises(ValueError):
        render_png("")
    with pytest.raises(ValueError):
        render_svg("")
