"""Parking tariffs as declarative data, and the exact price of one stay (SPEC §7, §12, §13).

A pure rule module: no Flask, no database, no clock. A tariff is a JSON document in the manner of
the CDS/OCPI tariff standards (see `HK01_TARIFF`); `Tariff.from_dict` validates it once, and
`price_stay` prices a stay with it. Every amount is an integer of VND.

The rules, decided precisely (golden cases in tests/unit/data/tariff_golden.csv):

- **Instants.** Entry and exit must be timezone-aware; they are compared as absolute instants, so
  `2026-03-01T23:30:00Z` and `2026-03-02T06:30:00+07:00` are the same entry. Exit before entry is
  an error; exit equal to entry is a zero-length stay.
- **Grace** applies to the whole stay only: a stay of at most `grace_minutes` (exact to the
  microsecond: 10:00 is free, 10:00 plus one second is not) costs 0 for every vehicle class.
  A longer stay pays its full price from entry: the grace is not deducted, and it is not applied
  again to a window or to a 24-hour period.
- **Per-window element** (motorbike, bicycle): the windows tile the local day, e.g. day
  `[06:00, 18:00)` and night `[18:00, 06:00)`, which wraps past midnight. Windows and the stay
  `[entered_at, exited_at)` are half-open, so the stay pays each window occurrence it overlaps for a
  positive length of time. 06:00–18:00 is one day window; 05:59–18:00 and 06:00–18:01 are two;
  22:00–02:00 is one night window. Windows are read on the tariff's local wall clock.
- **Progressive hourly element** (cars): the stay is cut into periods of `period_hours` elapsed
  hours counted from entry. In each period the time is rounded up to whole hours; hour n costs the
  price of the last step whose `from_hour` ≤ n, the steps restarting in every period; a period's
  charge is capped at `cap_per_period`. The last, partial period is charged the same way (so 24 h
  01 min of `car_small` is 300,000 + 25,000). Hours are elapsed time, not wall-clock time.

Consequence worth knowing: with rising hourly steps, two back-to-back car stays can cost less than
one stay of the same total length (2 h + 2 h = 100,000 < 4 h = 120,000), because the steps restart.
That is what progressive pricing means (it rewards turnover); splitting a per-window stay, or a car
stay at a period boundary, never costs less.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import Any, Final, Literal, TypeAlias, TypedDict
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from core.errors import FieldError, ValidationFailed
from core.money import CURRENCY, MAX_AMOUNT

MINUTES_PER_DAY: Final = 24 * 60
MAX_PERIOD_HOURS: Final = 366 * 24
# Beyond ten years a stay is an abandoned vehicle for the operator, not a price to compute.
MAX_STAY: Final = timedelta(days=3660)
_CLOCK = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class TariffError(ValidationFailed):
    """A tariff document, or a stay to price with it, that breaks the rules (maps to a 422).

    `field` is the dotted path of the offending input (`classes.car_small.steps[1].price`,
    `exited_at`, …) when one is to blame; `instance_code` is the stable machine code.
    """

    def __init__(self, message: str, *, code: str = "invalid_tariff", field: str | None = None):
        errors = [FieldError(field, code, message)] if field else None
        super().__init__(message, code=code, errors=errors)
        self.field = field


class VehicleClass(StrEnum):
    BICYCLE = "bicycle"
    MOTORBIKE = "motorbike"
    CAR_SMALL = "car_small"  # ≤ 9 seats
    CAR_LARGE = "car_large"  # > 9 seats


class ElementType(StrEnum):
    PER_WINDOW = "per_window"
    PROGRESSIVE_HOURLY = "progressive_hourly"


# The only rounding rule we price with; it is spelt out in the data so a reader of a tariff
# document never has to guess it (SPEC §7: "an explicit rounding rule").
ROUND_UP_TO_HOUR: Final = "up_to_hour"


class GraceLine(TypedDict):
    kind: Literal["grace"]
    start: str
    end: str
    grace_minutes: int
    amount: int


class WindowLine(TypedDict):
    kind: str  # "<window name>_window", e.g. "day_window", "night_window"
    start: str
    end: str
    amount: int


class HoursLine(TypedDict):
    kind: Literal["hours"]
    period: int
    start: str
    end: str
    hours: int
    uncapped_amount: int
    amount: int
    capped: bool


BreakdownLine: TypeAlias = GraceLine | WindowLine | HoursLine


@dataclass(frozen=True)
class Quote:
    """The price of one stay: `amount` (int VND ≥ 0) equals the sum of the breakdown amounts."""

    amount: int
    breakdown: list[BreakdownLine]

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form `{amount, breakdown}` (timestamps as ISO 8601 local strings)."""
        return {"amount": self.amount, "breakdown": [dict(line) for line in self.breakdown]}


