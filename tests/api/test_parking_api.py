"""Parking through the HTTP API on the embedded default: lots and occupancy, HK-01's tariff,
entries by plate, exits paid in cash, by VietQR through the bank webhook and from the wallet,
monthly passes, enforcement without payer data, audited plate corrections and the operator's
remittance report."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.clock import business_date, utcnow
from merchants.tariffs import HK01_TARIFF
from tests.api.test_foundation import assert_problem
from tests.api.test_payments_api import balances, credit_body, fund, idem, signed_post, user_id


def hk01(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    lots = client.get("/api/v1/parking/lots", headers=headers).json["data"]
    return next(lot for lot in lots if lot["code"] == "HK-01")


def enter(
    client: FlaskClient,
    headers: dict[str, str],
    lot_id: int,
    plate: str,
    vehicle_class: str,
    key: str,
    ago: timedelta | None = None,
    device: str = "gate-a",
) -> Any:
    body: dict[str, Any] = {"plate": plate, "vehicle_class": vehicle_class, "device_id": device}
    if ago is not None:
        body["entered_at"] = (utcnow() - ago).isoformat()
    return client.post(
        f"/api/v1/parking/lots/{lot_id}/sessions", json=body, headers=idem(headers, key)
    )


def leave(
    client: FlaskClient,
    headers: dict[str, str],
    session_id: int,
    method: str,
    key: str,
    **extra: Any,
) -> Any:
    return client.post(
        f"/api/v1/parking/sessions/{session_id}/exit",
        json={"method": method, "device_id": "gate-b", **extra},
        headers=idem(headers, key),
    )


def test_lots_list_and_occupancy(client: FlaskClient, auth: Any) -> None:
    headers = auth("attendant1")
    listed = client.get("/api/v1/parking/lots", headers=headers).json
    assert listed["has_more"] is False and "next_cursor" in listed
    lot = hk01(client, headers)
    assert lot["name"] == "Hoàn Kiếm"
    assert set(lot["capacity"]) == {"bicycle", "motorbike", "car_small", "car_large"}
    detail = client.get(f"/api/v1/parking/lots/{lot['id']}", headers=headers).json
    assert detail["tariff"] == HK01_TARIFF
    assert detail["free"] == detail["capacity"] and sum(detail["occupied"].values()) == 0
    enter(client, headers, lot["id"], "29A-100.01", "motorbike", "occ-1")
    detail = client.get(f"/api/v1/parking/lots/{lot['id']}", headers=headers).json
    assert detail["occupied"] == {"motorbike": 1}
    assert detail["free"]["motorbike"] == detail["capacity"]["motorbike"] - 1
    assert_problem(client.get("/api/v1/parking/lots/999999", headers=headers), 404)


HCM = "+07:00"


@pytest.mark.parametrize(
    ("vehicle_class", "entered", "exited", "amount"),
    [
        ("motorbike", "2026-11-20T17:30:00", "2026-11-20T18:30:00", 13_000),
        ("car_small", "2026-11-20T08:00:00", "2026-11-20T10:01:00", 85_000),
        ("car_small", "2026-11-20T08:00:00", "2026-11-20T18:00:00", 300_000),
        ("car_small", "2026-11-20T08:00:00", "2026-11-21T14:00:00", 510_000),
        ("car_small", "2026-11-20T08:00:00", "2026-11-20T08:10:00", 0),
        ("car_small", "2026-11-20T08:00:00", "2026-11-20T08:10:01", 25_000),
        ("bicycle", "2026-11-20T05:00:00", "2026-11-20T07:00:00", 5_000),
        ("car_large", "2026-11-20T08:00:00", "2026-11-20T20:00:00", 400_000),
    ],
)
def test_quotes_follow_the_hk01_tariff(
    client: FlaskClient, auth: Any, vehicle_class: str, entered: str, exited: str, amount: int
) -> None:
    headers = auth("commuter1")
    lot = hk01(client, headers)
    quote = client.post(
        f"/api/v1/parking/lots/{lot['id']}/quotes",
        json={
            "vehicle_class": vehicle_class,
            "entered_at": entered + HCM,
            "exited_at": exited + HCM,
        },
        headers=headers,
    )
    assert quote.status_code == 200, quote.json
    assert quote.json["amount"] == amount
    assert sum(line["amount"] for line in quote.json["breakdown"]) == amount


def test_bad_quotes_are_422(client: FlaskClient, auth: Any) -> None:
    headers = auth("commuter1")
    lot_id = hk01(client, headers)["id"]
    url = f"/api/v1/parking/lots/{lot_id}/quotes"
    good = {
        "vehicle_class": "car_small",
        "entered_at": "2026-11-20T08:00:00+07:00",
        "exited_at": "2026-11-20T09:00:00+07:00",
    }
    assert_problem(client.post(url, json={**good, "vehicle_class": "tank"}, headers=headers), 422)
    assert_problem(
        client.post(url, json={**good, "entered_at": "2026-11-20T08:00:00"}, headers=headers), 422
    )
    backwards = {**good, "exited_at": "2026-11-20T07:00:00+07:00"}
    assert_problem(client.post(url, json=backwards, headers=headers), 422, "exit_before_entry")


def test_one_vehicle_per_plate_inside_a_lot(client: FlaskClient, auth: Any) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    first = enter(client, headers, lot_id, "29a-123.45", "motorbike", "e-1")
    assert first.status_code == 201, first.json
    assert first.json["plate"] == "29A12345" and first.json["status"] == "open"
    assert first.json["opened_by"] == "attendant1" and first.json["opened_device"] == "gate-a"
    replay = enter(client, headers, lot_id, "29a-123.45", "motorbike", "e-1")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json["id"] == first.json["id"]
    again = enter(client, headers, lot_id, "29A 123 45", "motorbike", "e-2")
    assert_problem(again, 409, "plate_already_inside")
    assert_problem(enter(client, headers, lot_id, "--", "motorbike", "e-3"), 422)
    no_key = client.post(
        f"/api/v1/parking/lots/{lot_id}/sessions",
        json={"plate": "30A11111", "vehicle_class": "car_small"},
        headers=headers,
    )
    assert_problem(no_key, 400)
    assert_problem(enter(client, auth("vendor1"), lot_id, "30A11111", "car_small", "e-4"), 403)
    assert_problem(
        enter(client, headers, lot_id, "30A11111", "car_small", "e-5", ago=timedelta(hours=30)), 422
    )


def test_cash_exit_is_priced_recorded_and_idempotent(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    headers = auth("attendant1")
    lot = hk01(client, headers)
    session = enter(
        client,
        headers,
        lot["id"],
        "30E-999.99",
        "car_small",
        "c-1",
        ago=timedelta(hours=2, minutes=1),
    ).json
    out = leave(client, headers, session["id"], "cash", "x-1")
    assert out.status_code == 200, out.json
    assert out.json["amount"] == 85_000 and out.json["payment"] is None
    assert [line["hours"] for line in out.json["breakdown"]] == [3]
    closed = out.json["session"]
    assert closed["status"] == "closed" and closed["method"] == "cash"
    assert closed["cash_collected_by"] == "Trần Văn Cường"
    assert closed["closed_by"] == "attendant1" and closed["closed_device"] == "gate-b"
    ledger_before = balances(app)
    assert ledger_before[f"merchant:{lot['operator_id']}:parking_cash"] == 85_000
    assert ledger_before["parking_revenue"] == -85_000
    twice = leave(client, headers, session["id"], "vietqr", "x-2")
    assert twice.status_code == 200 and twice.json["amount"] == 85_000
    assert twice.json["session"]["method"] == "cash" and twice.json["payment"] is None
    assert balances(app) == ledger_before
    detail = client.get(f"/api/v1/parking/lots/{lot['id']}", headers=headers).json
    assert detail["occupied"].get("car_small", 0) == 0


def test_vietqr_exit_closes_when_the_bank_pays(client: FlaskClient, auth: Any, app: Flask) -> None:
    headers = auth("attendant1")
    lot = hk01(client, headers)
    session = enter(
        client, headers, lot["id"], "29B-222.22", "car_small", "q-1", ago=timedelta(minutes=50)
    ).json
    out = leave(client, headers, session["id"], "vietqr", "qx-1").json
    payment = out["payment"]
    assert out["amount"] == 25_000 and payment["status"] == "pending"
    assert payment["purpose"] == "parking" and payment["amount"] == 25_000
    assert payment["qr"]["payload"] and payment["events_url"]
    assert out["session"]["status"] == "awaiting_payment"
    again = leave(client, headers, session["id"], "vietqr", "qx-2").json
    assert again["payment"]["id"] == payment["id"]
    assert_problem(
        leave(client, headers, session["id"], "cash", "qx-3"), 409, "exit_payment_pending"
    )
    credit = credit_body(app, 25_000, payment["reference"], "FT-PK-1")
    assert signed_post(client, app, credit).json["status"] == "matched"
    trail = client.get(f"/api/v1/parking/sessions/{session['id']}", headers=headers).json
    assert trail["status"] == "closed" and trail["method"] == "vietqr"
    assert trail["payment_id"] == payment["id"]
    assert balances(app)["parking_revenue"] == -25_000
    # The repeated exit returned the same payment and changed nothing, so it left no record.
    assert [a["action"] for a in trail["audit"]] == [
        "parking.entry",
        "parking.exit",
        "parking.paid",
    ]


def test_a_cancelled_qr_can_be_replaced_by_cash(client: FlaskClient, auth: Any) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    session = enter(
        client, headers, lot_id, "29C-333.33", "car_small", "k-1", ago=timedelta(minutes=30)
    ).json
    pending = leave(client, headers, session["id"], "vietqr", "kx-1").json["payment"]
    cancelled = client.post(f"/api/v1/payments/{pending['id']}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    out = leave(client, headers, session["id"], "cash", "kx-2").json
    assert out["session"]["method"] == "cash" and out["amount"] == 25_000
    assert out["payment"] is None and out["session"]["payment_id"] is None


def test_grace_exit_is_free(client: FlaskClient, auth: Any) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    session = enter(client, headers, lot_id, "29D-444.44", "motorbike", "g-1").json
    out = leave(client, headers, session["id"], "vietqr", "gx-1").json
    assert out["amount"] == 0 and out["payment"] is None
    assert out["session"]["method"] == "free" and out["breakdown"][0]["kind"] == "grace"


def test_a_driver_pays_the_own_exit_from_the_wallet(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    driver = auth("commuter1")
    fund(app, user_id(client, driver), 200_000, "fund-parking")
    session = enter(
        client,
        headers,
        lot_id,
        "29E-555.55",
        "car_small",
        "w-1",
        ago=timedelta(hours=3, minutes=30),
    ).json
    assert_problem(leave(client, driver, session["id"], "cash", "wx-0"), 403)
    out = leave(client, driver, session["id"], "wallet", "wx-1").json
    assert out["amount"] == 25_000 * 2 + 35_000 * 2
    assert out["payment"]["status"] == "succeeded" and out["payment"]["method"] == "wallet"
    assert out["session"]["status"] == "closed" and out["session"]["method"] == "wallet"
    assert client.get("/api/v1/wallets/me", headers=driver).json["balance"] == 80_000
    twice = leave(client, driver, session["id"], "wallet", "wx-2").json
    assert twice["payment"]["id"] == out["payment"]["id"]
    assert client.get("/api/v1/wallets/me", headers=driver).json["balance"] == 80_000
    assert balances(app)["parking_revenue"] == -120_000


def test_attendant_wallet_exit_is_addressed_to_the_driver(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    driver = auth("commuter1")
    fund(app, user_id(client, driver), 50_000, "fund-parking-2")
    session = enter(
        client, headers, lot_id, "29F-666.66", "car_small", "a-1", ago=timedelta(minutes=40)
    ).json
    pending = leave(client, headers, session["id"], "wallet", "ax-1", payer="commuter1").json
    payment_id = pending["payment"]["id"]
    assert client.get(f"/api/v1/payments/{payment_id}", headers=driver).status_code == 200
    paid = client.post(
        f"/api/v1/payments/{payment_id}/wallet-payment", headers=idem(driver, "ax-pay")
    )
    assert paid.status_code == 200 and paid.json["status"] == "succeeded"
    trail = client.get(f"/api/v1/parking/sessions/{session['id']}", headers=headers).json
    assert trail["status"] == "closed" and trail["method"] == "wallet"
    assert client.get("/api/v1/wallets/me", headers=driver).json["balance"] == 25_000


def test_enforcement_and_monthly_passes_reveal_no_payer_data(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    driver = auth("commuter1")
    fund(app, user_id(client, driver), 500_000, "fund-pass")
    enter(client, headers, lot_id, "29G-777.77", "motorbike", "en-1")
    inside = client.get("/api/v1/parking/enforcement/29G-777.77", headers=headers)
    assert inside.status_code == 200
    assert inside.json == {**inside.json, "plate": "29G77777", "paid": True, "basis": "session"}
    assert set(inside.json) == {"plate", "paid", "valid_until", "basis", "checked_at"}
    text = inside.get_data(as_text=True)
    for secret in ("commuter1", "attendant1", "Nguyễn", "payment", "user", "wallet"):
        assert secret not in text
    unknown = client.get("/api/v1/parking/enforcement/88X99999", headers=headers).json
    assert unknown["paid"] is False and unknown["valid_until"] is None
    bought = client.post(
        f"/api/v1/parking/lots/{lot_id}/passes",
        json={"plate": "29H-888.88", "vehicle_class": "motorbike"},
        headers=idem(driver, "pass-1"),
    )
    assert bought.status_code == 201, bought.json
    assert bought.json["amount"] == 140_000 and bought.json["plate"] == "29H88888"
    assert client.get("/api/v1/wallets/me", headers=driver).json["balance"] == 360_000
    by_pass = client.get("/api/v1/parking/enforcement/29H88888", headers=headers).json
    assert by_pass["paid"] is True and by_pass["basis"] == "monthly_pass"
    assert by_pass["valid_until"] == bought.json["valid_until"]
    assert "commuter1" not in str(by_pass)
    mine = client.get("/api/v1/parking/passes/me", headers=driver).json["data"]
    assert [p["id"] for p in mine] == [bought.json["id"]]
    session = enter(
        client, headers, lot_id, "29H-888.88", "motorbike", "en-2", ago=timedelta(hours=5)
    ).json
    out = leave(client, headers, session["id"], "cash", "en-x").json
    assert out["amount"] == 0 and out["session"]["method"] == "pass"
    assert_problem(client.get("/api/v1/parking/enforcement/29H88888", headers=auth("vendor1")), 403)
    other = client.post(
        f"/api/v1/parking/lots/{lot_id}/passes",
        json={"plate": "29H88888", "vehicle_class": "car_large", "month": "1999-01"},
        headers=idem(driver, "pass-2"),
    )
    assert_problem(other, 422)


def test_plate_correction_is_audited_with_devices(client: FlaskClient, auth: Any) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    session = enter(client, headers, lot_id, "29K-111.11", "motorbike", "p-1").json
    fixed = client.post(
        f"/api/v1/parking/sessions/{session['id']}/plate",
        json={"plate": "29K-111.17", "reason": "gõ nhầm số cuối", "device_id": "gate-c"},
        headers=headers,
    )
    assert fixed.status_code == 200 and fixed.json["plate"] == "29K11117"
    leave(client, headers, session["id"], "cash", "p-x")
    trail = client.get(f"/api/v1/parking/sessions/{session['id']}", headers=headers).json
    actions = [(a["action"], a["actor"]) for a in trail["audit"]]
    assert actions == [
        ("parking.entry", "attendant1"),
        ("parking.plate_correct", "attendant1"),
        ("parking.exit", "attendant1"),
    ]
    correction = trail["audit"][1]
    assert correction["before"] == {"plate": "29K11111"}
    assert correction["after"] == {"plate": "29K11117", "device": "gate-c"}
    assert correction["note"] == "gõ nhầm số cuối"
    assert trail["audit"][0]["after"]["device"] == "gate-a"
    assert trail["opened_device"] == "gate-a" and trail["closed_device"] == "gate-b"
    assert_problem(
        client.get(f"/api/v1/parking/sessions/{session['id']}", headers=auth("vendor1")), 404
    )


def test_remittance_report_shows_what_the_treasury_is_owed(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    headers = auth("attendant1")
    lot = hk01(client, headers)
    cash = enter(
        client,
        headers,
        lot["id"],
        "30A-000.01",
        "car_small",
        "rm-1",
        ago=timedelta(hours=2, minutes=1),
    ).json
    leave(client, headers, cash["id"], "cash", "rm-x1")
    qr = enter(
        client, headers, lot["id"], "30A-000.02", "car_small", "rm-2", ago=timedelta(minutes=50)
    ).json
    payment = leave(client, headers, qr["id"], "vietqr", "rm-x2").json["payment"]
    signed_post(client, app, credit_body(app, 25_000, payment["reference"], "FT-RM-1"))
    enter(client, headers, lot["id"], "30A-000.03", "motorbike", "rm-3")
    today = business_date(utcnow()).isoformat()
    url = f"/api/v1/parking/operators/{lot['operator_id']}/remittance"
    report = client.get(url, query_string={"business_date": today}, headers=headers).json
    (hk,) = [row for row in report["lots"] if row["lot_code"] == "HK-01"]
    assert hk["entries"] == 3 and hk["exits"] == 2 and hk["inside_now"] == 1
    assert hk["by_method"]["cash"] == {"count": 1, "amount": 85_000}
    assert hk["by_method"]["vietqr"] == {"count": 1, "amount": 25_000}
    assert hk["cashless_amount"] == 25_000 and hk["owed_to_treasury"] == 85_000
    assert report["total"]["owed_to_treasury"] == 85_000 and report["cash_outstanding"] == 85_000
    as_csv = client.get(
        url, query_string={"business_date": today, "format": "csv"}, headers=auth("finance1")
    )
    assert as_csv.mimetype == "text/csv"
    rows = {r["lot_code"]: r for r in csv.DictReader(io.StringIO(as_csv.get_data(as_text=True)))}
    assert rows["HK-01"]["cash_amount"] == "85000" and rows["TOTAL"]["owed_to_treasury"] == "85000"
    assert_problem(
        client.get(url, query_string={"business_date": today}, headers=auth("vendor1")), 404
    )


def test_admin_creates_lots_with_validated_tariffs(client: FlaskClient, auth: Any) -> None:
    admin = auth("admin1")
    operator_id = hk01(client, admin)["operator_id"]
    body = {
        "code": "HK-02",
        "name": "Hàng Bài",
        "operator_id": operator_id,
        "capacity": {"car_large": 1, "motorbike": 0},
        "tariff": HK01_TARIFF,
    }
    created = client.post("/api/v1/parking/lots", json=body, headers=admin)
    assert created.status_code == 201, created.json
    lot_id = created.json["id"]
    assert_problem(client.post("/api/v1/parking/lots", json=body, headers=admin), 409)
    broken = {**body, "code": "HK-03", "tariff": {**HK01_TARIFF, "grace_minute": 10}}
    assert_problem(client.post("/api/v1/parking/lots", json=broken, headers=admin), 422)
    market = client.get("/api/v1/merchants/me", headers=auth("vendor1")).json["id"]
    wrong = {**body, "code": "HK-04", "operator_id": market}
    assert_problem(client.post("/api/v1/parking/lots", json=wrong, headers=admin), 422)
    assert enter(client, admin, lot_id, "29L-000.01", "car_large", "l-1").status_code == 201
    assert_problem(enter(client, admin, lot_id, "29L-000.02", "car_large", "l-2"), 409, "lot_full")
    assert_problem(enter(client, admin, lot_id, "29L-000.03", "motorbike", "l-3"), 422)
    patched = client.patch(
        f"/api/v1/parking/lots/{lot_id}", json={"capacity": {"car_large": 2}}, headers=admin
    )
    assert patched.json["free"] == {"car_large": 1}
    assert enter(client, admin, lot_id, "29L-000.02", "car_large", "l-4").status_code == 201


def test_entry_times_are_utc_and_business_dated(client: FlaskClient, auth: Any) -> None:
    headers = auth("attendant1")
    lot_id = hk01(client, headers)["id"]
    session = enter(client, headers, lot_id, "29M-000.01", "bicycle", "t-1").json
    entered = datetime.fromisoformat(session["entered_at"])
    assert entered.utcoffset() == timedelta(0) and abs(entered - datetime.now(UTC)).seconds < 60
    out = leave(client, headers, session["id"], "cash", "t-x").json
    assert out["session"]["business_date"] == business_date(utcnow()).isoformat()
