"""Vietnamese banks by acquirer BIN, to validate merchants' settlement accounts (SPEC §5).

The BIN is the 6-digit NAPAS bank identification number a VietQR code carries in tag 38/01/00.
The table follows the State Bank / NAPAS published list of members of the NAPAS 247 transfer
service, under each bank's current name; renamed banks keep their BIN (LienVietPostBank is now
LPBank, OceanBank is MBV, DongA Bank is Vikki Bank). BINs outside 9704xx belong to digital banks
and foreign branches that NAPAS numbered later. Pure: no Flask, no database.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

__all__ = [
    "BANKS",
    "Bank",
    "SettlementAccountError",
    "SettlementAccountErrorCode",
    "all_banks",
    "bank_by_bin",
    "validate_settlement_account",
]

MIN_ACCOUNT = 6
MAX_ACCOUNT = 19  # VietQR tag 38/01/01 holds at most 19 characters
_ACCOUNT_RE = re.compile(rf"[A-Za-z0-9]{{{MIN_ACCOUNT},{MAX_ACCOUNT}}}")


@dataclass(frozen=True, slots=True)
class Bank:
    """One bank: its NAPAS BIN, its usual code and short name, and its full Vietnamese name."""

    bin: str
    code: str
    short_name: str
    name: str


_TABLE: tuple[Bank, ...] = (
    Bank("970400", "SGB", "SaigonBank", "Ngân hàng TMCP Sài Gòn Công Thương"),
    Bank("970403", "STB", "Sacombank", "Ngân hàng TMCP Sài Gòn Thương Tín"),
    Bank("970405", "VBA", "Agribank", "Ngân hàng Nông nghiệp và Phát triển Nông thôn Việt Nam"),
    Bank("970406", "VIKKI", "Vikki Bank", "Ngân hàng TNHH MTV Số Vikki"),
    Bank("970407", "TCB", "Techcombank", "Ngân hàng TMCP Kỹ Thương Việt Nam"),
    Bank("970408", "GPB", "GPBank", "Ngân hàng TNHH MTV Dầu Khí Toàn Cầu"),
    Bank("970409", "BAB", "BacA Bank", "Ngân hàng TMCP Bắc Á"),
    Bank("970410", "SCVN", "Standard Chartered", "Ngân hàng TNHH MTV Standard Chartered Việt Nam"),
    Bank("970412", "PVCB", "PVcomBank", "Ngân hàng TMCP Đại Chúng Việt Nam"),
    Bank("970414", "MBV", "MBV", "Ngân hàng TNHH MTV Việt Nam Hiện Đại"),
    Bank("970415", "ICB", "VietinBank", "Ngân hàng TMCP Công Thương Việt Nam"),
    Bank("970416", "ACB", "ACB", "Ngân hàng TMCP Á Châu"),
    Bank("970418", "BIDV", "BIDV", "Ngân hàng TMCP Đầu tư và Phát triển Việt Nam"),
    Bank("970419", "NCB", "NCB", "Ngân hàng TMCP Quốc Dân"),
    Bank("970421", "VRB", "VRB", "Ngân hàng Liên doanh Việt - Nga"),
    Bank("970422", "MB", "MB Bank", "Ngân hàng TMCP Quân đội"),
    Bank("970423", "TPB", "TPBank", "Ngân hàng TMCP Tiên Phong"),
    Bank("970424", "SHBVN", "Shinhan Bank", "Ngân hàng TNHH MTV Shinhan Việt Nam"),
    Bank("970425", "ABB", "ABBANK", "Ngân hàng TMCP An Bình"),
    Bank("970426", "MSB", "MSB", "Ngân hàng TMCP Hàng Hải Việt Nam"),
    Bank("970427", "VAB", "VietABank", "Ngân hàng TMCP Việt Á"),
    Bank("970428", "NAB", "Nam A Bank", "Ngân hàng TMCP Nam Á"),
    Bank("970429", "SCB", "SCB", "Ngân hàng TMCP Sài Gòn"),
    Bank("970430", "PGB", "PGBank", "Ngân hàng TMCP Thịnh vượng và Phát triển"),
    Bank("970431", "EIB", "Eximbank", "Ngân hàng TMCP Xuất Nhập khẩu Việt Nam"),
    Bank("970432", "VPB", "VPBank", "Ngân hàng TMCP Việt Nam Thịnh Vượng"),
    Bank("970433", "VIETBANK", "Vietbank", "Ngân hàng TMCP Việt Nam Thương Tín"),
    Bank("970434", "IVB", "Indovina Bank", "Ngân hàng TNHH Indovina"),
    Bank("970436", "VCB", "Vietcombank", "Ngân hàng TMCP Ngoại thương Việt Nam"),
    Bank("970437", "HDB", "HDBank", "Ngân hàng TMCP Phát triển Thành phố Hồ Chí Minh"),
    Bank("970438", "BVB", "BaoViet Bank", "Ngân hàng TMCP Bảo Việt"),
    Bank("970439", "PBVN", "Public Bank", "Ngân hàng TNHH MTV Public Việt Nam"),
    Bank("970440", "SEAB", "SeABank", "Ngân hàng TMCP Đông Nam Á"),
    Bank("970441", "VIB", "VIB", "Ngân hàng TMCP Quốc tế Việt Nam"),
    Bank("970442", "HLBVN", "Hong Leong Bank", "Ngân hàng TNHH MTV Hong Leong Việt Nam"),
    Bank("970443", "SHB", "SHB", "Ngân hàng TMCP Sài Gòn - Hà Nội"),
    Bank("970444", "CBB", "CBBank", "Ngân hàng TNHH MTV Xây dựng Việt Nam"),
    Bank("970446", "COOPBANK", "Co-opBank", "Ngân hàng Hợp tác xã Việt Nam"),
    Bank("970448", "OCB", "OCB", "Ngân hàng TMCP Phương Đông"),
    Bank("970449", "LPB", "LPBank", "Ngân hàng TMCP Lộc Phát Việt Nam"),
    Bank("970452", "KLB", "KienlongBank", "Ngân hàng TMCP Kiên Long"),
    Bank("970454", "BVBANK", "BVBank", "Ngân hàng TMCP Bản Việt"),
    Bank("970455", "IBKHN", "IBK Hà Nội", "Ngân hàng Công nghiệp Hàn Quốc - Chi nhánh Hà Nội"),
    Bank(
        "970456", "IBKHCM", "IBK HCM", "Ngân hàng Công nghiệp Hàn Quốc - Chi nhánh TP. Hồ Chí Minh"
    ),
    Bank("970457", "WVN", "Woori Bank", "Ngân hàng TNHH MTV Woori Việt Nam"),
    Bank("970458", "UOB", "UOB", "Ngân hàng TNHH MTV United Overseas Bank Việt Nam"),
    Bank("970462", "KBHN", "Kookmin Hà Nội", "Ngân hàng Kookmin - Chi nhánh Hà Nội"),
    Bank("970463", "KBHCM", "Kookmin HCM", "Ngân hàng Kookmin - Chi nhánh TP. Hồ Chí Minh"),
    Bank("422589", "CIMB", "CIMB", "Ngân hàng TNHH MTV CIMB Việt Nam"),
    Bank("458761", "HSBC", "HSBC", "Ngân hàng TNHH MTV HSBC (Việt Nam)"),
    Bank("546034", "CAKE", "CAKE by VPBank", "Ngân hàng số CAKE by VPBank"),
    Bank("546035", "UBANK", "Ubank by VPBank", "Ngân hàng số Ubank by VPBank"),
    Bank("668888", "KBANK", "KBank", "Ngân hàng Đại chúng TNHH Kasikornbank - CN TP. Hồ Chí Minh"),
    Bank("796500", "DBS", "DBS Bank", "Ngân hàng DBS - Chi nhánh TP. Hồ Chí Minh"),
    Bank("801011", "NHB", "Nonghyup Bank", "Ngân hàng Nonghyup - Chi nhánh Hà Nội"),
    Bank("963369", "LIO", "Liobank", "Ngân hàng số Liobank by OCB"),
    Bank("963388", "TIMO", "Timo", "Ngân hàng số Timo by BVBank"),
)

#: Read-only view of the table, keyed by BIN.
BANKS: MappingProxyType[str, Bank] = MappingProxyType({bank.bin: bank for bank in _TABLE})


class SettlementAccountErrorCode(StrEnum):
    """Stable machine codes of `SettlementAccountError` (equal to plain strings)."""

    UNKNOWN_BIN = "unknown_bin"
    BAD_ACCOUNT = "bad_account"


class SettlementAccountError(ValueError):
    """A settlement account that no bank app could pay into: unknown bank or malformed number."""

    def __init__(self, code: SettlementAccountErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def all_banks() -> tuple[Bank, ...]:
    """Every known bank, in a stable order (by BIN as listed)."""
    return _TABLE


def bank_by_bin(bin: str) -> Bank | None:
    """The bank with NAPAS BIN `bin` (6 digits, as a string), or None if we do not know it."""
    return BANKS.get(bin)


def validate_settlement_account(bin: str, account: str) -> None:
    """Check that money can be settled to `account` at the bank with BIN `bin`.

    Guarantees on return: the BIN is in our table and the account is 6 to 19 ASCII letters or
    digits (the most a VietQR code can carry; some banks issue alias accounts with letters).
    Raises `SettlementAccountError` with code `unknown_bin` or `bad_account` otherwise. Says
    nothing about whether the account exists: only the bank knows that.
    """
    if not isinstance(bin, str) or bank_by_bin(bin) is None:
        raise SettlementAccountError(
            SettlementAccountErrorCode.UNKNOWN_BIN, f"unknown bank BIN: {bin!r}"
        )
    if not isinstance(account, str) or not _ACCOUNT_RE.fullmatch(account):
        raise SettlementAccountError(
            SettlementAccountErrorCode.BAD_ACCOUNT,
            f"account must be {MIN_ACCOUNT}-{MAX_ACCOUNT} ASCII letters or digits: {account!r}",
        )