@dataclass(frozen=True)
class Window:
    """One daily window `[start, end)` on the local clock; `end <= start` wraps past midnight."""

    name: str
    start: time
    end: time
    price: int

    def occurrence(self, day: date, zone: tzinfo) -> tuple[datetime, datetime]:
        """The instants of this window when it starts on local `day`."""
        start = datetime.combine(day, self.start, tzinfo=zone)
        end_day = day + timedelta(days=1) if self.end <= self.start else day
        return start, datetime.combine(end_day, self.end, tzinfo=zone)


@dataclass(frozen=True)
class PerWindowElement:
    """Pay each window occurrence the stay overlaps; `windows` tile the day, sorted by start."""

    windows: tuple[Window, ...]

    def to_dict(self) -> dict[str, Any]:
        windows = [
            {"name": w.name, "start": _clock(w.start), "end": _clock(w.end), "price": w.price}
            for w in self.windows
        ]
        return {"type": ElementType.PER_WINDOW.value, "windows": windows}


@dataclass(frozen=True)
class HourStep:
    from_hour: int
    price: int


@dataclass(frozen=True)
class ProgressiveHourlyElement:
    """Hourly steps restarting every `period_hours`, each period capped at `cap_per_period`."""

    steps: tuple[HourStep, ...]
    period_hours: int
    cap_per_period: int

    def uncapped_charge(self, hours: int) -> int:
        """The sum of the step prices of hours 1..`hours` of one period."""
        total = 0
        bounds = [step.from_hour for step in self.steps[1:]] + [hours + 1]
        for step, next_from in zip(self.steps, bounds, strict=True):
            band = min(hours + 1, next_from) - step.from_hour
            total += max(band, 0) * step.price
        return total

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": ElementType.PROGRESSIVE_HOURLY.value,
            "rounding": ROUND_UP_TO_HOUR,
            "steps": [{"from_hour": s.from_hour, "price": s.price} for s in self.steps],
            "period_hours": self.period_hours,
            "cap_per_period": self.cap_per_period,
        }


Element: TypeAlias = PerWindowElement | ProgressiveHourlyElement


@dataclass(frozen=True)
class Tariff:
    """A validated tariff. Build it with `Tariff.from_dict`; it never changes afterwards."""

    timezone: str
    grace_minutes: int
    classes: Mapping[VehicleClass, Element]
    currency: str = CURRENCY

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @classmethod
    def from_dict(cls, d: object) -> Tariff:
        """Validate a tariff document and return it as a `Tariff`.

        Guarantees: unknown or missing keys, non-integer or negative prices, amounts above 10^12,
        an unknown time zone, windows that do not tile the day exactly, and steps that do not
        start at hour 1 and rise strictly all raise `TariffError` naming the field. The input is
        not modified. `from_dict(t.to_dict()) == t` for every valid tariff.
        """
        doc = _mapping(d, "tariff")
        _exact_keys(doc, {"currency", "timezone", "grace_minutes", "classes"}, "tariff")
        if doc["currency"] != CURRENCY:
            raise TariffError("only VND tariffs are supported", field="currency")
        return cls(
            timezone=_parse_zone(doc["timezone"]),
            grace_minutes=_integer(doc["grace_minutes"], "grace_minutes", MINUTES_PER_DAY),
            classes=_parse_classes(doc["classes"]),
        )

    def to_dict(self) -> dict[str, Any]:
        """The canonical JSON-serialisable document (windows sorted by start)."""
        return {
            "currency": self.currency,
            "timezone": self.timezone,
            "grace_minutes": self.grace_minutes,
            "classes": {cls.value: element.to_dict() for cls, element in self.classes.items()},
        }


