"""Time: stored in UTC, business days in Asia/Ho_Chi_Minh. Services take a clock to be testable."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HCM = ZoneInfo("Asia/Ho_Chi_Minh")
Clock = Callable[[], datetime]


def utcnow() -> datetime:
    """The current instant, timezone-aware, in UTC."""
    return datetime.now(UTC)


def business_date(at: datetime) -> date:
    """The Asia/Ho_Chi_Minh calendar day of an aware instant (23:30 UTC 1 March → 2 March)."""
    if at.tzinfo is None:
        raise ValueError("business_date needs an aware datetime")
    return at.astimezone(HCM).date()


def day_bounds_utc(day: date) -> tuple[datetime, datetime]:
    """The UTC instants [start, end) of one business day."""
    start = datetime.combine(day, time(0), tzinfo=HCM)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def as_utc(at: datetime) -> datetime:
    """Normalise an aware datetime to UTC; a naive one is taken as UTC (SQLite returns naive)."""
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
