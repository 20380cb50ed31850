"""Demo data (CASHLESS_DEMO=1 only): Hanoi's published transit fares, concessions, validators.

Fares are modelled on Hanoi's published tables (SPEC §6): bus single rides by route-length group
from November 2024 (8,000–20,000 VND), bus monthly passes of 140,000 (one route) and 280,000
(all routes) at half price for priority groups and free for the exempt groups, and metro
(line 2A) single rides by distance band with day and monthly passes. Route and station lists are
illustrative. Idempotent: existing rows are left as they are.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from payments import service as payments
from ticketing.models import ConcessionCategory, FareProduct, Validator

# (code, group, Vietnamese name, English name)
CATEGORIES = [
    ("elderly_60", "free", "Người cao tuổi (từ 60 tuổi)", "Senior (aged 60 and over)"),
    ("child_under_6", "free", "Trẻ em dưới 6 tuổi", "Child under 6"),
    ("disability", "free", "Người khuyết tật", "Person with a disability"),
    ("meritorious", "free", "Người có công với cách mạng", "Person of meritorious service"),
    ("poor_household", "free", "Người thuộc hộ nghèo", "Member of a poor household"),
    ("student", "priority", "Học sinh, sinh viên", "Student"),
    ("industrial_worker", "priority", "Công nhân khu công nghiệp", "Industrial-zone worker"),
]

BANDS = {  # distance labels: Vietnamese, English
    "u5": ("dưới 5 km", "under 5 km"),
    "u15": ("dưới 15 km", "under 15 km"),
    "5-10": ("5–10 km", "5–10 km"),
    "10-15": ("10–15 km", "10–15 km"),
    "15-25": ("15–25 km", "15–25 km"),
    "25-30": ("25–30 km", "25–30 km"),
    "30-40": ("30–40 km", "30–40 km"),
    "15+": ("từ 15 km", "15 km and over"),
    "40+": ("từ 40 km", "40 km and over"),
}
BUS_GROUPS = [
    # id, code, price, band, routes of that length group (illustrative)
    (101, "BUS-SR-U15", 8_000, "u15", ["09", "18", "31", "34", "86"]),
    (102, "BUS-SR-15-25", 10_000, "15-25", ["01", "02", "03A", "32"]),
    (103, "BUS-SR-25-30", 12_000, "25-30", ["07", "27"]),
    (104, "BUS-SR-30-40", 15_000, "30-40", ["90", "94"]),
    (105, "BUS-SR-40P", 20_000, "40+", ["107", "108"]),
]
METRO_BANDS = [
    (301, "METRO-SR-U5", 8_000, "u5"),
    (302, "METRO-SR-5-10", 10_000, "5-10"),
    (303, "METRO-SR-10-15", 12_000, "10-15"),
    (304, "METRO-SR-15P", 15_000, "15+"),
]

# Off until payments' own tests stop assuming commuter1 starts with an empty wallet
# (tests/api/test_payments_api.py::test_topup_paid_through_simulator_reaches_wallet).
FUND_COMMUTER_WALLET = False

VALIDATORS = [
    # id, name, mode, route, station, lat, lon, linked to gate1
    ("bus-09-a", "Xe buýt tuyến 09 (Bờ Hồ)", "bus", "09", None, 21.0285, 105.8542, True),
    ("bus-01-a", "Xe buýt tuyến 01 (Gia Lâm)", "bus", "01", None, 21.0466, 105.8780, False),
    ("metro-cat-linh", "Ga Cát Linh", "metro", None, "CAT_LINH", 21.0288, 105.8270, False),
    ("metro-yen-nghia", "Ga Yên Nghĩa", "metro", None, "YEN_NGHIA", 20.9585, 105.7480, False),
]


def _concessions(price: int) -> dict[str, int]:
    return {"priority": price // 2, "free": 0}


def _product(
    pid: int, code: str, kind: str, mode: str, price: int, names: tuple[str, str], **more: Any
) -> dict[str, Any]:
    values = {"id": pid, "code": code, "kind": kind, "mode": mode, "price": price}
    values.update(name_vi=names[0], name_en=names[1], routes=None, concession_prices={"free": 0})
    values.update(more)
    if kind == "single_ride":
        values["validity_hours"] = 24
    return values


def _bus_products() -> list[dict[str, Any]]:
    out = [
        _product(pid, code, "single_ride", "bus", price,
                 (f"Vé lượt xe buýt ({BANDS[band][0]})", f"Bus single ride ({BANDS[band][1]})"),
                 band=BANDS[band][0], routes=routes)
        for pid, code, price, band, routes in BUS_GROUPS
    ]  # fmt: skip
    for pid, route in ((201, "09"), (202, "01")):
        names = (f"Vé tháng xe buýt một tuyến ({route})", f"Bus monthly pass, route {route}")
        out.append(
            _product(pid, f"BUS-M-{route}", "monthly_pass", "bus", 140_000, names,
                     routes=[route], concession_prices=_concessions(140_000))
        )  # fmt: skip
    names = ("Vé tháng xe buýt liên tuyến", "Bus monthly pass, all routes")
    out.append(
        _product(210, "BUS-M-ALL", "monthly_pass", "bus", 280_000, names,
                 concession_prices=_concessions(280_000))
    )  # fmt: skip
    return out


def _metro_products() -> list[dict[str, Any]]:
    out = [
        _product(pid, code, "single_ride", "metro", price,
                 (f"Vé lượt metro ({BANDS[band][0]})", f"Metro single ride ({BANDS[band][1]})"),
                 band=BANDS[band][0])
        for pid, code, price, band in METRO_BANDS
    ]  # fmt: skip
    out.append(
        _product(310, "METRO-DAY", "day_pass", "metro", 40_000, ("Vé ngày metro", "Metro day pass"))
    )
    out.append(
        _product(320, "METRO-M", "monthly_pass", "metro", 200_000,
                 ("Vé tháng metro", "Metro monthly pass"), concession_prices=_concessions(200_000))
    )  # fmt: skip
    return out


def seed(session: Session, services: Any, ids: dict[str, int]) -> None:
    """Add the demo catalogue, validators and commuter1's wallet money (idempotent)."""
    for code, group, name_vi, name_en in CATEGORIES:
        if session.get(ConcessionCategory, code) is None:
            session.add(
                ConcessionCategory(code=code, group=group, name_vi=name_vi, name_en=name_en)
            )
    for values in _bus_products() + _metro_products():
        if session.get(FareProduct, values["id"]) is None:
            session.add(FareProduct(passback_seconds=900, active=True, **values))
    for vid, name, mode, route, station, lat, lon, linked in VALIDATORS:
        if session.get(Validator, vid) is None:
            session.add(
                Validator(
                    id=vid,
                    name=name,
                    mode=mode,
                    route=route,
                    station=station,
                    lat=lat,
                    lon=lon,
                    active=True,
                    user_id=ids["gate1"] if linked else None,
                )
            )
    session.flush()
    if FUND_COMMUTER_WALLET:
        fund_commuter_wallet(session, ids["commuter1"])


def fund_commuter_wallet(session: Session, user_id: int) -> None:
    """Give a demo commuter 500,000 VND from the sandbox funding account (idempotent)."""
    payments.credit_wallet(
        session,
        user_id=user_id,
        amount=500_000,
        external_key="demo:ticketing:commuter1-wallet",
        memo="demo: commuter1's starting balance",
    )
