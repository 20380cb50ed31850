"""Fare rules: when a ticket is valid, what a rider pays, how long a credential may live.

A pure rule module (no Flask, no database, no clock of its own): the service hands in the
instants. SPEC §13 "Fare validity": a single ride is valid 24 h from purchase; a day pass on the
business day chosen at purchase (today by default); a monthly pass for the calendar month chosen
at purchase. Days and months are Asia/Ho_Chi_Minh calendar days and months.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum

from core.clock import HCM, business_date
from ticketing.credential import MAX_CREDENTIAL_LIFETIME, step_at

SINGLE_RIDE_HOURS = 24
# A credential (and so a ticket's first QR) cannot be made for a start further ahead than its
# 72 h lifetime: "not_after at most 72 h after issue".
MAX_START_AHEAD = timedelta(seconds=MAX_CREDENTIAL_LIFETIME)
# Gate clocks lag a little: a credential issued now starts two minutes early so a gate whose
# clock is behind does not answer `not_yet_valid` to a rider who has just bought a ticket.
CLOCK_SLACK_SECONDS = 120
REBIND_INTERVAL = timedelta(hours=24)
MAX_FALLBACK_TOKENS = 2880  # one day of 30-second steps


class ValidityRule(StrEnum):
    HOURS_FROM_PURCHASE = "hours_from_purchase"
    BUSINESS_DAY = "business_day"
    CALENDAR_MONTH = "calendar_month"


class ConcessionGroup(StrEnum):
    FREE = "free"  # riders aged 60+, children under 6, disabilities, merit, poor households
    PRIORITY = "priority"  # half price: students, industrial-zone workers


RULE_OF_KIND = {
    "single_ride": ValidityRule.HOURS_FROM_PURCHASE,
    "day_pass": ValidityRule.BUSINESS_DAY,
    "monthly_pass": ValidityRule.CALENDAR_MONTH,
}


class FareRuleError(ValueError):
    """A purchase asked for something the fare rules forbid; `field` and `code` say what."""

    def __init__(self, field: str, code: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.code = code


@dataclass(frozen=True)
class Validity:
    """A ticket's validity, both ends inclusive (UTC instants)."""

    valid_from: datetime
    valid_until: datetime


def _local_midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=HCM).astimezone(UTC)


def _next_month(first: date) -> date:
    return date(first.year + (first.month == 12), first.month % 12 + 1, 1)


def _check_start(valid_from: datetime, purchased_at: datetime, field: str) -> None:
    if valid_from - purchased_at > MAX_START_AHEAD:
        raise FareRuleError(
            field, "starts_too_late", "buy this ticket at most 72 hours before it starts"
        )


def _day_pass(purchased_at: datetime, valid_on: date | None) -> Validity:
    today = business_date(purchased_at)
    day = valid_on or today
    if day < today:
        raise FareRuleError("valid_on", "date_in_past", "a day pass cannot start in the past")
    start = _local_midnight(day)
    _check_start(start, purchased_at, "valid_on")
    return Validity(start, _local_midnight(day + timedelta(days=1)) - timedelta(seconds=1))


def _monthly_pass(purchased_at: datetime, month: date | None) -> Validity:
    this_month = business_date(purchased_at).replace(day=1)
    first = (month or this_month).replace(day=1)
    if first < this_month:
        raise FareRuleError(
            "valid_month", "date_in_past", "a monthly pass cannot be for a past month"
        )
    start = _local_midnight(first)
    _check_start(start, purchased_at, "valid_month")
    return Validity(start, _local_midnight(_next_month(first)) - timedelta(seconds=1))


def ticket_validity(
    kind: str,
    purchased_at: datetime,
    *,
    valid_on: date | None = None,
    valid_month: date | None = None,
    validity_hours: int | None = None,
) -> Validity:
    """The validity of a ticket of `kind` bought at `purchased_at` (aware datetime).

    Raises `FareRuleError` for a date given to the wrong kind, a start in the past, or a start
    more than 72 h ahead (no credential could be issued for it yet).
    """
    rule = RULE_OF_KIND[kind]
    if valid_on is not None and rule is not ValidityRule.BUSINESS_DAY:
        raise FareRuleError("valid_on", "not_applicable", "only a day pass takes valid_on")
    if valid_month is not None and rule is not ValidityRule.CALENDAR_MONTH:
        raise FareRuleError(
            "valid_month", "not_applicable", "only a monthly pass takes valid_month"
        )
    purchased_at = purchased_at.astimezone(UTC).replace(microsecond=0)
    if rule is ValidityRule.BUSINESS_DAY:
        return _day_pass(purchased_at, valid_on)
    if rule is ValidityRule.CALENDAR_MONTH:
        return _monthly_pass(purchased_at, valid_month)
    hours = validity_hours or SINGLE_RIDE_HOURS
    return Validity(purchased_at, purchased_at + timedelta(hours=hours))


def price_for(price: int, concession_prices: dict[str, int], group: str | None) -> int:
    """What a rider in concession `group` (None: no concession) pays for a product.

    Concession prices are stored as whole VND per group, so no fraction ever arises.
    """
    if group is None:
        return price
    return min(price, concession_prices.get(group, price))


def credential_window(issued_at: int, valid_from: int, valid_until: int) -> tuple[int, int]:
    """`(not_before, not_after)` of a credential issued at `issued_at` (Unix seconds).

    Lives at most 72 h after issue and never past the ticket's validity (SPEC §6); starts two
    minutes early for gate clock lag. Raises `FareRuleError` when no window is left.
    """
    not_before = max(valid_from, issued_at) - CLOCK_SLACK_SECONDS
    not_after = min(valid_until, issued_at + MAX_CREDENTIAL_LIFETIME)
    not_after = min(not_after, not_before + MAX_CREDENTIAL_LIFETIME)
    if not_after < max(issued_at, not_before):
        raise FareRuleError("ticket", "ticket_expired", "the ticket's validity has ended")
    return not_before, not_after


def fallback_steps(now: int, valid_from: int, valid_until: int, count: int) -> range:
    """The steps to pre-sign from `now` on: at most `count`, each overlapping the validity."""
    first = max(step_at(now), step_at(valid_from))
    last = min(step_at(valid_until), first + count - 1)
    return range(first, max(first, last + 1))


def may_rebind(last_rebind_at: datetime | None, now: datetime) -> datetime | None:
    """None when a ticket may be re-bound now, else the instant it may be re-bound again."""
    if last_rebind_at is None or now - last_rebind_at >= REBIND_INTERVAL:
        return None
    return last_rebind_at + REBIND_INTERVAL
