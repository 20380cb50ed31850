"""Demo data for markets and parking (CASHLESS_DEMO=1 only). Idempotent: a second run adds
nothing.

- The market merchant of chợ Sấu, staffed by `vendor1`, with two stalls and their static QRs
  (settlement account and name as in SPEC §13's statement example; the city waives the
  discount for markets).
- The parking operator "Công ty Trông giữ xe Hoàn Kiếm", staffed by `attendant1`, running lot
  `HK-01` (Hoàn Kiếm) with exactly the tariff of SPEC §12. Capacities and monthly pass prices
  are illustrative demo values, not published figures.
"""

from __future__ import annotations

import copy
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from merchants.models import Merchant, MerchantCategory, ParkingLot, StaffRole, Stall
from merchants.service import add_staff_member
from merchants.tariffs import HK01_TARIFF, Tariff
from payments import ledger
from payments.service import PaymentsConfig
from payments.static_codes import register_static_code

MARKET = {
    "legal_name": "Hộ kinh doanh Lê Thị Bình (chợ Sấu)",
    "short_name": "Chợ Sấu",
    "category": MerchantCategory.MARKET_VENDOR,
    "settlement_bin": "970436",
    "settlement_account": "0099887766",
    "settlement_account_name": "Hộ kinh doanh Lê Thị Bình",
    "discount_rate_bp": 0,
}
STALLS = [
    ("Chợ Sấu", "SAU-01", "Sạp rau Bình"),
    ("Chợ Sấu", "SAU-02", "Sạp hoa quả Bình"),
]
OPERATOR = {
    "legal_name": "Công ty Trông giữ xe Hoàn Kiếm",
    "short_name": "TGX Hoàn Kiếm",
    "category": MerchantCategory.PARKING_OPERATOR,
    "settlement_bin": "970418",
    "settlement_account": "12510000123456",
    "settlement_account_name": "Công ty Trông giữ xe Hoàn Kiếm",
    "discount_rate_bp": 0,
}
HK01 = {
    "code": "HK-01",
    "name": "Hoàn Kiếm",
    "address": "Quận Hoàn Kiếm, Hà Nội",
    "capacity": {"bicycle": 40, "motorbike": 300, "car_small": 40, "car_large": 6},
    "pass_prices": {
        "bicycle": 60_000,
        "motorbike": 140_000,
        "car_small": 1_800_000,
        "car_large": 2_500_000,
    },
}


def _merchant(session: Session, fields: dict[str, Any], staff: list[tuple[str, str]]) -> Merchant:
    found = session.scalars(
        select(Merchant).where(Merchant.legal_name == fields["legal_name"])
    ).first()
    if found is not None:
        return found
    merchant = Merchant(**fields)
    session.add(merchant)
    session.flush()
    ledger.merchant_payable(session, merchant.id)
    for username, role in staff:
        add_staff_member(session, merchant, username, role, "demo")
    return merchant


def _stalls(session: Session, cfg: PaymentsConfig, merchant: Merchant) -> None:
    for market, code, name in STALLS:
        stall = session.scalars(
            select(Stall).where(Stall.merchant_id == merchant.id, Stall.code == code)
        ).first()
        if stall is None:
            stall = Stall(merchant_id=merchant.id, market=market, code=code, name=name)
            session.add(stall)
            session.flush()
        register_static_code(
            session,
            cfg,
            stall_id=stall.id,
            merchant_id=merchant.id,
            terminal_label=code,
            merchant_name=merchant.short_name,
        )


def seed(session: Session, services: Any, ids: dict[str, int]) -> None:
    """Create the demo market merchant, its stalls, the parking operator and lot HK-01."""
    cfg = PaymentsConfig.from_settings(services.settings)
    market = _merchant(session, MARKET, [("vendor1", StaffRole.OWNER)])
    _stalls(session, cfg, market)
    operator = _merchant(session, OPERATOR, [("attendant1", StaffRole.ATTENDANT)])
    if session.scalars(select(ParkingLot).where(ParkingLot.code == HK01["code"])).first() is None:
        tariff = Tariff.from_dict(copy.deepcopy(HK01_TARIFF)).to_dict()
        session.add(ParkingLot(operator_id=operator.id, tariff=tariff, **HK01))
        session.flush()
