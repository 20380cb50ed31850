"""Parking tariff pricing: golden cases worked out by hand, and properties that must always hold."""

from __future__ import annotations

import copy
import csv
import json
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.errors import ValidationFailed
from merchants.tariffs import (
    HK01_TARIFF,
    MAX_STAY,
    Tariff,
    TariffError,
    VehicleClass,
    price_stay,
)

GOLDEN = Path(__file__).parent / "data" / "tariff_golden.csv"
HCM = ZoneInfo("Asia/Ho_Chi_Minh")
HK01 = Tariff.from_dict(HK01_TARIFF)
GRACE = timedelta(minutes=10)
WINDOW_CLASSES = [VehicleClass.BICYCLE, VehicleClass.MOTORBIKE]
HOURLY_CLASSES = [VehicleClass.CAR_SMALL, VehicleClass.CAR_LARGE]
PROPERTY = settings(max_examples=80, deadline=None)


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


def amount(cls: str, entered: datetime, exited: datetime, tariff: Tariff = HK01) -> int:
    return price_stay(tariff, cls, entered, exited).amount


# ---------------------------------------------------------------------------------------------
# Golden table


def _golden_rows() -> list[dict[str, str]]:
    with GOLDEN.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


GOLDEN_ROWS = _golden_rows()


@pytest.mark.parametrize("row", GOLDEN_ROWS, ids=[row["case"] for row in GOLDEN_ROWS])
def test_golden_case(row: dict[str, str]) -> None:
    quote = price_stay(HK01, row["vehicle_class"], at(row["entered_at"]), at(row["exited_at"]))
    assert quote.amount == int(row["expected_amount"]), row["note"]
    assert quote.amount == sum(line["amount"] for line in quote.breakdown)


def test_golden_table_covers_the_required_ground() -> None:
    assert len(GOLDEN_ROWS) >= 45
    assert {row["vehicle_class"] for row in GOLDEN_ROWS} == {c.value for c in VehicleClass}
    assert len({row["case"] for row in GOLDEN_ROWS}) == len(GOLDEN_ROWS)
    utc_rows = [row for row in GOLDEN_ROWS if row["entered_at"].endswith("Z")]
    assert any(
        at(row["entered_at"]).date() != at(row["entered_at"]).astimezone(HCM).date()
        for row in utc_rows
    ), "an entry in UTC whose local day differs"
    stays = {at(row["exited_at"]) - at(row["entered_at"]) for row in GOLDEN_ROWS}
    assert GRACE in stays and GRACE + timedelta(seconds=1) in stays


# ---------------------------------------------------------------------------------------------
# Examples with their breakdowns


def test_motorbike_across_18_00_pays_both_windows_with_their_bounds() -> None:
    quote = price_stay(
        HK01, "motorbike", at("2026-03-02T17:30+07:00"), at("2026-03-02T18:30+07:00")
    )
    assert quote.amount == 13_000
    assert quote.breakdown == [
        {
            "kind": "day_window",
            "start": "2026-03-02T06:00:00+07:00",
            "end": "2026-03-02T18:00:00+07:00",
            "amount": 5_000,
        },
        {
            "kind": "night_window",
            "start": "2026-03-02T18:00:00+07:00",
            "end": "2026-03-03T06:00:00+07:00",
            "amount": 8_000,
        },
    ]


def test_car_breakdown_names_period_hours_and_cap() -> None:
    entered = at("2026-03-02T08:00+07:00")
    quote = price_stay(HK01, "car_small", entered, entered + timedelta(hours=30))
    assert [(line["kind"], line["amount"]) for line in quote.breakdown] == [
        ("hours", 300_000),
        ("hours", 210_000),
    ]
    first, second = quote.to_dict()["breakdown"]
    assert first == {
        "kind": "hours",
        "period": 1,
        "start": "2026-03-02T08:00:00+07:00",
        "end": "2026-03-03T08:00:00+07:00",
        "hours": 24,
        "uncapped_amount": 1_020_000,
        "amount": 300_000,
        "capped": True,
    }
    assert (second["period"], second["hours"], second["capped"]) == (2, 6, False)