def _day_night(day_price: int, night_price: int) -> dict[str, Any]:
    return {
        "type": "per_window",
        "windows": [
            {"name": "day", "start": "06:00", "end": "18:00", "price": day_price},
            {"name": "night", "start": "18:00", "end": "06:00", "price": night_price},
        ],
    }


def _hourly(first: int, third: int, fifth: int, cap: int) -> dict[str, Any]:
    return {
        "type": "progressive_hourly",
        "rounding": ROUND_UP_TO_HOUR,
        "steps": [
            {"from_hour": 1, "price": first},
            {"from_hour": 3, "price": third},
            {"from_hour": 5, "price": fifth},
        ],
        "period_hours": 24,
        "cap_per_period": cap,
    }


# The tariff of lot HK-01 (Hoàn Kiếm), exactly as SPEC §12 and §13 state it. Treat as read-only:
# deep-copy it before changing anything (demo seeding stores a copy per lot).
HK01_TARIFF: Final[dict[str, Any]] = {
    "currency": "VND",
    "timezone": "Asia/Ho_Chi_Minh",
    "grace_minutes": 10,
    "classes": {
        "bicycle": _day_night(2_000, 3_000),
        "motorbike": _day_night(5_000, 8_000),
        "car_small": _hourly(25_000, 35_000, 45_000, cap=300_000),
        "car_large": _hourly(35_000, 45_000, 55_000, cap=400_000),
    },
}


# ---------------------------------------------------------------------------------------------
# Pricing


def price_stay(
    tariff: Tariff, vehicle_class: str, entered_at: datetime, exited_at: datetime
) -> Quote:
    """Price the stay `[entered_at, exited_at)` of one vehicle under `tariff`.

    Guarantees: deterministic and pure; `amount` is an int ≥ 0 equal to the sum of the breakdown
    amounts; a stay of at most the grace period costs 0 (one `grace` line); the amount never
    decreases as the stay grows at either end. Raises `TariffError` for a naive or non-datetime
    instant, an exit before the entry, a stay over ten years, or a vehicle class the tariff does
    not price.
    """
    element = _element_for(tariff, vehicle_class)
    entered, exited = _utc(entered_at, "entered_at"), _utc(exited_at, "exited_at")
    if exited < entered:
        raise TariffError("exit is before entry", code="exit_before_entry", field="exited_at")
    if exited - entered > MAX_STAY:
        raise TariffError("stay is longer than ten years", code="stay_too_long", field="exited_at")
    zone = tariff.zone
    if exited - entered <= timedelta(minutes=tariff.grace_minutes):
        return Quote(0, [_grace_line(tariff.grace_minutes, entered, exited, zone)])
    lines: list[BreakdownLine] = []
    if isinstance(element, PerWindowElement):
        lines.extend(_price_windows(element, zone, entered, exited))
    else:
        lines.extend(_price_periods(element, zone, entered, exited))
    return Quote(sum(line["amount"] for line in lines), lines)


def _element_for(tariff: Tariff, vehicle_class: str) -> Element:
    try:
        cls = VehicleClass(vehicle_class)
    except ValueError:
        raise TariffError(
            f"unknown vehicle class {vehicle_class!r}",
            code="unknown_vehicle_class",
            field="vehicle_class",
        ) from None
    if cls not in tariff.classes:
        raise TariffError(
            f"this tariff has no price for {cls.value}",
            code="vehicle_class_not_priced",
            field="vehicle_class",
        )
    return tariff.classes[cls]


def _utc(value: object, field: str) -> datetime:
    # Aware datetimes sharing one tzinfo compare by wall clock, which is wrong across a DST fold;
    # normalising to UTC makes every comparison below one between absolute instants.
    if not isinstance(value, datetime):
        raise TariffError("must be a datetime", code="invalid_datetime", field=field)
    if value.tzinfo is None or value.utcoffset() is None:
        raise TariffError("must carry a UTC offset", code="naive_datetime", field=field)
    return value.astimezone(UTC)


