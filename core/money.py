"""Money is integer VND. These helpers keep it that way and format it the Vietnamese way."""

from __future__ import annotations

from typing import NewType

VND = NewType("VND", int)
CURRENCY = "VND"
MAX_AMOUNT = 10**12
NBSP = "\u00a0"


class MoneyError(ValueError):
    """An amount that is not a positive integer of VND within bounds."""


def check_amount(value: object, *, allow_zero: bool = False) -> VND:
    """Return `value` as VND if it is an int (not bool, not float) within (0, 10^12]."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise MoneyError("amount must be an integer number of VND")
    if value < 0 or (value == 0 and not allow_zero):
        raise MoneyError("amount must be positive")
    if value > MAX_AMOUNT:
        raise MoneyError("amount is absurdly large")
    return VND(value)


def format_vnd(amount: int) -> str:
    """`15000` → `15.000 ₫` (dot thousands separator, a non-breaking space before ₫)."""
    sign = "-" if amount < 0 else ""
    digits = f"{abs(int(amount)):,}".replace(",", ".")
    return f"{sign}{digits}{NBSP}₫"