def test_stay_within_grace_is_one_free_grace_line() -> None:
    entered = at("2026-03-02T17:55+07:00")
    quote = price_stay(HK01, "car_large", entered, entered + GRACE)
    assert quote.amount == 0
    assert [line["kind"] for line in quote.breakdown] == ["grace"]


def test_zero_length_stay_is_free() -> None:
    entered = at("2026-03-02T06:00+07:00")
    assert amount("motorbike", entered, entered) == 0


def test_without_grace_one_second_still_pays_its_window() -> None:
    doc = copy.deepcopy(HK01_TARIFF)
    doc["grace_minutes"] = 0
    tariff = Tariff.from_dict(doc)
    entered = at("2026-03-02T17:59:59+07:00")
    assert amount("motorbike", entered, entered + timedelta(seconds=1), tariff) == 5_000
    assert amount("car_small", entered, entered + timedelta(seconds=1), tariff) == 25_000


def test_splitting_a_car_stay_can_cost_less_because_steps_restart() -> None:
    # Documented consequence of progressive pricing (SPEC §12): leaving and re-entering restarts
    # the hour steps, so 2 h + 2 h (50,000 each) is cheaper than one 4 h stay (120,000).
    entered = at("2026-03-02T08:00+07:00")
    middle, exited = entered + timedelta(hours=2), entered + timedelta(hours=4)
    split = amount("car_small", entered, middle) + amount("car_small", middle, exited)
    assert (split, amount("car_small", entered, exited)) == (100_000, 120_000)


def test_quote_is_json_serialisable() -> None:
    quote = price_stay(HK01, "motorbike", at("2026-03-02T05:00+07:00"), at("2026-03-03T07:00Z"))
    assert json.loads(json.dumps(quote.to_dict())) == quote.to_dict()


# ---------------------------------------------------------------------------------------------
# Errors when pricing

EXIT = "exited_at"


@pytest.mark.parametrize(
    ("entered", "exited", "code", "field"),
    [
        (datetime(2026, 3, 2, 8), at("2026-03-02T09:00+07:00"), "naive_datetime", "entered_at"),
        (at("2026-03-02T08:00+07:00"), datetime(2026, 3, 2, 9), "naive_datetime", EXIT),
        (at("2026-03-02T08:00+07:00"), "2026-03-02T09:00+07:00", "invalid_datetime", EXIT),
        (at("2026-03-02T09:00+07:00"), at("2026-03-02T08:59+07:00"), "exit_before_entry", EXIT),
        (at("2026-03-02T09:00+07:00"), at("2026-03-02T01:59Z"), "exit_before_entry", EXIT),
        (at("2026-03-02T09:00+07:00"), at("2037-03-02T09:00+07:00"), "stay_too_long", EXIT),
    ],
)
def test_bad_stays_are_refused(entered: Any, exited: Any, code: str, field: str) -> None:
    with pytest.raises(TariffError) as caught:
        price_stay(HK01, "motorbike", entered, exited)
    assert caught.value.instance_code == code
    assert caught.value.field == field
    assert isinstance(caught.value, ValidationFailed) and caught.value.status == 422


def test_ten_years_is_the_longest_stay_priced() -> None:
    entered = at("2026-03-02T09:00+07:00")
    assert amount("car_small", entered, entered + MAX_STAY) == 3660 * 300_000


def test_unknown_and_unpriced_vehicle_classes_are_refused() -> None:
    entered = at("2026-03-02T08:00+07:00")
    with pytest.raises(TariffError) as caught:
        price_stay(HK01, "truck", entered, entered + timedelta(hours=1))
    assert caught.value.instance_code == "unknown_vehicle_class"
    doc = copy.deepcopy(HK01_TARIFF)
    del doc["classes"]["car_large"]
    with pytest.raises(TariffError) as caught:
        price_stay(Tariff.from_dict(doc), "car_large", entered, entered + timedelta(hours=1))
    assert caught.value.instance_code == "vehicle_class_not_priced"