def _grace_line(grace: int, entered: datetime, exited: datetime, zone: tzinfo) -> GraceLine:
    return {
        "kind": "grace",
        "start": _local_iso(entered, zone),
        "end": _local_iso(exited, zone),
        "grace_minutes": grace,
        "amount": 0,
    }


def _price_windows(
    element: PerWindowElement, zone: tzinfo, entered: datetime, exited: datetime
) -> list[WindowLine]:
    """One line per window occurrence overlapping the stay, in time order."""
    # A wrapping window that started the local day before entry can still cover the entry.
    day = entered.astimezone(zone).date() - timedelta(days=1)
    last_day = exited.astimezone(zone).date()
    lines: list[WindowLine] = []
    while day <= last_day:
        for window in element.windows:
            start, end = window.occurrence(day, zone)
            if start < exited and entered < end:  # half-open: touching is not overlapping
                lines.append(
                    {
                        "kind": f"{window.name}_window",
                        "start": _local_iso(start, zone),
                        "end": _local_iso(end, zone),
                        "amount": window.price,
                    }
                )
        day += timedelta(days=1)
    return lines


def _price_periods(
    element: ProgressiveHourlyElement, zone: tzinfo, entered: datetime, exited: datetime
) -> list[HoursLine]:
    """One line per period counted from entry; the last period may be partial."""
    length = timedelta(hours=element.period_hours)
    lines: list[HoursLine] = []
    start, number = entered, 1
    while start < exited:
        end = min(start + length, exited)
        hours = _hours_rounded_up(end - start)
        uncapped = element.uncapped_charge(hours)
        lines.append(
            {
                "kind": "hours",
                "period": number,
                "start": _local_iso(start, zone),
                "end": _local_iso(end, zone),
                "hours": hours,
                "uncapped_amount": uncapped,
                "amount": min(uncapped, element.cap_per_period),
                "capped": uncapped > element.cap_per_period,
            }
        )
        start, number = start + length, number + 1
    return lines


