"""Parking on the real PostgreSQL: concurrent entries of one plate leave exactly one vehicle
inside (the partial unique index decides), a doubled exit takes the fee once, and the
enforcement look-up reveals no payer data."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text

from core.clock import utcnow
from merchants import parking
from merchants.errors import LotFull, PlateAlreadyInside
from merchants.models import ParkingLot, ParkingSession
from payments import ledger
from payments.models import Payment
from payments.service import PaymentsConfig, credit_wallet
from tests.conftest import login

pytestmark = pytest.mark.integration
ATTENDANT = parking.Actor(0, "attendant1", frozenset({"attendant"}), "gate-pg")


def db_of(app: Any) -> Any:
    return app.extensions["cashless"].db


def hk01(app: Any) -> ParkingLot:
    with db_of(app).reader() as session:
        return session.scalars(select(ParkingLot).where(ParkingLot.code == "HK-01")).one()


def race(count: int, work: Any) -> list[Any]:
    """Run `work(i)` in `count` threads released together; return results or exceptions."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(index: int) -> None:
        barrier.wait()
        try:
            results[index] = work(index)
        except Exception as exc:  # the losers' answers are what we check
            results[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    return results


def test_the_partial_unique_index_exists(pg_app: Any) -> None:
    with db_of(pg_app).reader() as session:
        definition = session.execute(
            text("SELECT indexdef FROM pg_indexes WHERE indexname = :n"),
            {"n": "uq_parking_sessions_lot_plate_inside"},
        ).scalar()
    assert definition is not None and "UNIQUE" in definition and "closed" in definition


def test_concurrent_entries_of_one_plate_leave_one_session(pg_committed: Any) -> None:
    lot = hk01(pg_committed)
    db = db_of(pg_committed)
    plates = ["29A-123.45", "29A12345", "29a 123 45", "29A-12345"] * 3

    results = race(
        len(plates),
        lambda i: parking.open_session(
            db, lot.id, plate=plates[i], vehicle_class="motorbike", actor=ATTENDANT
        ),
    )
    winners = [r for r in results if isinstance(r, ParkingSession)]
    losers = [r for r in results if isinstance(r, PlateAlreadyInside)]
    assert len(winners) == 1 and len(losers) == len(plates) - 1, results
    with db.reader() as session:
        inside = session.scalar(
            select(func.count()).where(
                ParkingSession.plate == "29A12345", ParkingSession.status != "closed"
            )
        )
    assert inside == 1


def test_concurrent_entries_never_overfill_a_class(pg_committed: Any) -> None:
    lot = hk01(pg_committed)
    db = db_of(pg_committed)
    spaces = int(lot.capacity["car_large"])
    plates = [f"30G-{100 + i}.00" for i in range(2 * spaces)]

    results = race(
        len(plates),
        lambda i: parking.open_session(
            db, lot.id, plate=plates[i], vehicle_class="car_large", actor=ATTENDANT
        ),
    )
    winners = [r for r in results if isinstance(r, ParkingSession)]
    full = [r for r in results if isinstance(r, LotFull)]
    assert len(winners) == spaces and len(full) == len(plates) - spaces, results
    with db.reader() as session:
        inside = session.scalar(
            select(func.count()).where(
                ParkingSession.lot_id == lot.id,
                ParkingSession.vehicle_class == "car_large",
                ParkingSession.status != "closed",
            )
        )
    assert inside == spaces


def test_a_doubled_exit_takes_the_fee_once(pg_committed: Any) -> None:
    lot = hk01(pg_committed)
    db = db_of(pg_committed)
    cfg = PaymentsConfig.from_settings(pg_committed.extensions["cashless"].settings)
    cash = parking.open_session(
        db,
        lot.id,
        plate="30E99999",
        vehicle_class="car_small",
        actor=ATTENDANT,
        entered_at=utcnow() - timedelta(hours=2, minutes=1),
    )
    results = race(
        6, lambda i: parking.exit_session(db, cfg, cash.id, method="cash", actor=ATTENDANT)
    )
    assert all(isinstance(r, parking.ExitResult) for r in results), results
    assert {r.amount for r in results} == {85_000}
    with db.reader() as session:
        assert ledger.balance(session, parking.parking_cash_code(lot.operator_id)) == 85_000
    qr = parking.open_session(
        db,
        lot.id,
        plate="30E88888",
        vehicle_class="car_small",
        actor=ATTENDANT,
        entered_at=utcnow() - timedelta(minutes=30),
    )
    results = race(
        6, lambda i: parking.exit_session(db, cfg, qr.id, method="vietqr", actor=ATTENDANT)
    )
    assert {r.payment.id for r in results} == {results[0].payment.id}
    with db.reader() as session:
        payments = session.scalar(
            select(func.count()).where(Payment.owner_ref == f"parking_session:{qr.id}")
        )
    assert payments == 1


def test_enforcement_reveals_no_payer_data(pg_app: Any) -> None:
    client = pg_app.test_client()
    attendant = login(client, "attendant1")
    driver = login(client, "commuter1")
    driver_id = client.get("/api/v1/auth/me", headers=driver).json["id"]
    with db_of(pg_app).transaction() as session:
        credit_wallet(session, user_id=driver_id, amount=300_000, external_key="pg-fund-pass")
    lot_id = hk01(pg_app).id
    bought = client.post(
        f"/api/v1/parking/lots/{lot_id}/passes",
        json={"plate": "29H-888.88", "vehicle_class": "motorbike"},
        headers={**driver, "Idempotency-Key": "pg-pass-1"},
    )
    assert bought.status_code == 201, bought.json
    answer = client.get("/api/v1/parking/enforcement/29H-888.88", headers=attendant)
    assert answer.status_code == 200
    assert answer.json["paid"] is True and answer.json["basis"] == "monthly_pass"
    assert set(answer.json) == {"plate", "paid", "valid_until", "basis", "checked_at"}
    body = answer.get_data(as_text=True)
    for leak in ("commuter1", "Nguyễn", "wallet", "payment", "holder", "user"):
        assert leak not in body
    nothing = client.get("/api/v1/parking/enforcement/99Z99999", headers=attendant).json
    assert nothing["paid"] is False
