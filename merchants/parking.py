"""Parking sessions: entry by plate, the priced exit paid by wallet, VietQR or cash, plate
correction and the per-session audit trail (lots and their tariffs are in merchants/lots.py).

Parking fees are city revenue: cashless exits credit `parking_revenue` directly (the money is
in the city's collection account); a cash exit debits `merchant:{operator}:parking_cash`, what
the operator holds for the treasury until it remits, so the remittance is visible in the ledger.
Functions taking a `db` own their transaction; `on_payment_succeeded` runs in payments'.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import business_date, utcnow
from core.db import Database
from core.errors import Forbidden, invalid
from core.pagination import Page, paginate
from core.users import User
from merchants import tariffs
from merchants.errors import (
    ExitPending,
    LotFull,
    PlateAlreadyInside,
    SessionNotFound,
)
from merchants.lots import load_lot, occupied_by_class
from merchants.models import (
    ExitMethod,
    ParkingLot,
    ParkingPass,
    ParkingSession,
    SessionStatus,
)
from merchants.plates import normalise_plate
from payments import ledger
from payments import service as payments
from payments.ledger import Leg
from payments.models import AccountType, Payment

ENTRY_BACKDATE_LIMIT = timedelta(hours=24)  # a device that was offline may record entries late
STAFF_ROLES = frozenset({"attendant", "admin"})


@dataclass(frozen=True)
class Actor:
    """Who acts, as the audit trail records it: user, roles and the device used."""

    user_id: int
    username: str
    roles: frozenset[str]
    device: str = "web"


@dataclass
class ExitResult:
    session: ParkingSession
    payment: Payment | None
    amount: int
    breakdown: list[Any] = field(default_factory=list)
    currency: str = "VND"


@dataclass
class SessionTrail:
    session: ParkingSession
    lot_code: str
    audit: list[audit.AuditRecord]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def _audit(
    session: Session, actor: str, action: str, entity: str, entity_id: int, **changes: Any
) -> None:
    """One audit row in the caller's transaction (before/after/note as keywords)."""
    audit.record(
        session, actor=actor, action=action, entity_type=entity, entity_id=entity_id, **changes
    )


def parking_cash_code(operator_id: int) -> str:
    return f"merchant:{operator_id}:parking_cash"


def session_operator(db: Database, session_id: int) -> int:
    with db.reader() as session:
        row = session.get(ParkingSession, session_id)
        if row is None:
            raise SessionNotFound("no such parking session")
        return load_lot(session, row.lot_id).operator_id


# -- entry --------------------------------------------------------------------------------------
def _entry_time(entered_at: datetime | None, now: datetime) -> datetime:
    if entered_at is None:
        return now
    if entered_at > now or now - entered_at > ENTRY_BACKDATE_LIMIT:
        raise invalid("entered_at", "an entry can be recorded up to 24 hours late, never ahead")
    return entered_at


def _check_space(session: Session, lot: ParkingLot, vehicle_class: str) -> None:
    capacity = int(lot.capacity.get(vehicle_class, 0))
    if capacity <= 0:
        raise invalid("vehicle_class", "this lot takes no vehicles of this class", "not_accepted")
    if occupied_by_class(session, lot.id).get(vehicle_class, 0) >= capacity:
        raise LotFull(f"no free space for {vehicle_class}")


def _insert_session(session: Session, row: ParkingSession, lot_code: str) -> None:
    try:
        with session.begin_nested():
            session.add(row)
            session.flush()
    except IntegrityError as exc:  # the partial unique index: this plate is inside already
        raise PlateAlreadyInside(f"{row.plate} is already inside {lot_code}") from exc


def _audit_entry(session: Session, row: ParkingSession, lot_code: str, actor: Actor) -> None:
    after = {
        "plate": row.plate,
        "vehicle_class": row.vehicle_class,
        "lot": lot_code,
        "device": actor.device,
        "entered_at": row.entered_at.isoformat(),
    }
    _audit(session, actor.username, "parking.entry", "parking_session", row.id, after=after)