# ---------------------------------------------------------------------------------------------
# Tariff documents


def test_hk01_round_trips_and_is_json() -> None:
    before = copy.deepcopy(HK01_TARIFF)
    assert Tariff.from_dict(HK01_TARIFF).to_dict() == HK01_TARIFF
    assert HK01_TARIFF == before, "from_dict must not modify its input"
    assert json.loads(json.dumps(HK01_TARIFF)) == HK01_TARIFF


def test_windows_are_stored_sorted_by_start() -> None:
    doc = copy.deepcopy(HK01_TARIFF)
    doc["classes"]["motorbike"]["windows"].reverse()
    assert Tariff.from_dict(doc).to_dict() == HK01_TARIFF


DELETE = object()
MB_WINDOWS = ("classes", "motorbike", "windows")
CAR = ("classes", "car_small")
BAD_DOCUMENTS: list[tuple[tuple[Any, ...], Any, str]] = [
    ((), [], "tariff"),
    (("grace_minutes",), DELETE, "tariff.grace_minutes"),
    (("grace_minute",), 10, "tariff.grace_minute"),
    (("currency",), "USD", "currency"),
    (("timezone",), "Mars/Olympus_Mons", "timezone"),
    (("timezone",), 7, "timezone"),
    (("grace_minutes",), 10.0, "grace_minutes"),
    (("grace_minutes",), True, "grace_minutes"),
    (("grace_minutes",), -1, "grace_minutes"),
    (("grace_minutes",), 1441, "grace_minutes"),
    (("classes",), {}, "classes"),
    (("classes", "truck"), HK01_TARIFF["classes"]["car_large"], "classes.truck"),
    (("classes", "motorbike", "type"), "flat", "classes.motorbike.type"),
    ((*MB_WINDOWS, 0, "price"), 5000.0, "classes.motorbike.windows[0].price"),
    ((*MB_WINDOWS, 0, "price"), "5000", "classes.motorbike.windows[0].price"),
    ((*MB_WINDOWS, 0, "price"), -1, "classes.motorbike.windows[0].price"),
    ((*MB_WINDOWS, 0, "price"), 10**12 + 1, "classes.motorbike.windows[0].price"),
    ((*MB_WINDOWS, 0, "start"), "6:00", "classes.motorbike.windows[0].start"),
    ((*MB_WINDOWS, 1, "end"), "24:00", "classes.motorbike.windows[1].end"),
    ((*MB_WINDOWS, 0, "end"), "17:00", "classes.motorbike.windows"),  # a free gap
    ((*MB_WINDOWS, 1, "start"), "17:00", "classes.motorbike.windows"),  # an overlap
    ((*MB_WINDOWS, 1, "name"), "day", "classes.motorbike.windows"),
    ((*MB_WINDOWS, 1, "name"), "Night", "classes.motorbike.windows[1].name"),
    (MB_WINDOWS, [], "classes.motorbike.windows"),
    ((*MB_WINDOWS, 0, "colour"), "red", "classes.motorbike.windows[0].colour"),
    ((*CAR, "steps", 0, "from_hour"), 2, "classes.car_small.steps[0].from_hour"),
    ((*CAR, "steps", 2, "from_hour"), 3, "classes.car_small.steps[2].from_hour"),
    ((*CAR, "steps", 1, "price"), None, "classes.car_small.steps[1].price"),
    ((*CAR, "steps"), "25000", "classes.car_small.steps"),
    ((*CAR, "rounding"), "nearest", "classes.car_small.rounding"),
    ((*CAR, "rounding"), DELETE, "classes.car_small.rounding"),
    ((*CAR, "cap_per_period"), 300000.5, "classes.car_small.cap_per_period"),
    ((*CAR, "period_hours"), 0, "classes.car_small.period_hours"),
    ((*CAR, "steps", 0, "extra"), 1, "classes.car_small.steps[0].extra"),
]


