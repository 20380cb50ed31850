"""The bank BIN table and settlement account validation (SPEC §5)."""

from __future__ import annotations

import re

import pytest

from payments.banks import (
    BANKS,
    SettlementAccountError,
    all_banks,
    bank_by_bin,
    validate_settlement_account,
)
from payments.vietqr import VietQRPayload, decode, encode

WELL_KNOWN = {
    "970436": "Vietcombank",
    "970415": "VietinBank",
    "970418": "BIDV",
    "970405": "Agribank",
    "970407": "Techcombank",
    "970422": "MB Bank",
    "970416": "ACB",
    "970432": "VPBank",
    "970423": "TPBank",
    "970403": "Sacombank",
    "970437": "HDBank",
    "970441": "VIB",
    "970443": "SHB",
    "970431": "Eximbank",
    "970426": "MSB",
    "970448": "OCB",
    "970440": "SeABank",
    "970449": "LPBank",
    "970428": "Nam A Bank",
}


@pytest.mark.parametrize(("bin_", "short_name"), sorted(WELL_KNOWN.items()))
def test_well_known_bins(bin_: str, short_name: str) -> None:
    bank = bank_by_bin(bin_)
    assert bank is not None
    assert bank.short_name == short_name and bank.bin == bin_


def test_table_is_large_and_consistent() -> None:
    banks = all_banks()
    assert len(banks) >= 40
    assert len(BANKS) == len(banks)  # no BIN listed twice
    assert len({bank.code for bank in banks}) == len(banks)
    for bank in banks:
        assert re.fullmatch(r"[0-9]{6}", bank.bin)
        assert bank.short_name and bank.code
        assert bank.name.startswith("Ngân hàng"), bank.name


def test_table_is_read_only() -> None:
    with pytest.raises(TypeError):
        BANKS["999999"] = BANKS["970436"]  # type: ignore[index]


@pytest.mark.parametrize("bin_", ["999999", "97043", "", "970436 ", "9704360"])
def test_unknown_bins(bin_: str) -> None:
    assert bank_by_bin(bin_) is None
    with pytest.raises(SettlementAccountError) as exc:
        validate_settlement_account(bin_, "0011001234567")
    assert exc.value.code == "unknown_bin"


@pytest.mark.parametrize("account", ["123456", "0011001234567", "1" * 19, "MBNICK2026", "abc123"])
def test_good_accounts(account: str) -> None:
    validate_settlement_account("970436", account)


@pytest.mark.parametrize(
    "account", ["", "12345", "1" * 20, "0011 0012", "0011-0012", "tàikhoản1", "１２３４５６７"]
)
def test_bad_accounts(account: str) -> None:
    with pytest.raises(SettlementAccountError) as exc:
        validate_settlement_account("970436", account)
    assert exc.value.code == "bad_account"
    assert isinstance(exc.value, ValueError)


def test_unknown_bin_is_reported_before_a_bad_account() -> None:
    with pytest.raises(SettlementAccountError) as exc:
        validate_settlement_account("000000", "x")
    assert exc.value.code == "unknown_bin"


def test_every_bank_can_receive_a_vietqr_code() -> None:
    for bank in all_banks():
        payload = VietQRPayload(bank.bin, "0011001234567", 10_000, "Cho Sau", "Ha Noi")
        assert decode(encode(payload)).bin == bank.bin