def open_session(
    db: Database,
    lot_id: int,
    *,
    plate: str,
    vehicle_class: str,
    actor: Actor,
    entered_at: datetime | None = None,
    now: datetime | None = None,
) -> ParkingSession:
    """Record a vehicle entering a lot; audited with the attendant and device.

    One vehicle per plate inside a lot: a partial unique index decides between concurrent
    entries (409 `plate_already_inside`). 409 `lot_full` when the class has no free space;
    entries into one lot take its row lock, so concurrent ones never overfill a class.
    """
    now = now or utcnow()
    row = ParkingSession(
        plate=normalise_plate(plate),
        vehicle_class=tariffs.VehicleClass(vehicle_class).value,
        status=SessionStatus.OPEN,
        entered_at=_entry_time(entered_at, now),
        opened_by=actor.username,
        opened_device=actor.device,
        created_at=now,
    )
    with db.transaction() as session:
        # The lot's row lock makes "count the vehicles inside, then add one" atomic: without
        # it, concurrent entries at the last free space all see it free.
        lot = load_lot(session, lot_id, lock=True)
        _check_space(session, lot, vehicle_class)
        row.lot_id = lot.id
        _insert_session(session, row, lot.code)
        _audit_entry(session, row, lot.code, actor)
        return row


# -- exit ---------------------------------------------------------------------------------------
def _lock_session(session: Session, session_id: int) -> ParkingSession:
    row = session.get(ParkingSession, session_id, with_for_update=True)
    if row is None:
        raise SessionNotFound("no such parking session")
    return row


def _valid_pass(session: Session, lot_id: int, plate: str, at: datetime) -> ParkingPass | None:
    return session.scalars(
        select(ParkingPass).where(
            ParkingPass.lot_id == lot_id,
            ParkingPass.plate == plate,
            ParkingPass.valid_from <= at,
            ParkingPass.valid_until > at,
        )
    ).first()


def _price_exit(
    session: Session, row: ParkingSession, lot: ParkingLot, actor: Actor, now: datetime
) -> None:
    """Fix the exit time and price (the price quoted at the gate stays if payment is retried)."""
    pass_ = _valid_pass(session, lot.id, row.plate, now)
    if pass_ is not None:
        row.amount, row.breakdown, row.pass_id = (
            0,
            [{"kind": "monthly_pass", "amount": 0, "pass_id": pass_.id}],
            pass_.id,
        )
    else:
        priced = tariffs.price_stay(
            tariffs.Tariff.from_dict(lot.tariff), row.vehicle_class, row.entered_at, now
        )
        row.amount, row.breakdown = priced.amount, [dict(line) for line in priced.breakdown]
    row.exited_at, row.closed_by, row.closed_device = now, actor.username, actor.device


def _close(row: ParkingSession, method: str, now: datetime, payment_id: int | None = None) -> None:
    row.status, row.method, row.closed_at = SessionStatus.CLOSED, method, now
    row.business_date = business_date(now)
    if payment_id is not None:
        row.payment_id = payment_id


def exit_session(
    db: Database,
    cfg: payments.PaymentsConfig,
    session_id: int,
    *,
    method: str,
    actor: Actor,
    payer: str | None = None,
    now: datetime | None = None,
) -> ExitResult:
    """Price a vehicle's exit by the lot's tariff and take the fee.

    Idempotent: exiting a closed session returns its result; exiting one that waits for its
    QR payment returns that payment (409 `exit_payment_pending` for another method: cancel the
    payment first). Cash is posted at once (Dr operator's parking cash, Cr parking revenue) with
    the attendant's name; VietQR (and wallet, asked by staff) is a pending payment the driver
    pays; a commuter's own wallet exit is paid at once. Locks the session; audited.
    """
    now = now or utcnow()
    if method != ExitMethod.WALLET and not actor.roles & STAFF_ROLES:
        raise Forbidden("drivers pay their own exit from the wallet", code="forbidden_method")
    with db.transaction() as session:
        row = _lock_session(session, session_id)
        if row.status == SessionStatus.CLOSED:
            return _result(session, row)
        lot = load_lot(session, row.lot_id)
        if row.status == SessionStatus.AWAITING_PAYMENT and row.payment_id is not None:
            if _payment_settles(session, row, method, now):
                return _result(session, row)
        else:
            _price_exit(session, row, lot, actor, now)
        _take_fee(session, cfg, row, lot, method, actor, payer, now)
        _audit_exit(session, row, actor)
        return _result(session, row)


