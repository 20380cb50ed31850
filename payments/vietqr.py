"""VietQR payloads: encode and decode the NAPAS profile of EMVCo Merchant-Presented Mode.

This is the interop contract of SPEC §5: every Vietnamese banking app must read what `encode`
writes. It is a pure rule module (no Flask, no database) so that the service layer, the pages and
the tests share one copy of the format.

Wire format (tags in ascending order, lengths counted in characters, always two digits)::

    00 "01"                    payload format indicator
    01 "11" | "12"             static (many payments) | dynamic (one payment, amount locked)
    38 merchant account        00 GUID "A000000727"
                               01 beneficiary: 00 acquirer BIN (6 digits), 01 account (<= 19)
                               02 service "QRIBFTTA" (transfer to an account)
    53 "704"                   VND
    54 amount                  dynamic codes only: integer VND, 0 < amount < 500,000,000
    58 "VN"
    59 merchant name (<= 25)   60 city (<= 15)
    62 additional data (<= 99) 01 bill number, 05 reference label, 07 terminal label, 08 purpose
    63 CRC                     CRC-16/CCITT-FALSE over everything up to and including "6304"
"""

from __future__ import annotations

import binascii
import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum

__all__ = [
    "INTERBANK_CAP_VND",
    "VIETQR_GUID",
    "VietQRError",
    "VietQRErrorCode",
    "VietQRPayload",
    "crc16_ccitt_false",
    "decode",
    "encode",
    "fold_ascii",
]

VIETQR_GUID = "A000000727"
SERVICE_TO_ACCOUNT = "QRIBFTTA"
CURRENCY_VND = "704"
COUNTRY_VN = "VN"
STATIC, DYNAMIC = "11", "12"
# NAPAS 247 rejects a single interbank transfer of 500 million VND or more.
INTERBANK_CAP_VND = 500_000_000

MAX_ACCOUNT = 19
MAX_MERCHANT_NAME = 25
MAX_CITY = 15
MAX_ADDITIONAL_FIELD = 25
MAX_TLV_VALUE = 99

_CRC_TAG = "6304"
_BIN_RE = re.compile(r"[0-9]{6}")
_ACCOUNT_RE = re.compile(r"[A-Za-z0-9]+")
_AMOUNT_RE = re.compile(r"[1-9][0-9]*")
_HEX4_RE = re.compile(r"[0-9A-F]{4}")
# Đ/đ are letters of their own in Unicode, not D plus a combining mark, so NFD leaves them.
_EXPLICIT_FOLDS = str.maketrans({"Đ": "D", "đ": "d", "Ð": "D"})


class VietQRErrorCode(StrEnum):
    """Stable machine codes of `VietQRError` (they compare equal to plain strings)."""

    MALFORMED = "malformed"
    BAD_CRC = "bad_crc"
    NOT_VIETQR = "not_vietqr"
    TOO_LONG = "too_long"
    BAD_AMOUNT = "bad_amount"
    BAD_TEXT = "bad_text"
    BAD_BIN = "bad_bin"
    BAD_ACCOUNT = "bad_account"


class VietQRError(ValueError):
    """A payload that cannot be encoded or a text that is not a VietQR code we accept."""

    def __init__(self, code: VietQRErrorCode | str, message: str) -> None:
        super().__init__(message)
        self.code = VietQRErrorCode(code)
        self.message = message

    def __repr__(self) -> str:
        return f"VietQRError({self.code.value!r}, {self.message!r})"