def mutated(path: tuple[Any, ...], value: Any) -> Any:
    """A deep copy of HK01_TARIFF with the node at `path` replaced (or deleted)."""
    if not path:
        return value
    doc = copy.deepcopy(HK01_TARIFF)
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if value is DELETE:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


@pytest.mark.parametrize(("path", "value", "field"), BAD_DOCUMENTS)
def test_bad_tariff_documents_name_the_field(path: tuple[Any, ...], value: Any, field: str) -> None:
    with pytest.raises(TariffError) as caught:
        Tariff.from_dict(mutated(path, value))
    assert caught.value.field == field
    assert caught.value.instance_code == "invalid_tariff"
    assert caught.value.errors[0].field == field


def test_one_window_may_cover_the_whole_day() -> None:
    doc = mutated(MB_WINDOWS, [{"name": "all_day", "start": "12:00", "end": "12:00", "price": 7}])
    tariff = Tariff.from_dict(doc)
    entered = at("2026-03-02T11:00+07:00")
    assert amount("motorbike", entered, entered + timedelta(hours=2), tariff) == 14
    assert amount("motorbike", entered, entered + timedelta(hours=1), tariff) == 7


# ---------------------------------------------------------------------------------------------
# Properties

BOUNDARY_TIMES = [time(h, m) for h, m in [(0, 0), (5, 50), (5, 59), (6, 0), (6, 1), (17, 50)]]
BOUNDARY_TIMES += [time(h, m) for h, m in [(17, 59), (18, 0), (18, 1), (23, 59)]]
ZONES = [HCM, UTC, timezone(timedelta(hours=-5))]

boundary_instants = st.builds(
    lambda day, clock: datetime.combine(day, clock, tzinfo=HCM),
    st.dates(date(2026, 1, 1), date(2026, 12, 31)),
    st.sampled_from(BOUNDARY_TIMES),
)
any_instants = st.datetimes(
    min_value=datetime(2020, 1, 1),
    max_value=datetime(2030, 12, 31),
    timezones=st.sampled_from(ZONES),
)
instants = st.one_of(boundary_instants, any_instants)
durations = st.one_of(
    st.integers(0, 5 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=5)),
)
past_grace = st.one_of(
    st.integers(11, 3 * 24 * 60).map(lambda minutes: timedelta(minutes=minutes)),
    st.timedeltas(min_value=GRACE + timedelta(microseconds=1), max_value=timedelta(days=3)),
)
classes = st.sampled_from(list(VehicleClass))


@st.composite
def window_documents(draw: st.DrawFn) -> dict[str, Any]:
    cuts = draw(st.lists(st.integers(0, 24 * 60 - 1), min_size=1, max_size=4, unique=True))
    cuts.sort()
    clocks = [f"{cut // 60:02d}:{cut % 60:02d}" for cut in cuts]
    windows: list[dict[str, Any]] = [
        {"name": f"w{i}", "start": clock, "end": clocks[(i + 1) % len(clocks)]}
        for i, clock in enumerate(clocks)
    ]
    for window in windows:
        window["price"] = draw(st.integers(0, 100_000))
    return {"type": "per_window", "windows": windows}


@st.composite
def hourly_documents(draw: st.DrawFn) -> dict[str, Any]:
    starts = draw(st.lists(st.integers(2, 30), max_size=3, unique=True))
    steps = [
        {"from_hour": hour, "price": draw(st.integers(0, 100_000))} for hour in [1, *sorted(starts)]
    ]
    return {
        "type": "progressive_hourly",
        "rounding": "up_to_hour",
        "steps": steps,
        "period_hours": draw(st.integers(1, 48)),
        "cap_per_period": draw(st.integers(0, 2_000_000)),
    }


@st.composite
def tariff_documents(draw: st.DrawFn) -> dict[str, Any]:
    elements = st.one_of(window_documents(), hourly_documents())
    return {
        "currency": "VND",
        "timezone": draw(st.sampled_from(["Asia/Ho_Chi_Minh", "UTC", "Europe/Paris"])),
        "grace_minutes": draw(st.integers(0, 60)),
        "classes": {cls.value: draw(elements) for cls in VehicleClass},
    }


