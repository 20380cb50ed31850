"""Merchants through the HTTP API on the embedded default: onboarding, staff, stalls and their
static codes, dynamic charges paid through the signed bank webhook, cancel, the live stream,
and the day's sales per stall."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from core import audit
from payments import vietqr
from payments.references import stall_reference
from tests.api.test_foundation import assert_problem
from tests.api.test_payments_api import balances, credit_body, idem, signed_post, svc
from tests.conftest import login, wait_for

NEW_MERCHANT = {
    "legal_name": "Hộ kinh doanh Nguyễn Thị Hoa",
    "short_name": "Chợ Đồng Xuân",
    "category": "market_vendor",
    "settlement_bank_bin": "970415",
    "settlement_account": "101010123456",
    "staff": [{"username": "vendor1", "role": "cashier"}],
}


def me(client: FlaskClient, headers: dict[str, str]) -> dict[str, Any]:
    response = client.get("/api/v1/merchants/me", headers=headers)
    assert response.status_code == 200, response.json
    return dict(response.json)


def charge(
    client: FlaskClient, headers: dict[str, str], merchant_id: int, key: str, **body: Any
) -> Any:
    return client.post(
        f"/api/v1/merchants/{merchant_id}/charges", json=body, headers=idem(headers, key)
    )


def test_demo_vendor_staffs_cho_sau_with_two_stalls(client: FlaskClient, auth: Any) -> None:
    merchant = me(client, auth("vendor1"))
    assert merchant["short_name"] == "Chợ Sấu" and merchant["category"] == "market_vendor"
    assert merchant["discount_rate_bp"] == 0
    assert len(merchant["stalls"]) >= 2
    assert set(merchant["stalls"][0]) >= {"id", "code", "name"}
    assert_problem(client.get("/api/v1/merchants/me", headers=auth("commuter1")), 404)


def test_admin_onboards_a_merchant_with_a_checked_bank_account(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    admin = auth("admin1")
    created = client.post("/api/v1/merchants", json=NEW_MERCHANT, headers=admin)
    assert created.status_code == 201, created.json
    body = created.json
    assert body["settlement_bank_name"] == "VietinBank" and body["discount_rate_bp"] == 0
    assert [s["username"] for s in body["staff"]] == ["vendor1"]
    with svc(app).db.reader() as session:
        trail = audit.history(session, "merchant", body["id"])
    assert [r.action for r in trail] == ["merchant.onboard", "merchant.staff_add"]
    bad_bin = client.post(
        "/api/v1/merchants", json={**NEW_MERCHANT, "settlement_bank_bin": "123456"}, headers=admin
    )
    assert assert_problem(bad_bin, 422)["errors"][0]["field"] == "settlement_bank_bin"
    bad_account = {**NEW_MERCHANT, "settlement_account": "12-34"}
    assert_problem(client.post("/api/v1/merchants", json=bad_account, headers=admin), 422)
    long_name = {**NEW_MERCHANT, "short_name": "Chợ đầu mối nông sản Hà Nội"}
    assert_problem(client.post("/api/v1/merchants", json=long_name, headers=admin), 422)
    assert_problem(
        client.post("/api/v1/merchants", json=NEW_MERCHANT, headers=auth("vendor1")), 403
    )


def test_admin_manages_staff_stalls_and_discount(client: FlaskClient, auth: Any) -> None:
    admin = auth("admin1")
    merchant = client.post(
        "/api/v1/merchants", json={**NEW_MERCHANT, "staff": []}, headers=admin
    ).json
    mid = merchant["id"]
    vendor = auth("vendor1")
    assert_problem(client.get(f"/api/v1/merchants/{mid}", headers=vendor), 404)
    added = client.post(
        f"/api/v1/merchants/{mid}/staff",
        json={"username": "vendor1", "role": "owner"},
        headers=admin,
    )
    assert added.status_code == 201 and added.json["role"] == "owner"
    again = client.post(
        f"/api/v1/merchants/{mid}/staff",
        json={"username": "vendor1", "role": "owner"},
        headers=admin,
    )
    assert_problem(again, 409)
    assert client.get(f"/api/v1/merchants/{mid}", headers=vendor).status_code == 200
    stall = client.post(
        f"/api/v1/merchants/{mid}/stalls",
        json={"market": "Chợ Đồng Xuân", "code": "DX-7", "name": "Sạp vải"},
        headers=admin,
    )
    assert stall.status_code == 201
    duplicate = client.post(
        f"/api/v1/merchants/{mid}/stalls",
        json={"market": "Chợ Đồng Xuân", "code": "DX-7", "name": "Sạp khác"},
        headers=admin,
    )
    assert_problem(duplicate, 409)
    patched = client.patch(
        f"/api/v1/merchants/{mid}", json={"discount_rate_bp": 120}, headers=admin
    )
    assert patched.json["discount_rate_bp"] == 120
    assert (
        client.delete(
            f"/api/v1/merchants/{mid}/staff/{added.json['user_id']}", headers=admin
        ).status_code
        == 204
    )
    assert_problem(client.get(f"/api/v1/merchants/{mid}", headers=vendor), 404)
    listed = client.get(
        "/api/v1/merchants", query_string={"category": "market_vendor"}, headers=auth("finance1")
    ).json
    assert {"data", "has_more", "next_cursor"} <= set(listed)
    assert mid in [m["id"] for m in listed["data"]]


def test_stall_static_code_carries_label_and_stall_reference(
    client: FlaskClient, auth: Any
) -> None:
    vendor = auth("vendor1")
    merchant = me(client, vendor)
    stall = merchant["stalls"][0]
    qr = client.get(f"/api/v1/merchants/{merchant['id']}/stalls/{stall['id']}/qr", headers=vendor)
    assert qr.status_code == 200
    decoded = vietqr.decode(qr.json["payload"])
    assert decoded.amount is None and not decoded.is_dynamic
    assert decoded.terminal_label == stall["code"]
    assert decoded.purpose == stall_reference(stall["id"]) == qr.json["reference"]
    assert decoded.merchant_name == "Cho Sau"
    png = client.get(qr.json["png_url"])
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    svg = client.get(qr.json["svg_url"])
    assert svg.status_code == 200 and b"<svg" in svg.data
    poster = client.get(qr.json["poster_url"])
    text = poster.get_data(as_text=True)
    assert poster.mimetype == "image/svg+xml" and stall["name"] in text
    assert "Quét mã để thanh toán" in text
    assert client.get(qr.json["png_url"].split("?")[0]).status_code == 401
    other = client.get(
        f"/api/v1/merchants/{merchant['id']}/stalls/{stall['id']}/qr", headers=auth("attendant1")
    )
    assert_problem(other, 404)


def test_charge_is_a_pending_dynamic_vietqr(client: FlaskClient, auth: Any) -> None:
    vendor = auth("vendor1")
    merchant = me(client, vendor)
    stall = merchant["stalls"][1]
    response = charge(
        client,
        vendor,
        merchant["id"],
        "sale-1",
        amount=15000,
        description="2 kg cam",
        stall_id=stall["id"],
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "pending" and body["amount"] == 15000 and body["currency"] == "VND"
    assert body["reference"].startswith("HC") and body["expires_at"]
    assert body["stall_id"] == stall["id"] and body["description"] == "2 kg cam"
    decoded = vietqr.decode(body["qr"]["payload"])
    assert decoded.amount == 15000 and decoded.purpose == body["reference"]
    assert "cam" not in body["qr"]["payload"]  # the description is never encoded in tag 62
    assert client.get(body["qr"]["png_url"]).data.startswith(b"\x89PNG")
    replay = charge(
        client,
        vendor,
        merchant["id"],
        "sale-1",
        amount=15000,
        description="2 kg cam",
        stall_id=stall["id"],
    )
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json["id"] == body["id"]
    assert_problem(charge(client, vendor, merchant["id"], "sale-1", amount=16000), 422)
    seen = client.get(f"/api/v1/payments/{body['id']}", headers=vendor)
    assert seen.status_code == 200 and seen.json["status"] == "pending"


def test_charge_validation_and_access(client: FlaskClient, auth: Any) -> None:
    vendor = auth("vendor1")
    merchant = me(client, vendor)
    mid = merchant["id"]
    for amount in (15000.5, 0, -1, "15000", 10**13, True):
        assert_problem(charge(client, vendor, mid, f"bad-{amount}", amount=amount), 422)
    no_key = client.post(f"/api/v1/merchants/{mid}/charges", json={"amount": 1}, headers=vendor)
    assert_problem(no_key, 400)
    assert_problem(charge(client, vendor, mid, "stall-x", amount=1000, stall_id=99999), 404)
    assert_problem(charge(client, auth("attendant1"), mid, "not-mine", amount=1000), 403)
    operator = client.get("/api/v1/parking/lots", headers=vendor).json["data"][0]["operator_id"]
    assert_problem(charge(client, vendor, operator, "other", amount=1000), 404)


def test_vendor_cancels_a_pending_charge(client: FlaskClient, auth: Any) -> None:
    vendor = auth("vendor1")
    mid = me(client, vendor)["id"]
    body = charge(client, vendor, mid, "to-cancel", amount=20000).json
    cancelled = client.post(f"/api/v1/payments/{body['id']}/cancel", headers=vendor)
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    stranger = client.post(f"/api/v1/payments/{body['id']}/cancel", headers=auth("attendant1"))
    assert_problem(stranger, 404)


def test_paid_charge_and_static_transfer_land_in_the_day_sales(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    vendor = auth("vendor1")
    merchant = me(client, vendor)
    first, second = merchant["stalls"][0], merchant["stalls"][1]
    body = charge(client, vendor, merchant["id"], "paid-1", amount=15000, stall_id=first["id"]).json
    matched = signed_post(client, app, credit_body(app, 15000, body["reference"], "FT-M-1"))
    assert matched.json["status"] == "matched"
    static = credit_body(app, 8000, f"chuyen tien {stall_reference(second['id'])}", "FT-M-2")
    assert signed_post(client, app, static).json["status"] == "matched"
    charge(client, vendor, merchant["id"], "still-pending", amount=5000)
    sales = client.get(f"/api/v1/merchants/{merchant['id']}/sales", headers=vendor).json
    assert sales["count"] == 2 and sales["amount"] == 23000 and sales["pending_count"] == 1
    per_stall = {s["stall_id"]: s for s in sales["stalls"]}
    assert per_stall[first["id"]]["amount"] == 15000
    assert per_stall[second["id"]]["static_amount"] == 8000
    assert {s["kind"] for s in sales["sales"]} == {"static", "dynamic"}
    assert balances(app)[f"merchant:{merchant['id']}:payable"] == -23000
    finance = client.get(f"/api/v1/merchants/{merchant['id']}/sales", headers=auth("finance1"))
    assert finance.status_code == 200
    assert_problem(
        client.get(f"/api/v1/merchants/{merchant['id']}/sales", headers=auth("commuter1")), 404
    )


def test_events_url_streams_paid_within_a_second(live_app: Flask) -> None:
    """The vendor page's EventSource URL (signed, no header) learns of success at once."""
    import urllib.request

    client = live_app.test_client()
    vendor = login(client, "vendor1")
    mid = me(client, vendor)["id"]
    body = charge(client, vendor, mid, "sse-1", amount=15000).json
    url = svc(live_app).settings.public_url + body["events_url"]
    events: list[tuple[float, dict[str, Any]]] = []

    def listen() -> None:
        with urllib.request.urlopen(url, timeout=20) as stream:
            for raw in stream:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    events.append((time.monotonic(), json.loads(line[5:])))
                    if events[-1][1]["status"] == "succeeded":
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    wait_for(lambda: events)
    assert events[0][1]["status"] == "pending"
    sent = time.monotonic()
    credit = credit_body(live_app, 15000, body["reference"], "FT-SSE-V")
    assert signed_post(client, live_app, credit).json["status"] == "matched"
    listener.join(10)
    assert events[-1][1]["status"] == "succeeded"
    assert events[-1][0] - sent < 1.0