# --------------------------------------------------------------------------- CRC


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no final XOR) of `data`.

    Returns an int in [0, 0xFFFF]; the check value for b"123456789" is 0x29B1.
    """
    # binascii.crc_hqx is exactly this CRC (non-reflected 0x1021) with the caller's initial
    # value, in C: about ten times faster than a Python table loop over a 150-byte payload.
    return binascii.crc_hqx(data, 0xFFFF)


def _crc_hex(text: str) -> str:
    # Four digits always: a CRC below 0x1000 keeps its leading zeros on the wire.
    return f"{crc16_ccitt_false(text.encode('ascii')):04X}"


# --------------------------------------------------------------------------- text


def _is_printable_ascii(text: str) -> bool:
    return all(" " <= ch <= "~" for ch in text)


def fold_ascii(text: str) -> str:
    """Fold Vietnamese diacritics to plain ASCII (`Chợ Sấu` -> `Cho Sau`, `Đ` -> `D`).

    Guarantees the result is printable ASCII (0x20-0x7E) of the same letters without marks;
    raises `VietQRError("bad_text")` if anything else remains (emoji, CJK, control characters).
    Never drops or truncates a character that is not a combining mark.
    """
    decomposed = unicodedata.normalize("NFD", text.translate(_EXPLICIT_FOLDS))
    folded = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    if not _is_printable_ascii(folded):
        raise VietQRError(VietQRErrorCode.BAD_TEXT, f"not representable in ASCII: {text!r}")
    return folded


def _text_field(name: str, value: object, limit: int) -> str:
    if not isinstance(value, str):
        raise VietQRError(VietQRErrorCode.BAD_TEXT, f"{name} must be text: {value!r}")
    folded = fold_ascii(value)
    if not folded.strip():
        raise VietQRError(VietQRErrorCode.BAD_TEXT, f"{name} must not be blank")
    if len(folded) > limit:
        raise VietQRError(
            VietQRErrorCode.TOO_LONG, f"{name} is {len(folded)} characters, at most {limit}"
        )
    return folded


def _optional_text_field(name: str, value: object, limit: int) -> str | None:
    return None if value is None else _text_field(name, value, limit)


# --------------------------------------------------------------------------- payload


@dataclass(frozen=True, slots=True)
class VietQRPayload:
    """One VietQR code's content, validated and already folded to ASCII.

    Constructing it folds the text fields (59, 60, 62) and checks every rule of SPEC §5, so a
    payload that exists can always be encoded. `amount` is None for a static code and a positive
    integer of VND below `INTERBANK_CAP_VND` for a dynamic one.
    """

    bin: str
    account: str
    amount: int | None
    merchant_name: str
    city: str
    bill_number: str | None = None
    reference_label: str | None = None
    terminal_label: str | None = None
    purpose: str | None = None

    def __post_init__(self) -> None:
        _check_bin(self.bin)
        _check_account(self.account)
        _check_amount(self.amount)
        texts: dict[str, str | None] = {
            "merchant_name": _text_field("merchant_name", self.merchant_name, MAX_MERCHANT_NAME),
            "city": _text_field("city", self.city, MAX_CITY),
        }
        for name in ("bill_number", "reference_label", "terminal_label", "purpose"):
            value = getattr(self, name)
            texts[name] = _optional_text_field(name, value, MAX_ADDITIONAL_FIELD)
        for name, value in texts.items():
            # Frozen: object.__setattr__ is how a dataclass normalises its own fields on init.
            object.__setattr__(self, name, value)
        _check_additional_data_fits(self)

    @property
    def is_dynamic(self) -> bool:
        """True for a one-payment code (point of initiation 12), which always has an amount."""
        return self.amount is not None


def _check_bin(bin_: object) -> None:
    if not isinstance(bin_, str) or not _BIN_RE.fullmatch(bin_):
        raise VietQRError(VietQRErrorCode.BAD_BIN, f"acquirer BIN must be 6 digits: {bin_!r}")


def _check_account(account: object) -> None:
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise VietQRError(
            VietQRErrorCode.BAD_ACCOUNT, f"account must be ASCII letters and digits: {account!r}"
        )
    if len(account) > MAX_ACCOUNT:
        raise VietQRError(
            VietQRErrorCode.TOO_LONG, f"account is {len(account)} characters, at most {MAX_ACCOUNT}"
        )


def _check_amount(amount: object) -> None:
    if amount is None:
        return
    # bool is an int subclass; True must not become a 1 VND charge.
    if not isinstance(amount, int) or isinstance(amount, bool):
        raise VietQRError(VietQRErrorCode.BAD_AMOUNT, f"amount must be an integer: {amount!r}")
    if not 0 < amount < INTERBANK_CAP_VND:
        raise VietQRError(
            VietQRErrorCode.BAD_AMOUNT,
            f"amount must be in 1..{INTERBANK_CAP_VND - 1} VND: {amount}",
        )


def _check_additional_data_fits(payload: VietQRPayload) -> None:
    size = len(_additional_data(payload))
    if size > MAX_TLV_VALUE:
        raise VietQRError(
            VietQRErrorCode.TOO_LONG, f"additional data (62) is {size} characters, at most 99"
        )


# --------------------------------------------------------------------------- encode


def _tlv(tag: str, value: str) -> str:
    return f"{tag}{len(value):02d}{value}"


def _merchant_account(payload: VietQRPayload) -> str:
    beneficiary = _tlv("00", payload.bin) + _tlv("01", payload.account)
    return _tlv("00", VIETQR_GUID) + _tlv("01", beneficiary) + _tlv("02", SERVICE_TO_ACCOUNT)


def _additional_data(payload: VietQRPayload) -> str:
    fields = (
        ("01", payload.bill_number),
        ("05", payload.reference_label),
        ("07", payload.terminal_label),
        ("08", payload.purpose),
    )
    return "".join(_tlv(tag, value) for tag, value in fields if value is not None)


def encode(payload: VietQRPayload) -> str:
    """The VietQR text of `payload`, ending with its four upper-case hex digit CRC.

    Deterministic (same payload, same text), pure ASCII, tags in ascending order; a static code
    has no tag 54 and tag 62 is left out when it would be empty.
    """
    parts = [
        _tlv("00", "01"),
        _tlv("01", DYNAMIC if payload.is_dynamic else STATIC),
        _tlv("38", _merchant_account(payload)),
        _tlv("53", CURRENCY_VND),
    ]
    if payload.amount is not None:
        parts.append(_tlv("54", str(payload.amount)))
    parts += [
        _tlv("58", COUNTRY_VN),
        _tlv("59", payload.merchant_name),
        _tlv("60", payload.city),
    ]
    additional = _additional_data(payload)
    if additional:
        parts.append(_tlv("62", additional))
    body = "".join(parts) + _CRC_TAG
    return body + _crc_hex(body)


# --------------------------------------------------------------------------- decode


def _parse_tlv(text: str, where: str) -> dict[str, str]:
    """Split `text` into {tag: value}; any truncation, bad length or repeated tag is malformed."""
    fields: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        header = text[pos : pos + 4]
        if len(header) < 4 or not header.isdigit():
            raise VietQRError(VietQRErrorCode.MALFORMED, f"bad TLV header in {where} at {pos}")
        tag, length = header[:2], int(header[2:])
        value = text[pos + 4 : pos + 4 + length]
        if length == 0 or len(value) != length:
            raise VietQRError(VietQRErrorCode.MALFORMED, f"bad length of {where}/{tag}")
        if tag in fields:
            raise VietQRError(VietQRErrorCode.MALFORMED, f"tag {where}/{tag} repeated")
        fields[tag] = value
        pos += 4 + length
    return fields


def _require(fields: dict[str, str], tag: str, where: str) -> str:
    try:
        return fields[tag]
    except KeyError:
        raise VietQRError(VietQRErrorCode.MALFORMED, f"missing tag {where}/{tag}") from None


def _verify_crc(text: str) -> None:
    if len(text) < 8 or text[-8:-4] != _CRC_TAG or not _HEX4_RE.fullmatch(text[-4:]):
        raise VietQRError(VietQRErrorCode.MALFORMED, "payload must end with 6304 and 4 hex digits")
    if _crc_hex(text[:-4]) != text[-4:]:
        raise VietQRError(VietQRErrorCode.BAD_CRC, "CRC does not match the payload")


def _check_envelope(text: str, fields: dict[str, str]) -> None:
    # EMVCo: the format indicator comes first and the CRC last.
    if not text.startswith("000201") or list(fields)[-1] != "63":
        raise VietQRError(VietQRErrorCode.MALFORMED, "payload must start with 000201, end with 63")
    if _require(fields, "01", "payload") not in (STATIC, DYNAMIC):
        raise VietQRError(VietQRErrorCode.MALFORMED, "point of initiation must be 11 or 12")
    if fields.get("53") != CURRENCY_VND or fields.get("58") != COUNTRY_VN:
        raise VietQRError(VietQRErrorCode.NOT_VIETQR, "currency must be 704 and country VN")


def _decode_merchant_account(fields: dict[str, str]) -> tuple[str, str]:
    if "38" not in fields:
        raise VietQRError(VietQRErrorCode.NOT_VIETQR, "no VietQR merchant account (tag 38)")
    account_info = _parse_tlv(fields["38"], "38")
    if account_info.get("00") != VIETQR_GUID:
        raise VietQRError(VietQRErrorCode.NOT_VIETQR, "tag 38 GUID is not A000000727")
    if account_info.get("02") != SERVICE_TO_ACCOUNT:
        raise VietQRError(VietQRErrorCode.NOT_VIETQR, "service code is not QRIBFTTA")
    beneficiary = _parse_tlv(_require(account_info, "01", "38"), "38/01")
    return _require(beneficiary, "00", "38/01"), _require(beneficiary, "01", "38/01")


def _decode_amount(fields: dict[str, str]) -> int | None:
    dynamic = fields["01"] == DYNAMIC
    raw = fields.get("54")
    if raw is None:
        if dynamic:
            raise VietQRError(VietQRErrorCode.BAD_AMOUNT, "a dynamic code must carry an amount")
        return None
    if not dynamic:
        raise VietQRError(VietQRErrorCode.BAD_AMOUNT, "a static code must not carry an amount")
    # VND has no minor unit: "15000.00", "015000" or "1e4" are not ours.
    if not _AMOUNT_RE.fullmatch(raw):
        raise VietQRError(VietQRErrorCode.BAD_AMOUNT, f"amount is not a plain integer: {raw!r}")
    return int(raw)


def decode(text: str) -> VietQRPayload:
    """Parse and verify a VietQR text; the inverse of `encode` (`decode(encode(p)) == p`).

    Guarantees the CRC matched, the structure is well formed, the code is a VietQR transfer to an
    account in VND, and every field obeys the same rules as `VietQRPayload`. Tags it does not model
    (52, 64, other 62 sub-fields) are ignored. Raises `VietQRError` with a stable `code`.
    """
    if not isinstance(text, str) or not _is_printable_ascii(text):
        raise VietQRError(VietQRErrorCode.MALFORMED, "a VietQR payload is printable ASCII text")
    _verify_crc(text)
    fields = _parse_tlv(text, "payload")
    _check_envelope(text, fields)
    bin_, account = _decode_merchant_account(fields)
    extra = _parse_tlv(fields["62"], "62") if "62" in fields else {}
    return VietQRPayload(
        bin=bin_,
        account=account,
        amount=_decode_amount(fields),
        merchant_name=_require(fields, "59", "payload"),
        city=_require(fields, "60", "payload"),
        bill_number=extra.get("01"),
        reference_label=extra.get("05"),
        terminal_label=extra.get("07"),
        purpose=extra.get("08"),
    )
