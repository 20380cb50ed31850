"""Parking lots: their capacity by vehicle class, tariff (merchants/tariffs.py documents) and
monthly pass prices, occupancy, and quotes. Functions taking a `db` own their transaction;
helpers taking a `session` flush, never commit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.db import Database
from core.errors import invalid
from core.pagination import Page, paginate
from merchants import tariffs
from merchants.errors import AlreadyExists, LotNotFound, MerchantNotFound
from merchants.models import Merchant, MerchantCategory, ParkingLot, ParkingSession, SessionStatus

CLASSES = tuple(c.value for c in tariffs.VehicleClass)


@dataclass
class LotView:
    lot: ParkingLot
    occupied: dict[str, int]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.lot, name)

    @property
    def free(self) -> dict[str, int]:
        return {c: max(int(n) - self.occupied.get(c, 0), 0) for c, n in self.lot.capacity.items()}


def _audit(
    session: Session, actor: str, action: str, entity: str, entity_id: int, **changes: Any
) -> None:
    """One audit row in the caller's transaction (before/after/note as keywords)."""
    audit.record(
        session, actor=actor, action=action, entity_type=entity, entity_id=entity_id, **changes
    )


def _check_capacity(capacity: dict[str, int]) -> dict[str, int]:
    for name, spaces in capacity.items():
        if name not in CLASSES:
            raise invalid(f"capacity.{name}", "unknown vehicle class")
        if isinstance(spaces, bool) or not isinstance(spaces, int) or not 0 <= spaces <= 100_000:
            raise invalid(f"capacity.{name}", "a whole number of spaces, 0 to 100000")
    return dict(capacity)


def _check_pass_prices(prices: dict[str, int]) -> dict[str, int]:
    for name, price in prices.items():
        if name not in CLASSES:
            raise invalid(f"pass_prices.{name}", "unknown vehicle class")
        if isinstance(price, bool) or not isinstance(price, int) or not 0 < price < 10**9:
            raise invalid(f"pass_prices.{name}", "a positive integer of VND")
    return dict(prices)


def load_lot(session: Session, lot_id: int, *, lock: bool = False) -> ParkingLot:
    lot = session.get(ParkingLot, lot_id, with_for_update=lock)
    if lot is None:
        raise LotNotFound("no such parking lot")
    return lot


def _operator(session: Session, operator_id: int) -> Merchant:
    operator = session.get(Merchant, operator_id)
    if operator is None:
        raise MerchantNotFound("no such operator")
    if operator.category != MerchantCategory.PARKING_OPERATOR:
        raise invalid("operator_id", "the merchant is not a parking operator")
    return operator


def create_lot(
    db: Database,
    *,
    code: str,
    name: str,
    operator_id: int,
    capacity: dict[str, int],
    tariff: dict[str, Any],
    pass_prices: dict[str, int] | None = None,
    address: str = "",
    actor: str,
) -> ParkingLot:
    """A lot run by a parking operator, its tariff validated and stored canonically; audited.
    409 for a taken code; 422 for a bad tariff, capacity or an operator of another kind."""
    document = tariffs.Tariff.from_dict(tariff).to_dict()
    lot = ParkingLot(
        code=code.upper(),
        name=name.strip(),
        address=address.strip(),
        operator_id=operator_id,
        capacity=_check_capacity(capacity),
        tariff=document,
        pass_prices=_check_pass_prices(pass_prices or {}),
    )
    with db.transaction() as session:
        _operator(session, operator_id)
        try:
            with session.begin_nested():
                session.add(lot)
                session.flush()
        except IntegrityError as exc:
            raise AlreadyExists(f"a lot {code!r} exists already") from exc
        after = {"code": lot.code, "tariff": document}
        _audit(session, actor, "parking.lot_create", "parking_lot", lot.id, after=after)
        return lot


def update_lot(db: Database, lot_id: int, changes: dict[str, Any], actor: str) -> LotView:
    """Change a lot's name, capacity, tariff, pass prices or active flag; audited with the
    before and after (a tariff change applies to exits priced from now on)."""
    if "tariff" in changes:
        changes["tariff"] = tariffs.Tariff.from_dict(changes["tariff"]).to_dict()
    if "capacity" in changes:
        changes["capacity"] = _check_capacity(changes["capacity"])
    if "pass_prices" in changes:
        changes["pass_prices"] = _check_pass_prices(changes["pass_prices"])
    with db.transaction() as session:
        lot = load_lot(session, lot_id, lock=True)
        before = {name: getattr(lot, name) for name in changes}
        for name, value in changes.items():
            setattr(lot, name, value)
        lot.updated_at = utcnow()
        session.flush()
        _audit(
            session,
            actor,
            "parking.lot_update",
            "parking_lot",
            lot.id,
            before=before,
            after=dict(changes),
        )
        return LotView(lot, occupied_by_class(session, lot.id))


def list_lots(db: Database, *, limit: int, starting_after: int | None) -> Page:
    with db.reader() as session:
        return paginate(session, select(ParkingLot), ParkingLot.id, limit, starting_after)


def occupied_by_class(session: Session, lot_id: int) -> dict[str, int]:
    rows = session.execute(
        select(ParkingSession.vehicle_class, func.count())
        .where(ParkingSession.lot_id == lot_id, ParkingSession.status != SessionStatus.CLOSED)
        .group_by(ParkingSession.vehicle_class)
    )
    return {name: int(count) for name, count in rows}


def lots_for(db: Database, user_id: int, roles: frozenset[str]) -> list[LotView]:
    """The active lots a user works at (every lot for admins), with their occupancy."""
    from merchants.service import merchant_ids_of

    with db.reader() as session:
        stmt = select(ParkingLot).where(ParkingLot.active.is_(True)).order_by(ParkingLot.code)
        if "admin" not in roles:
            stmt = stmt.where(ParkingLot.operator_id.in_(merchant_ids_of(session, user_id)))
        return [LotView(lot, occupied_by_class(session, lot.id)) for lot in session.scalars(stmt)]


def lot_occupancy(db: Database, lot_id: int) -> LotView:
    """A lot with its capacity, vehicles inside and free spaces per vehicle class."""
    with db.reader() as session:
        lot = load_lot(session, lot_id)
        return LotView(lot, occupied_by_class(session, lot.id))


def lot_operator(db: Database, lot_id: int) -> int:
    with db.reader() as session:
        return load_lot(session, lot_id).operator_id


def quote(
    db: Database, lot_id: int, vehicle_class: str, entered_at: datetime, exited_at: datetime
) -> tariffs.Quote:
    """The price of a stay under the lot's tariff (pure pricing; nothing is written)."""
    with db.reader() as session:
        document = load_lot(session, lot_id).tariff
    return tariffs.price_stay(
        tariffs.Tariff.from_dict(document), vehicle_class, entered_at, exited_at
    )