def _hours_rounded_up(duration: timedelta) -> int:
    # Integer microseconds: a float division could round 2 h 00 min 00.000001 s down to 2 h.
    return -(-duration // timedelta(hours=1))


def _local_iso(instant: datetime, zone: tzinfo) -> str:
    return instant.astimezone(zone).isoformat()


def _clock(value: time) -> str:
    return value.strftime("%H:%M")


# ---------------------------------------------------------------------------------------------
# Validation of tariff documents


def _mapping(value: object, field: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise TariffError("must be an object", field=field)
    return value


def _list(value: object, field: str) -> list[Any]:
    if not isinstance(value, list | tuple) or not value:
        raise TariffError("must be a non-empty list", field=field)
    return list(value)


def _exact_keys(doc: Mapping[str, Any], keys: set[str], field: str) -> None:
    # Unknown keys are refused, not ignored: a misspelt "grace_minute" must not price silently.
    unknown = sorted(str(k) for k in doc if k not in keys)
    if unknown:
        raise TariffError(f"unknown key(s): {', '.join(unknown)}", field=f"{field}.{unknown[0]}")
    missing = sorted(keys - set(doc))
    if missing:
        raise TariffError(f"missing key(s): {', '.join(missing)}", field=f"{field}.{missing[0]}")


def _integer(value: object, field: str, maximum: int, minimum: int = 0) -> int:
    # bool is an int in Python, and a float price is exactly the bug money-as-a-type forbids.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TariffError("must be an integer", field=field)
    if not minimum <= value <= maximum:
        raise TariffError(f"must be between {minimum} and {maximum}", field=field)
    return value


def _price(value: object, field: str) -> int:
    return _integer(value, field, MAX_AMOUNT)


def _parse_zone(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise TariffError("must be an IANA time zone name", field="timezone")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise TariffError(f"unknown time zone {value!r}", field="timezone") from None
    return value


def _parse_classes(value: object) -> dict[VehicleClass, Element]:
    doc = _mapping(value, "classes")
    if not doc:
        raise TariffError("must price at least one vehicle class", field="classes")
    known = {cls.value for cls in VehicleClass}
    unknown = sorted(str(k) for k in doc if k not in known)
    if unknown:
        raise TariffError(f"unknown vehicle class {unknown[0]!r}", field=f"classes.{unknown[0]}")
    return {
        cls: _parse_element(doc[cls.value], f"classes.{cls.value}")
        for cls in VehicleClass
        if cls.value in doc
    }


def _parse_element(value: object, field: str) -> Element:
    doc = _mapping(value, field)
    kind = doc.get("type")
    if kind == ElementType.PER_WINDOW:
        _exact_keys(doc, {"type", "windows"}, field)
        return PerWindowElement(_parse_windows(doc["windows"], f"{field}.windows"))
    if kind == ElementType.PROGRESSIVE_HOURLY:
        return _parse_progressive(doc, field)
    allowed = ", ".join(t.value for t in ElementType)
    raise TariffError(f"type must be one of: {allowed}", field=f"{field}.type")


def _parse_clock(value: object, field: str) -> time:
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        raise TariffError("must be a local time HH:MM (00:00–23:59)", field=field)
    return time(int(match.group(1)), int(match.group(2)))


def _parse_window(value: object, field: str) -> Window:
    doc = _mapping(value, field)
    _exact_keys(doc, {"name", "start", "end", "price"}, field)
    name = doc["name"]
    if not isinstance(name, str) or not _NAME.match(name):
        raise TariffError("must be a lower-case identifier such as 'day'", field=f"{field}.name")
    return Window(
        name=name,
        start=_parse_clock(doc["start"], f"{field}.start"),
        end=_parse_clock(doc["end"], f"{field}.end"),
        price=_price(doc["price"], f"{field}.price"),
    )


def _parse_windows(value: object, field: str) -> tuple[Window, ...]:
    items = _list(value, field)
    windows = [_parse_window(item, f"{field}[{i}]") for i, item in enumerate(items)]
    if len({w.name for w in windows}) != len(windows):
        raise TariffError("window names must be unique", field=field)
    ordered = sorted(windows, key=lambda w: w.start)
    if len({w.start for w in ordered}) != len(ordered):
        raise TariffError("two windows start at the same time", field=field)
    # Each window must end where the next begins (cyclically): then the windows cover the day
    # exactly once, with no free gap and no instant paid twice.
    for window, following in zip(ordered, ordered[1:] + ordered[:1], strict=True):
        if window.end != following.start:
            raise TariffError(
                f"window {window.name!r} must end where the next one starts "
                f"({_clock(following.start)}): windows must tile the day",
                field=field,
            )
    return tuple(ordered)


def _parse_steps(value: object, field: str) -> tuple[HourStep, ...]:
    items = _list(value, field)
    steps: list[HourStep] = []
    for i, item in enumerate(items):
        doc = _mapping(item, f"{field}[{i}]")
        _exact_keys(doc, {"from_hour", "price"}, f"{field}[{i}]")
        from_hour = _integer(doc["from_hour"], f"{field}[{i}].from_hour", MAX_PERIOD_HOURS, 1)
        if (not steps and from_hour != 1) or (steps and from_hour <= steps[-1].from_hour):
            raise TariffError(
                "steps must start at hour 1 and rise strictly", field=f"{field}[{i}].from_hour"
            )
        steps.append(HourStep(from_hour, _price(doc["price"], f"{field}[{i}].price")))
    return tuple(steps)


def _parse_progressive(doc: Mapping[str, Any], field: str) -> ProgressiveHourlyElement:
    keys = {"type", "rounding", "steps", "period_hours", "cap_per_period"}
    _exact_keys(doc, keys, field)
    if doc["rounding"] != ROUND_UP_TO_HOUR:
        raise TariffError(f"rounding must be {ROUND_UP_TO_HOUR!r}", field=f"{field}.rounding")
    return ProgressiveHourlyElement(
        steps=_parse_steps(doc["steps"], f"{field}.steps"),
        period_hours=_integer(doc["period_hours"], f"{field}.period_hours", MAX_PERIOD_HOURS, 1),
        cap_per_period=_price(doc["cap_per_period"], f"{field}.cap_per_period"),
    )
