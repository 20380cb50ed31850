"""Parking beyond the gate: monthly passes, the enforcement look-up and the operator's daily
remittance report (what is owed to the city treasury).

The enforcement answer is deliberately thin: paid or not, and until when. Never who paid, how,
or with which account (SPEC §7).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import HCM, business_date, day_bounds_utc, utcnow
from core.db import Database
from core.errors import invalid
from core.pagination import Page, paginate
from merchants import tariffs
from merchants.errors import MerchantNotFound, NotStaff, PassAlreadySold
from merchants.lots import load_lot
from merchants.models import (
    ExitMethod,
    Merchant,
    MerchantCategory,
    ParkingLot,
    ParkingPass,
    ParkingSession,
    SessionStatus,
)
from merchants.parking import parking_cash_code
from merchants.plates import normalise_plate
from merchants.service import merchant_ids_of
from payments import ledger
from payments import service as payments

OVERSIGHT_ROLES = frozenset({"admin", "finance"})
REMITTANCE_COLUMNS = (
    "business_date",
    "operator_id",
    "lot_code",
    "entries",
    "exits",
    "inside_now",
    "awaiting_payment",
    "cash_count",
    "cash_amount",
    "vietqr_count",
    "vietqr_amount",
    "wallet_count",
    "wallet_amount",
    "pass_exits",
    "free_exits",
    "passes_sold",
    "passes_amount",
    "cashless_amount",
    "owed_to_treasury",
)


# -- monthly passes -----------------------------------------------------------------------------
def _month_bounds(month: str | None, now: datetime) -> tuple[str, datetime, datetime]:
    today = now.astimezone(HCM).date()
    if month is None:
        month = f"{today:%Y-%m}"
    try:
        first = date.fromisoformat(f"{month}-01")
    except ValueError as exc:
        raise invalid("month", "a month is YYYY-MM") from exc
    current = today.replace(day=1)
    following = (current.replace(day=28) + (date.resolution * 4)).replace(day=1)
    if first not in (current, following):
        raise invalid("month", "passes are sold for this month or the next")
    after = (first.replace(day=28) + date.resolution * 4).replace(day=1)
    return (
        month,
        datetime.combine(first, time(0), tzinfo=HCM).astimezone(UTC),
        datetime.combine(after, time(0), tzinfo=HCM).astimezone(UTC),
    )


def _existing_pass(
    session: Session, lot: ParkingLot, plate: str, month: str, user_id: int
) -> ParkingPass | None:
    found = session.scalars(
        select(ParkingPass).where(
            ParkingPass.lot_id == lot.id, ParkingPass.plate == plate, ParkingPass.month == month
        )
    ).first()
    if found is not None and found.holder_user_id != user_id:
        raise PassAlreadySold(f"{plate} already has a pass for {month} at {lot.code}")
    return found


def _pay_for_pass(session: Session, lot: ParkingLot, row: ParkingPass, now: datetime) -> None:
    payment = payments.spend_from_wallet(
        session,
        user_id=row.holder_user_id,
        amount=row.amount,
        purpose="parking",
        owner_ref=f"parking_pass:{lot.id}:{row.plate}:{row.month}",
        credit_account="parking_revenue",
        external_key=f"parking-pass:{lot.id}:{row.plate}:{row.month}",
        merchant_id=lot.operator_id,
        description=f"Vé tháng {lot.code} {row.plate} {row.month}",
        now=now,
    )
    row.payment_id = payment.id
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:  # another buyer won the race: this payment rolls back
        raise PassAlreadySold(f"{row.plate} already has a pass for {row.month}") from exc


def buy_pass(
    db: Database,
    lot_id: int,
    *,
    plate: str,
    vehicle_class: str,
    user_id: int,
    month: str | None = None,
    now: datetime | None = None,
) -> ParkingPass:
    """Sell a monthly pass for one plate at one lot, paid at once from the buyer's wallet.

    Moves money (wallet → parking revenue, external key per lot, plate and month, so a retry
    never charges twice). The same buyer asking again gets the same pass; another buyer gets
    409. 422 when the wallet is short, the class has no pass price or the month is not this
    one or the next.
    """
    now = now or utcnow()
    month, valid_from, valid_until = _month_bounds(month, now)
    row = ParkingPass(
        plate=normalise_plate(plate),
        month=month,
        valid_from=valid_from,
        valid_until=valid_until,
        holder_user_id=user_id,
        vehicle_class=tariffs.VehicleClass(vehicle_class).value,
        business_date=business_date(now),
        created_at=now,
    )
    with db.transaction() as session:
        lot = load_lot(session, lot_id)
        price = lot.pass_prices.get(vehicle_class)
        if not price:
            raise invalid("vehicle_class", "this lot sells no monthly pass for this class")
        found = _existing_pass(session, lot, row.plate, month, user_id)
        if found is not None:
            return found
        row.lot_id, row.amount = lot.id, int(price)
        _pay_for_pass(session, lot, row, now)
        return row


def my_passes(db: Database, user_id: int, *, limit: int, starting_after: int | None) -> Page:
    stmt = select(ParkingPass).where(ParkingPass.holder_user_id == user_id)
    with db.reader() as session:
        return paginate(session, stmt, ParkingPass.id, limit, starting_after)


# -- enforcement --------------------------------------------------------------------------------
@dataclass(frozen=True)
class EnforcementAnswer:
    plate: str
    paid: bool
    checked_at: datetime
    valid_until: datetime | None = None
    basis: str | None = None  # "session" (inside a lot now) or "monthly_pass"


def _operator_scope(session: Session, user_id: int, roles: frozenset[str]) -> list[int] | None:
    if roles & OVERSIGHT_ROLES:
        return None
    ids = merchant_ids_of(session, user_id, MerchantCategory.PARKING_OPERATOR)
    if not ids:
        raise NotStaff("you staff no parking operator")
    return ids


def enforcement(
    db: Database,
    plate: str,
    *,
    user_id: int,
    roles: frozenset[str],
    now: datetime | None = None,
) -> EnforcementAnswer:
    """Is this plate paid for in the caller's operator's lots (any lot for oversight)?

    Paid when the plate is inside one of those lots (an open session) or holds a pass valid
    now. Read only; reveals nothing about the payer.
    """
    now = now or utcnow()
    plate = normalise_plate(plate)
    with db.reader() as session:
        operators = _operator_scope(session, user_id, roles)
        lots = select(ParkingLot.id)
        if operators is not None:
            lots = lots.where(ParkingLot.operator_id.in_(operators))
        inside = session.scalar(
            select(func.count()).where(
                ParkingSession.plate == plate,
                ParkingSession.status != SessionStatus.CLOSED,
                ParkingSession.lot_id.in_(lots),
            )
        )
        if inside:
            return EnforcementAnswer(plate, True, now, basis="session")
        until = session.scalar(
            select(func.max(ParkingPass.valid_until)).where(
                ParkingPass.plate == plate,
                ParkingPass.valid_from <= now,
                ParkingPass.valid_until > now,
                ParkingPass.lot_id.in_(lots),
            )
        )
    if until is not None:
        return EnforcementAnswer(plate, True, now, until, "monthly_pass")
    return EnforcementAnswer(plate, False, now)


# -- the remittance report ----------------------------------------------------------------------
@dataclass
class MethodTotal:
    count: int = 0
    amount: int = 0


@dataclass
class LotRemittance:
    lot_id: int | None
    lot_code: str
    lot_name: str
    entries: int = 0
    exits: int = 0
    inside_now: int = 0
    awaiting_payment: int = 0
    by_method: dict[str, MethodTotal] = field(
        default_factory=lambda: {m.value: MethodTotal() for m in ExitMethod}
    )
    passes_sold: int = 0
    passes_amount: int = 0

    @property
    def cash_amount(self) -> int:
        return self.by_method[ExitMethod.CASH].amount

    @property
    def cashless_amount(self) -> int:
        methods = (ExitMethod.VIETQR, ExitMethod.WALLET)
        return sum(self.by_method[m].amount for m in methods) + self.passes_amount

    @property
    def owed_to_treasury(self) -> int:
        """Cash the operator took that day: cashless money is already in the city's account."""
        return self.cash_amount

    def add(self, other: LotRemittance) -> None:
        for name in (
            "entries",
            "exits",
            "inside_now",
            "awaiting_payment",
            "passes_sold",
            "passes_amount",
        ):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for method, total in other.by_method.items():
            self.by_method[method].count += total.count
            self.by_method[method].amount += total.amount