def _audit_exit(session: Session, row: ParkingSession, actor: Actor) -> None:
    _audit(
        session,
        actor.username,
        "parking.exit",
        "parking_session",
        row.id,
        after={
            "method": row.method,
            "amount": row.amount,
            "status": row.status,
            "device": actor.device,
            "payment_id": row.payment_id,
        },
    )


def _payment_settles(session: Session, row: ParkingSession, method: str, now: datetime) -> bool:
    """True when the exit's current payment answers this request (pending or already paid)."""
    assert row.payment_id is not None
    current = payments.lock_payment(session, row.payment_id)
    if current.status == "pending":
        if method in (ExitMethod.VIETQR, ExitMethod.WALLET):
            return True
        raise ExitPending("the QR payment is still pending; cancel it first")
    if current.status in ("succeeded", "partially_refunded", "refunded"):
        _close(row, current.method, now, current.id)
        return True
    return False  # expired, cancelled or failed: take the fee again, same price


def _take_fee(
    session: Session,
    cfg: payments.PaymentsConfig,
    row: ParkingSession,
    lot: ParkingLot,
    method: str,
    actor: Actor,
    payer: str | None,
    now: datetime,
) -> None:
    amount = int(row.amount or 0)
    if amount == 0:
        _close(row, ExitMethod.PASS if row.pass_id else ExitMethod.FREE, now)
    elif method == ExitMethod.CASH:
        _cash_exit(session, row, lot, actor, now)
    elif method == ExitMethod.WALLET and "commuter" in actor.roles:
        row.status, row.method = SessionStatus.AWAITING_PAYMENT, ExitMethod.WALLET
        payment = payments.spend_from_wallet(
            session,
            user_id=actor.user_id,
            amount=amount,
            purpose="parking",
            owner_ref=f"parking_session:{row.id}",
            credit_account="parking_revenue",
            external_key=f"parking:{row.id}:wallet",
            merchant_id=lot.operator_id,
            description=f"Phí trông giữ xe {lot.code} {row.plate}",
            now=now,
        )
        _close(row, ExitMethod.WALLET, now, payment.id)
    else:
        _pending_exit(session, cfg, row, lot, method, payer, now)


def _cash_exit(
    session: Session, row: ParkingSession, lot: ParkingLot, actor: Actor, now: datetime
) -> None:
    user = session.get(User, actor.user_id)
    row.cash_collected_by = user.display_name if user else actor.username
    row.payment_id = None  # a QR abandoned before the cash is no longer this exit's payment
    _close(row, ExitMethod.CASH, now)
    code = parking_cash_code(lot.operator_id)
    ledger.ensure_account(
        session,
        code,
        AccountType.ASSET,
        f"Parking cash held by operator {lot.operator_id} for the treasury",
        owner_type="merchant",
        owner_id=lot.operator_id,
    )
    amount = int(row.amount or 0)
    ledger.post(
        session,
        external_key=f"parking:{row.id}:cash",
        kind="parking_cash",
        business_date=business_date(now),
        memo=f"{lot.code} {row.plate} cash",
        legs=[Leg(code, amount), Leg("parking_revenue", -amount)],
    )


def _payer_id(session: Session, payer: str | None) -> int | None:
    if not payer:
        return None
    user = session.scalars(select(User).where(User.username == payer.lower())).first()
    if user is None:
        raise invalid("payer", "no such user")
    return user.id