tariffs = st.one_of(st.just(HK01), tariff_documents().map(Tariff.from_dict))


@PROPERTY
@given(tariffs, classes, instants, durations, durations)
def test_price_never_decreases_as_the_exit_moves_later(
    tariff: Tariff, cls: str, entered: datetime, one: timedelta, other: timedelta
) -> None:
    shorter, longer = sorted([one, other])
    assert amount(cls, entered, entered + shorter, tariff) <= amount(
        cls, entered, entered + longer, tariff
    )


@PROPERTY
@given(tariffs, classes, instants, durations, durations)
def test_price_never_decreases_as_the_entry_moves_earlier(
    tariff: Tariff, cls: str, exited: datetime, one: timedelta, other: timedelta
) -> None:
    shorter, longer = sorted([one, other])
    assert amount(cls, exited - shorter, exited, tariff) <= amount(
        cls, exited - longer, exited, tariff
    )


@PROPERTY
@given(st.sampled_from(WINDOW_CLASSES), instants, past_grace, past_grace)
def test_splitting_a_window_stay_never_costs_less(
    cls: str, entered: datetime, first: timedelta, second: timedelta
) -> None:
    middle, exited = entered + first, entered + first + second
    split = amount(cls, entered, middle) + amount(cls, middle, exited)
    assert split >= amount(cls, entered, exited)


@PROPERTY
@given(st.sampled_from(HOURLY_CLASSES), instants, st.integers(1, 3), past_grace)
def test_splitting_a_car_stay_at_a_period_boundary_never_costs_less(
    cls: str, entered: datetime, periods: int, second: timedelta
) -> None:
    middle = entered + timedelta(hours=24 * periods)
    exited = middle + second
    split = amount(cls, entered, middle) + amount(cls, middle, exited)
    assert split >= amount(cls, entered, exited)


@PROPERTY
@given(tariffs, classes, instants, durations)
def test_amount_is_a_non_negative_int_that_sums_the_breakdown(
    tariff: Tariff, cls: str, entered: datetime, duration: timedelta
) -> None:
    quote = price_stay(tariff, cls, entered, entered + duration)
    assert type(quote.amount) is int and quote.amount >= 0
    assert all(type(line["amount"]) is int for line in quote.breakdown)
    assert quote.amount == sum(line["amount"] for line in quote.breakdown)
    if duration <= timedelta(minutes=tariff.grace_minutes):
        assert quote.amount == 0


@PROPERTY
@given(classes, instants, durations)
def test_hk01_charges_exactly_the_stays_longer_than_grace(
    cls: str, entered: datetime, duration: timedelta
) -> None:
    assert (amount(cls, entered, entered + duration) > 0) == (duration > GRACE)


@PROPERTY
@given(tariff_documents())
def test_valid_documents_round_trip(doc: dict[str, Any]) -> None:
    assert Tariff.from_dict(doc).to_dict() == doc
    assert Tariff.from_dict(json.loads(json.dumps(doc))) == Tariff.from_dict(doc)


def _node_paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    children: list[tuple[Any, Any]] = []
    if isinstance(node, dict):
        children = list(node.items())
    elif isinstance(node, list):
        children = list(enumerate(node))
    paths = [prefix]
    for key, child in children:
        paths += _node_paths(child, (*prefix, key))
    return paths


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=6,
)


@PROPERTY
@given(st.sampled_from(_node_paths(HK01_TARIFF)), json_values | st.just(DELETE))
def test_any_corrupted_document_is_refused_with_tariff_error_or_still_valid(
    path: tuple[Any, ...], junk: Any
) -> None:
    doc = mutated(path, junk) if path or junk is not DELETE else None
    try:
        tariff = Tariff.from_dict(doc)
    except TariffError as error:
        assert error.field
    else:
        assert Tariff.from_dict(tariff.to_dict()) == tariff