@dataclass
class Remittance:
    operator_id: int
    operator_name: str
    business_date: date
    lots: list[LotRemittance]
    total: LotRemittance
    cash_outstanding: int  # all cash the operator holds for the treasury, not yet remitted
    currency: str = "VND"


def _inside(session: Session, report: LotRemittance, lot_id: int) -> None:
    rows = session.execute(
        select(ParkingSession.status, func.count())
        .where(ParkingSession.lot_id == lot_id, ParkingSession.status != SessionStatus.CLOSED)
        .group_by(ParkingSession.status)
    )
    for status, count in rows:
        report.inside_now += int(count)
        if status == SessionStatus.AWAITING_PAYMENT:
            report.awaiting_payment = int(count)


def _exits(session: Session, report: LotRemittance, lot_id: int, day: date) -> None:
    amount = func.coalesce(func.sum(ParkingSession.amount), 0)
    rows = session.execute(
        select(ParkingSession.method, func.count(), amount)
        .where(
            ParkingSession.lot_id == lot_id,
            ParkingSession.status == SessionStatus.CLOSED,
            ParkingSession.business_date == day,
        )
        .group_by(ParkingSession.method)
    )
    for method, count, total in rows:
        report.by_method[str(method)] = MethodTotal(int(count), int(total or 0))
        report.exits += int(count)


