from datetime import UTC, date, datetime

import pytest

from core.clock import business_date, day_bounds_utc
from core.money import MoneyError, check_amount, format_vnd


def test_business_day_is_ho_chi_minh_calendar_day() -> None:
    assert business_date(datetime(2026, 3, 1, 23, 30, tzinfo=UTC)) == date(2026, 3, 2)
    assert business_date(datetime(2026, 3, 1, 16, 59, 59, tzinfo=UTC)) == date(2026, 3, 1)
    assert business_date(datetime(2026, 3, 1, 17, 0, tzinfo=UTC)) == date(2026, 3, 2)


def test_business_date_refuses_naive_time() -> None:
    with pytest.raises(ValueError):
        business_date(datetime(2026, 3, 1, 12, 0))


def test_day_bounds() -> None:
    start, end = day_bounds_utc(date(2026, 11, 22))
    assert start == datetime(2026, 11, 21, 17, 0, tzinfo=UTC)
    assert end == datetime(2026, 11, 22, 17, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("amount", "text"),
    [
        (15000, "15.000\u00a0₫"),
        (0, "0\u00a0₫"),
        (1250000, "1.250.000\u00a0₫"),
        (-8000, "-8.000\u00a0₫"),
    ],
)
def test_format_vnd(amount: int, text: str) -> None:
    assert format_vnd(amount) == text


@pytest.mark.parametrize("bad", [1.5, 15000.0, -1, 0, 10**12 + 1, "15000", True, None])
def test_check_amount_rejects(bad: object) -> None:
    with pytest.raises(MoneyError):
        check_amount(bad)


def test_check_amount_accepts_integers() -> None:
    assert check_amount(1) == 1
    assert check_amount(10**12) == 10**12
    assert check_amount(0, allow_zero=True) == 0
