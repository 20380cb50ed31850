"""Fare rules (ticketing/fares.py) and revenue-protection rules (ticketing/journeys.py)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ticketing import fares, journeys
from ticketing.credential import MAX_CREDENTIAL_LIFETIME, step_at

# 2026-03-01 23:30 UTC is already 2 March in Hanoi (UTC+7).
LATE_EVENING_UTC = datetime(2026, 3, 1, 23, 30, tzinfo=UTC)


def test_single_ride_is_valid_24_hours_from_purchase() -> None:
    bought = datetime(2026, 3, 1, 8, 15, 42, 123456, tzinfo=UTC)
    validity = fares.ticket_validity("single_ride", bought)
    assert validity.valid_from == bought.replace(microsecond=0)
    assert validity.valid_until == validity.valid_from + timedelta(hours=24)


def test_day_pass_is_the_hanoi_business_day() -> None:
    validity = fares.ticket_validity("day_pass", LATE_EVENING_UTC)
    # 2 March in Hanoi runs from 1 March 17:00 UTC to 2 March 16:59:59 UTC.
    assert validity.valid_from == datetime(2026, 3, 1, 17, 0, tzinfo=UTC)
    assert validity.valid_until == datetime(2026, 3, 2, 16, 59, 59, tzinfo=UTC)


def test_day_pass_for_a_chosen_day_and_limits() -> None:
    tomorrow = fares.ticket_validity("day_pass", LATE_EVENING_UTC, valid_on=date(2026, 3, 3))
    assert tomorrow.valid_from == datetime(2026, 3, 2, 17, 0, tzinfo=UTC)
    with pytest.raises(fares.FareRuleError) as past:
        fares.ticket_validity("day_pass", LATE_EVENING_UTC, valid_on=date(2026, 3, 1))
    assert past.value.code == "date_in_past" and past.value.field == "valid_on"
    with pytest.raises(fares.FareRuleError) as late:
        fares.ticket_validity("day_pass", LATE_EVENING_UTC, valid_on=date(2026, 3, 6))
    assert late.value.code == "starts_too_late"


def test_monthly_pass_is_the_calendar_month_in_hanoi() -> None:
    validity = fares.ticket_validity("monthly_pass", LATE_EVENING_UTC)
    assert validity.valid_from == datetime(2026, 2, 28, 17, 0, tzinfo=UTC)  # 1 March, Hanoi
    assert validity.valid_until == datetime(2026, 3, 31, 16, 59, 59, tzinfo=UTC)
    december = fares.ticket_validity(
        "monthly_pass", datetime(2026, 11, 29, 12, 0, tzinfo=UTC), valid_month=date(2026, 12, 1)
    )
    assert december.valid_until == datetime(2026, 12, 31, 16, 59, 59, tzinfo=UTC)
    with pytest.raises(fares.FareRuleError) as early:
        fares.ticket_validity("monthly_pass", LATE_EVENING_UTC, valid_month=date(2026, 5, 1))
    assert early.value.code == "starts_too_late"


def test_dates_only_for_the_kinds_that_take_them() -> None:
    with pytest.raises(fares.FareRuleError) as single:
        fares.ticket_validity("single_ride", LATE_EVENING_UTC, valid_on=date(2026, 3, 2))
    assert single.value.code == "not_applicable"
    with pytest.raises(fares.FareRuleError):
        fares.ticket_validity("day_pass", LATE_EVENING_UTC, valid_month=date(2026, 3, 1))


def test_concession_prices() -> None:
    prices = {"priority": 70_000, "free": 0}
    assert fares.price_for(140_000, prices, None) == 140_000
    assert fares.price_for(140_000, prices, "priority") == 70_000
    assert fares.price_for(140_000, prices, "free") == 0
    assert fares.price_for(8_000, {"free": 0}, "priority") == 8_000
    assert fares.price_for(8_000, {"priority": 9_000}, "priority") == 8_000  # never above list


def test_rebind_once_a_day() -> None:
    now = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    assert fares.may_rebind(None, now) is None
    assert fares.may_rebind(now - timedelta(hours=24), now) is None
    assert fares.may_rebind(now - timedelta(hours=3), now) == now + timedelta(hours=21)


def test_fallback_steps_stay_inside_validity() -> None:
    now = 1_764_590_400
    steps = fares.fallback_steps(now, now - 3600, now + 95, 2880)
    assert steps[0] == step_at(now) and steps[-1] == step_at(now + 95) and len(steps) == 4
    assert len(fares.fallback_steps(now, now - 3600, now + 10 * 86_400, 2880)) == 2880
    future = fares.fallback_steps(now, now + 600, now + 7200, 5)
    assert list(future) == [step_at(now + 600) + i for i in range(5)]


@settings(max_examples=100, deadline=None)
@given(
    issued=st.integers(1_700_000_000, 1_900_000_000),
    start_offset=st.integers(-40 * 86_400, 72 * 3600),
    length=st.integers(0, 40 * 86_400),
)
def test_credential_window_respects_the_contract(
    issued: int, start_offset: int, length: int
) -> None:
    """≤ 72 h after issue, never past the validity, never ending before it starts."""
    valid_from = issued + start_offset
    valid_until = valid_from + length
    try:
        not_before, not_after = fares.credential_window(issued, valid_from, valid_until)
    except fares.FareRuleError as exc:
        assert exc.code == "ticket_expired" and valid_until < issued
        return
    assert not_before <= not_after <= valid_until
    assert not_after <= issued + MAX_CREDENTIAL_LIFETIME
    assert not_after - not_before <= MAX_CREDENTIAL_LIFETIME
    assert not_before <= max(issued, valid_from)


# -- impossible journeys ------------------------------------------------------------------------
HOAN_KIEM = (21.0285, 105.8542)
CAT_LINH = (21.0288, 105.8270)  # about 2.8 km west
YEN_NGHIA = (20.9585, 105.7480)  # 11.3 km from Cat Linh as the crow flies


def sighting(
    tap: int, validator: str, at: int, where: tuple[float, float] | None
) -> journeys.Sighting:
    lat, lon = where if where else (None, None)
    return journeys.Sighting(tap, validator, at, lat, lon)


def test_distance_is_haversine() -> None:
    a, b = sighting(1, "a", 0, CAT_LINH), sighting(2, "b", 0, YEN_NGHIA)
    # independently: 0.0703° of latitude is 7.82 km, 0.079° of longitude at 21° N is 8.21 km
    assert 11.2 < journeys.distance_km(a, b) < 11.5


def test_far_apart_too_soon_is_impossible() -> None:
    a = sighting(1, "metro-cat-linh", 1000, CAT_LINH)
    b = sighting(2, "metro-yen-nghia", 1000 + 120, YEN_NGHIA)
    evidence = journeys.impossible_journey(a, b)
    assert evidence is not None and evidence["speed_kmh"] > 300
    assert evidence["taps"] == [1, 2] and evidence["seconds"] == 120


def test_plausible_trips_are_not_flagged() -> None:
    a = sighting(1, "metro-cat-linh", 0, CAT_LINH)
    assert journeys.impossible_journey(a, sighting(2, "y", 20 * 60, YEN_NGHIA)) is None
    assert journeys.impossible_journey(a, sighting(3, "hk", 60, HOAN_KIEM)) is not None
    assert journeys.impossible_journey(a, sighting(4, "hk", 10 * 60, HOAN_KIEM)) is None
    # neighbouring platforms, the same validator, unknown places: never flagged
    assert journeys.impossible_journey(a, sighting(5, "near", 1, (21.0290, 105.8275))) is None
    assert journeys.impossible_journey(a, sighting(6, "metro-cat-linh", 1, YEN_NGHIA)) is None
    assert journeys.impossible_journey(a, sighting(7, "bus", 1, None)) is None
    assert journeys.impossible_journey(a, sighting(8, "far", 4 * 3600, (10.77, 106.70))) is None


def test_first_impossible_scans_the_earlier_sightings() -> None:
    new = sighting(9, "metro-yen-nghia", 500, YEN_NGHIA)
    earlier = [sighting(1, "near", 0, (20.9590, 105.7485)), sighting(2, "cl", 400, CAT_LINH)]
    evidence = journeys.first_impossible(new, earlier)
    assert evidence is not None and evidence["taps"] == [2, 9]