def _lot_remittance(session: Session, lot: ParkingLot, day: date) -> LotRemittance:
    start, end = day_bounds_utc(day)
    report = LotRemittance(lot.id, lot.code, lot.name)
    report.entries = int(
        session.scalar(
            select(func.count()).where(
                ParkingSession.lot_id == lot.id,
                ParkingSession.entered_at >= start,
                ParkingSession.entered_at < end,
            )
        )
        or 0
    )
    _inside(session, report, lot.id)
    _exits(session, report, lot.id, day)
    sold = session.execute(
        select(func.count(), func.coalesce(func.sum(ParkingPass.amount), 0)).where(
            ParkingPass.lot_id == lot.id, ParkingPass.business_date == day
        )
    ).one()
    report.passes_sold, report.passes_amount = int(sold[0]), int(sold[1])
    return report


def remittance(db: Database, operator_id: int, day: date) -> Remittance:
    """One operator's day per lot: vehicles in and out, fees by method, passes sold, and what
    it owes the city treasury (the cash it took). Read only."""
    with db.reader() as session:
        operator = session.get(Merchant, operator_id)
        if operator is None:
            raise MerchantNotFound("no such operator")
        lots = session.scalars(
            select(ParkingLot)
            .where(ParkingLot.operator_id == operator_id)
            .order_by(ParkingLot.code)
        ).all()
        reports = [_lot_remittance(session, lot, day) for lot in lots]
        outstanding = ledger.balance(session, parking_cash_code(operator_id))
    total = LotRemittance(None, "TOTAL", operator.legal_name)
    for report in reports:
        total.add(report)
    return Remittance(operator.id, operator.legal_name, day, reports, total, outstanding)


def remittance_csv(report: Remittance) -> str:
    """The report as CSV: one line per lot and a TOTAL line (UTF-8, RFC 4180, CRLF)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(REMITTANCE_COLUMNS)
    for lot in [*report.lots, report.total]:
        writer.writerow(_csv_row(report, lot))
    return buffer.getvalue()


def _csv_row(report: Remittance, lot: LotRemittance) -> list[Any]:
    m = lot.by_method
    return [
        report.business_date.isoformat(),
        report.operator_id,
        lot.lot_code,
        lot.entries,
        lot.exits,
        lot.inside_now,
        lot.awaiting_payment,
        m["cash"].count,
        m["cash"].amount,
        m["vietqr"].count,
        m["vietqr"].amount,
        m["wallet"].count,
        m["wallet"].amount,
        m["pass"].count,
        m["free"].count,
        lot.passes_sold,
        lot.passes_amount,
        lot.cashless_amount,
        lot.owed_to_treasury,
    ]