def _pending_exit(
    session: Session,
    cfg: payments.PaymentsConfig,
    row: ParkingSession,
    lot: ParkingLot,
    method: str,
    payer: str | None,
    now: datetime,
) -> None:
    row.exit_attempts += 1
    payment = payments.create_vietqr_payment(
        session,
        cfg,
        amount=int(row.amount or 0),
        purpose="parking",
        owner_ref=f"parking_session:{row.id}",
        credit_account="parking_revenue",
        payer_user_id=_payer_id(session, payer),
        merchant_id=lot.operator_id,
        description=f"Phí trông giữ xe {lot.code} {row.plate}",
        external_key=f"parking:{row.id}:exit:{row.exit_attempts}",
        now=now,
    )
    row.status, row.method, row.payment_id = SessionStatus.AWAITING_PAYMENT, method, payment.id


def _result(session: Session, row: ParkingSession) -> ExitResult:
    payment = session.get(Payment, row.payment_id) if row.payment_id is not None else None
    session.flush()
    return ExitResult(row, payment, int(row.amount or 0), list(row.breakdown or []))


def on_payment_succeeded(session: Session, payload: dict[str, Any]) -> None:
    """Payments' handler: a parking exit's payment succeeded, so the session closes (runs in
    the payment's transaction; safe to run twice)."""
    owner = str(payload.get("owner_ref") or "")
    if payload.get("purpose") != "parking" or not owner.startswith("parking_session:"):
        return
    row = session.get(ParkingSession, int(owner.split(":", 1)[1]), with_for_update=True)
    if row is None or row.status == SessionStatus.CLOSED:
        return
    if row.payment_id not in (None, payload["payment_id"]):
        return  # an older, abandoned QR paid late: finance sees it in reconciliation
    _close(row, str(payload.get("method") or ExitMethod.VIETQR), utcnow(), payload["payment_id"])
    session.flush()
    _audit(
        session,
        "payments",
        "parking.paid",
        "parking_session",
        row.id,
        after={
            "payment_id": payload["payment_id"],
            "method": row.method,
            "amount": payload.get("amount"),
        },
    )


# -- corrections and the trail ----------------------------------------------------------------
def correct_plate(
    db: Database, session_id: int, *, plate: str, reason: str, actor: Actor
) -> ParkingSession:
    """Fix a mistyped plate; audited with the before, after, reason and device. 409 when the
    corrected plate is already inside the lot."""
    plate = normalise_plate(plate)
    with db.transaction() as session:
        row = _lock_session(session, session_id)
        before = row.plate
        row.plate = plate
        try:
            with session.begin_nested():
                session.flush()
        except IntegrityError as exc:
            raise PlateAlreadyInside(f"{plate} is already inside this lot") from exc
        _audit(
            session,
            actor.username,
            "parking.plate_correct",
            "parking_session",
            row.id,
            before={"plate": before},
            after={"plate": plate, "device": actor.device},
            note=reason,
        )
        return row


def session_trail(db: Database, session_id: int) -> SessionTrail:
    """A session with every audited change: who opened, corrected and closed it, and where."""
    with db.reader() as session:
        row = session.get(ParkingSession, session_id)
        if row is None:
            raise SessionNotFound("no such parking session")
        lot = load_lot(session, row.lot_id)
        return SessionTrail(row, lot.code, audit.history(session, "parking_session", row.id))


def list_sessions(
    db: Database,
    lot_id: int,
    *,
    status: str | None,
    plate: str | None,
    limit: int,
    starting_after: int | None,
) -> Page:
    """Sessions of a lot by id; `status=inside` means open or awaiting payment."""
    stmt = select(ParkingSession).where(ParkingSession.lot_id == lot_id)
    if status == "inside":
        stmt = stmt.where(ParkingSession.status != SessionStatus.CLOSED)
    elif status:
        stmt = stmt.where(ParkingSession.status == status)
    if plate:
        stmt = stmt.where(ParkingSession.plate == normalise_plate(plate))
    with db.reader() as session:
        load_lot(session, lot_id)
        return paginate(session, stmt, ParkingSession.id, limit, starting_after)
