"""Transit ticketing through the HTTP API on the embedded default (SQLite).

Purchase with the wallet (idempotent), credentials and their byte contract, fallback tokens,
re-binding, online validation, the signed bundle with delta sync, offline tap upload with
revenue protection, admin endpoints, roles and problem+json errors.
"""

from __future__ import annotations

import base64
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from core import users
from core.audit import AuditRecord
from tests.api.test_foundation import assert_problem
from tests.conftest import login
from ticketing.bundle import verify_bundle
from ticketing.credential import (
    CREDENTIAL_LENGTH,
    compress_public_key,
    holder_ref,
    make_dynamic_qr,
    parse_credential,
    parse_qr,
    qr_version_at_level_m,
    step_at,
)

BUS_SINGLE = 101  # BUS-SR-U15, valid on route 09 among others
BUS_MONTHLY_ALL = 210
METRO_DAY = 310
METRO_MONTHLY = 320


# -- helpers (also used by the PostgreSQL tests) ------------------------------------------------
class Phone:
    """A phone: a P-256 device key, as the page keeps in IndexedDB."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public = compress_public_key(self.key.public_key())
        self.public_b64 = base64.b64encode(self.public).decode()

    def qr(self, credential_b64: str, at: int | None = None) -> str:
        step = step_at(int(time.time()) if at is None else at)
        return make_dynamic_qr(base64.b64decode(credential_b64), self.key, step)


def svc(app: Flask) -> Any:
    return app.extensions["cashless"]


def user_id(app: Flask, username: str) -> int:
    with svc(app).db.reader() as session:
        return session.scalars(select(users.User).where(users.User.username == username)).one().id


def fund(app: Flask, username: str, amount: int = 500_000) -> None:
    from payments import service as payments

    with svc(app).db.transaction() as session:
        payments.credit_wallet(
            session,
            user_id=user_id(app, username),
            amount=amount,
            external_key=f"test-fund:{uuid.uuid4()}",
        )


def gate_headers(app: Flask) -> dict[str, str]:
    from cashless.demo import _demo_api_key

    prefix, secret = _demo_api_key(svc(app).settings.secret_key)
    return {"Authorization": f"Bearer hck_{prefix}_{secret}"}


def register(client: FlaskClient, headers: dict[str, str], phone: Phone) -> int:
    response = client.post(
        "/api/v1/devices", json={"public_key": phone.public_b64}, headers=headers
    )
    assert response.status_code in (200, 201), response.json
    return int(response.json["id"])


def buy(
    client: FlaskClient,
    headers: dict[str, str],
    device_id: int | None,
    product: int = BUS_SINGLE,
    key: str | None = None,
    **extra: Any,
) -> Any:
    body = {"fare_product_id": product, "device_id": device_id, "payment_method": "wallet", **extra}
    return client.post(
        "/api/v1/tickets",
        json=body,
        headers={**headers, "Idempotency-Key": key or uuid.uuid4().hex},
    )


def validate(
    client: FlaskClient,
    headers: dict[str, str],
    qr_text: str,
    seq: int,
    validator: str = "bus-09-a",
    mode: str = "bus",
) -> Any:
    response = client.post(
        "/api/v1/validations",
        json={"qr_text": qr_text, "validator_id": validator, "validator_seq": seq, "mode": mode},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    return response.json


def iso(unix: int) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat()


def bought_earlier(
    app: Flask, username: str, device_id: int, product: int, seconds_ago: int
) -> dict[str, Any]:
    """A ticket bought `seconds_ago` (for offline taps scanned in the past).

    Gates only trust a credential from its issue and an issuer key from its activation, so
    both are moved back in time: the key by a day, the purchase by `seconds_ago`.
    """
    from core.keys import SigningKey
    from ticketing import service
    from ticketing.issuing import Issuer

    secret = svc(app).settings.holder_ref_secret.encode()
    Issuer(svc(app).keyring, secret)  # makes the first ticket key if there is none yet
    with svc(app).db.transaction() as session:
        for key in session.scalars(select(SigningKey).where(SigningKey.purpose == "ticket")):
            key.activated_at = key.activated_at - timedelta(days=1)
    svc(app).keyring.invalidate()
    view = service.purchase_ticket(
        svc(app).db,
        Issuer(svc(app).keyring, secret),
        user_id=user_id(app, username),
        fare_product_id=product,
        device_id=device_id,
        now=datetime.now(UTC) - timedelta(seconds=seconds_ago),
    )
    return {"id": view.ticket.id, "credential": view.credential}


@pytest.fixture
def commuter(app: Flask, client: FlaskClient, auth: Any) -> dict[str, Any]:
    """commuter1 with money in the wallet and a registered phone."""
    fund(app, "commuter1")
    headers = auth("commuter1")
    phone = Phone()
    return {"headers": headers, "phone": phone, "device": register(client, headers, phone)}


# -- the catalogue ------------------------------------------------------------------------------
def test_fare_products_are_listed_and_paginated(client: FlaskClient, auth: Any) -> None:
    headers = auth("commuter1")
    assert_problem(client.get("/api/v1/fare-products"), 401)
    first = client.get("/api/v1/fare-products", query_string={"limit": 3}, headers=headers)
    assert first.status_code == 200
    body = first.json
    assert body["has_more"] is True and len(body["data"]) == 3 and "server_time" in body
    rest = client.get(
        "/api/v1/fare-products",
        query_string={"limit": 200, "starting_after": body["next_cursor"]},
        headers=headers,
    ).json
    products = body["data"] + rest["data"]
    assert rest["has_more"] is False and rest["next_cursor"] is None
    by_code = {p["code"]: p for p in products}
    assert by_code["BUS-SR-U15"]["price"] == 8_000 and by_code["BUS-SR-40P"]["price"] == 20_000
    assert by_code["BUS-M-ALL"]["price"] == 280_000
    assert by_code["BUS-M-ALL"]["concession_prices"] == {"priority": 140_000, "free": 0}
    assert by_code["BUS-M-09"]["price"] == 140_000 and by_code["BUS-M-09"]["routes"] == ["09"]
    assert {"single_ride", "day_pass", "monthly_pass"} == {p["kind"] for p in products}
    assert {"bus", "metro"} == {p["mode"] for p in products}
    assert all(isinstance(p["price"], int) and p["currency"] == "VND" for p in products)
    metro = client.get(
        "/api/v1/fare-products", query_string={"mode": "metro", "limit": 50}, headers=headers
    ).json
    assert {p["mode"] for p in metro["data"]} == {"metro"}
    boat = client.get("/api/v1/fare-products", query_string={"mode": "boat"}, headers=headers)
    assert_problem(boat, 422)
    missing = client.get("/api/v1/fare-products/999", headers=headers)
    assert_problem(missing, 404, "fare_product_not_found")


# -- devices ------------------------------------------------------------------------------------
def test_device_registration_validates_the_point(client: FlaskClient, auth: Any) -> None:
    headers = auth("commuter1")
    phone = Phone()
    created = client.post("/api/v1/devices", json={"public_key": phone.public_b64}, headers=headers)
    assert created.status_code == 201 and created.json["public_key"] == phone.public_b64
    again = client.post("/api/v1/devices", json={"public_key": phone.public_b64}, headers=headers)
    assert again.status_code == 200 and again.json["id"] == created.json["id"]
    off_curve = base64.b64encode(b"\x02" + b"\xff" * 32).decode()  # x ≥ p: not a point
    bad = client.post("/api/v1/devices", json={"public_key": off_curve}, headers=headers)
    assert_problem(bad, 422, "invalid_public_key")
    not_b64 = client.post("/api/v1/devices", json={"public_key": "!" * 44}, headers=headers)
    assert_problem(not_b64, 422, "invalid_public_key")
    assert_problem(client.post("/api/v1/devices", json={"public_key": phone.public_b64}), 401)
    listed = client.get("/api/v1/devices", headers=headers).json["data"]
    assert [d["id"] for d in listed] == [created.json["id"]]


# -- buying -------------------------------------------------------------------------------------
def test_purchase_issues_a_contract_credential_and_replays(
    app: Flask, client: FlaskClient, commuter: dict[str, Any]
) -> None:
    headers = commuter["headers"]
    response = buy(client, headers, commuter["device"], key="buy-once")
    assert response.status_code == 201, response.json
    ticket = response.json
    assert ticket["status"] == "active" and ticket["fare_product_id"] == BUS_SINGLE
    assert ticket["price"] == 8_000 and ticket["payment_id"] is not None
    raw = base64.b64decode(ticket["credential"])
    assert len(raw) == CREDENTIAL_LENGTH
    fields = parse_credential(raw).fields
    valid_until = int(datetime.fromisoformat(ticket["valid_until"]).timestamp())
    assert fields.ticket_id == ticket["id"] and fields.fare_product == BUS_SINGLE
    assert fields.device_public_key == commuter["phone"].public
    assert fields.not_after <= valid_until and fields.not_after - fields.not_before <= 72 * 3600
    secret = svc(app).settings.holder_ref_secret.encode()
    assert fields.holder_ref == holder_ref(secret, user_id(app, "commuter1"))
    qr = commuter["phone"].qr(ticket["credential"])
    assert qr_version_at_level_m(qr) <= 10
    replay = buy(client, headers, commuter["device"], key="buy-once")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json == ticket
    assert client.get("/api/v1/wallets/me", headers=headers).json["balance"] == 492_000
    changed = buy(client, headers, commuter["device"], key="buy-once", product=102)
    assert_problem(changed, 422, "idempotency_key_reused")
    mine = client.get("/api/v1/tickets", headers=headers).json
    assert [t["id"] for t in mine["data"]] == [ticket["id"]] and "credential" not in mine["data"][0]


def test_purchase_needs_an_idempotency_key(client: FlaskClient, commuter: dict[str, Any]) -> None:
    body = {
        "fare_product_id": BUS_SINGLE,
        "device_id": commuter["device"],
        "payment_method": "wallet",
    }
    response = client.post("/api/v1/tickets", json=body, headers=commuter["headers"])
    assert_problem(response, 400, "idempotency_key_missing")


def test_insufficient_funds_keeps_nothing(client: FlaskClient, auth: Any) -> None:
    headers = auth("commuter1")
    device = register(client, headers, Phone())
    response = buy(client, headers, device, product=BUS_MONTHLY_ALL)
    assert_problem(response, 422, "insufficient_funds")
    assert client.get("/api/v1/tickets", headers=headers).json["data"] == []


def test_purchase_errors_are_problems(
    app: Flask, client: FlaskClient, auth: Any, commuter: dict[str, Any]
) -> None:
    headers, device = commuter["headers"], commuter["device"]
    assert_problem(buy(client, headers, device, product=999), 404, "fare_product_not_found")
    assert_problem(buy(client, headers, 424242), 404, "device_not_found")
    wrong_date = buy(client, headers, device, valid_on="2026-01-01")
    body = assert_problem(wrong_date, 422, "not_applicable")
    assert body["errors"][0]["field"] == "valid_on"
    float_id = client.post(
        "/api/v1/tickets",
        json={"fare_product_id": 101.0, "device_id": device, "payment_method": "wallet"},
        headers={**headers, "Idempotency-Key": "float-id"},
    )
    assert_problem(float_id, 422, "validation_failed")
    bad_method = buy(client, headers, device, payment_method="cash")
    assert_problem(bad_method, 422, "validation_failed")
    assert_problem(buy(client, gate_headers(app), device), 403, "forbidden_role")
    client.post("/api/v1/auth/register", json={"username": "rider9", "password": "secret9"})
    other = login(client, "rider9", "secret9")
    assert_problem(buy(client, other, device), 404, "device_not_found")
    admin = auth("admin1")
    patched = client.patch(
        f"/api/v1/fare-products/{BUS_SINGLE}", json={"active": False}, headers=admin
    )
    assert patched.status_code == 200 and patched.json["active"] is False
    assert_problem(buy(client, headers, device), 409, "fare_product_inactive")
    listed = client.get("/api/v1/fare-products", query_string={"limit": 200}, headers=headers).json[
        "data"
    ]
    assert BUS_SINGLE not in {p["id"] for p in listed}


def test_day_and_monthly_passes(client: FlaskClient, commuter: dict[str, Any]) -> None:
    headers, device = commuter["headers"], commuter["device"]
    day = buy(client, headers, device, product=METRO_DAY)
    assert day.status_code == 201, day.json
    start = datetime.fromisoformat(day.json["valid_from"])
    end = datetime.fromisoformat(day.json["valid_until"])
    assert (end - start).total_seconds() == 86_400 - 1
    assert start.astimezone(UTC).hour == 17  # midnight in Hanoi
    past = buy(client, headers, device, product=METRO_DAY, valid_on="2020-01-01")
    assert_problem(past, 422, "date_in_past")
    month = buy(client, headers, device, product=METRO_MONTHLY, valid_month="2020-13")
    assert_problem(month, 422, "validation_failed")


# -- credentials, tokens, re-binding ------------------------------------------------------------
def test_refresh_rebind_and_old_phone_revoked(
    app: Flask, client: FlaskClient, commuter: dict[str, Any]
) -> None:
    headers, phone, device = commuter["headers"], commuter["phone"], commuter["device"]
    ticket = buy(client, headers, device, product=METRO_MONTHLY).json
    fresh = client.post(
        f"/api/v1/tickets/{ticket['id']}/credential", json={"device_id": device}, headers=headers
    )
    assert fresh.status_code == 200 and fresh.json["credential"] != ticket["credential"]
    assert "server_time" in fresh.json
    new_phone = Phone()
    new_device = register(client, headers, new_phone)
    mismatch = client.post(
        f"/api/v1/tickets/{ticket['id']}/credential",
        json={"device_id": new_device},
        headers=headers,
    )
    assert_problem(mismatch, 409, "device_mismatch")
    moved = client.post(
        f"/api/v1/tickets/{ticket['id']}/rebind", json={"device_id": new_device}, headers=headers
    )
    assert moved.status_code == 200, moved.json
    assert moved.json["device_id"] == new_device and moved.json["rebind_count"] == 1
    gate = gate_headers(app)
    old = validate(client, gate, phone.qr(fresh.json["credential"]), 1, "metro-cat-linh", "metro")
    assert (old["decision"], old["reason"]) == ("deny", "revoked")
    new = validate(
        client, gate, new_phone.qr(moved.json["credential"]), 2, "metro-cat-linh", "metro"
    )
    assert (new["decision"], new["reason"]) == ("accept", "ok")
    back = client.post(
        f"/api/v1/tickets/{ticket['id']}/rebind", json={"device_id": device}, headers=headers
    )
    assert_problem(back, 409, "rebind_too_soon")
    assert int(back.headers["Retry-After"]) > 80_000
    with svc(app).db.reader() as session:
        actions = session.scalars(
            select(AuditRecord.action).where(AuditRecord.entity_id == str(ticket["id"]))
        ).all()
    assert "ticket.rebind" in actions


def test_fallback_tokens_validate(
    app: Flask, client: FlaskClient, commuter: dict[str, Any]
) -> None:
    headers = commuter["headers"]
    ticket = buy(client, headers, None, product=METRO_DAY).json
    assert ticket["credential"] is None and ticket["device_id"] is None
    tokens = client.get(
        f"/api/v1/tickets/{ticket['id']}/tokens", query_string={"count": 5}, headers=headers
    ).json
    steps = [t["step"] for t in tokens["tokens"]]
    assert steps == list(range(step_at(int(time.time())), step_at(int(time.time())) + 5))
    now_token = tokens["tokens"][0]["qr_text"]
    assert now_token.startswith("TVF:") and qr_version_at_level_m(now_token) <= 6
    result = validate(client, gate_headers(app), now_token, 7, "metro-cat-linh", "metro")
    assert (result["decision"], result["ticket_id"]) == ("accept", ticket["id"])
    too_many = client.get(
        f"/api/v1/tickets/{ticket['id']}/tokens", query_string={"count": 2881}, headers=headers
    )
    assert_problem(too_many, 422)
    stranger = client.get(f"/api/v1/tickets/{ticket['id']}/tokens", headers=gate_headers(app))
    assert_problem(stranger, 403)
    bound = buy(client, headers, commuter["device"], product=METRO_DAY).json
    copyable = client.get(f"/api/v1/tickets/{bound['id']}/tokens", headers=headers)
    assert_problem(copyable, 409, "ticket_device_bound")


# -- online validation --------------------------------------------------------------------------
def test_online_validation_consumes_a_single_ride_once(
    app: Flask, client: FlaskClient, commuter: dict[str, Any]
) -> None:
    ticket = buy(client, commuter["headers"], commuter["device"]).json
    qr = commuter["phone"].qr(ticket["credential"])
    gate = gate_headers(app)
    first = validate(client, gate, qr, 100)
    assert (first["decision"], first["reason"], first["ticket_id"]) == (
        "accept",
        "ok",
        ticket["id"],
    )
    assert 0 <= first["skew"] <= 30 and first["replayed"] is False
    again = validate(client, gate, qr, 100)  # the gate retried the same tap
    assert again["decision"] == "accept" and again["replayed"] is True
    assert again["tap_id"] == first["tap_id"]
    second = validate(client, gate, qr, 101)
    assert (second["decision"], second["reason"]) == ("deny", "consumed")
    reused = client.post(
        "/api/v1/validations",
        json={
            "qr_text": "TV2:XYZ",
            "validator_id": "bus-09-a",
            "validator_seq": 100,
            "mode": "bus",
        },
        headers=gate,
    )
    assert_problem(reused, 409, "tap_sequence_reused")
    refresh = client.post(
        f"/api/v1/tickets/{ticket['id']}/credential",
        json={"device_id": commuter["device"]},
        headers=commuter["headers"],
    )
    assert_problem(refresh, 409, "ticket_consumed")
    trips = client.get(f"/api/v1/tickets/{ticket['id']}/taps", headers=commuter["headers"]).json
    assert [(t["validator_seq"], t["decision"]) for t in trips["data"]] == [
        (100, "accept"),
        (101, "deny"),
    ]


def test_validation_decisions_and_roles(
    app: Flask, client: FlaskClient, auth: Any, commuter: dict[str, Any]
) -> None:
    ticket = buy(client, commuter["headers"], commuter["device"]).json
    phone, gate = commuter["phone"], gate_headers(app)
    qr = phone.qr(ticket["credential"])
    old = phone.qr(ticket["credential"], at=int(time.time()) - 180)
    assert validate(client, gate, old, 1)["reason"] == "step_too_old"
    assert validate(client, gate, "hello", 2)["reason"] == "malformed"
    assert validate(client, gate, qr, 3, "nowhere-1")["reason"] == "validator_unknown"
    assert validate(client, gate, qr, 4, "bus-01-a")["reason"] == "wrong_route"
    assert validate(client, gate, qr, 5, "metro-cat-linh", "metro")["reason"] == "wrong_mode"
    # a gate configured for the wrong mode is not the validator registered under that id
    assert validate(client, gate, qr, 6, "bus-09-a", "metro")["reason"] == "validator_unknown"
    body = {"qr_text": qr, "validator_id": "bus-09-a", "validator_seq": 9, "mode": "bus"}
    assert_problem(client.post("/api/v1/validations", json=body), 401)
    commuter_try = client.post("/api/v1/validations", json=body, headers=commuter["headers"])
    assert_problem(commuter_try, 403, "forbidden_role")
    bad = client.post("/api/v1/validations", json={**body, "validator_seq": "x"}, headers=gate)
    assert_problem(bad, 422, "validation_failed")
    admin = auth("admin1")
    created = client.post(
        "/api/v1/users",
        json={"username": "gate2", "password": "demo", "roles": ["validator"]},
        headers=admin,
    ).json
    client.post(
        "/api/v1/validators",
        json={"id": "bus-09-z", "mode": "bus", "route": "09", "user_id": created["id"]},
        headers=admin,
    )
    foreign = client.post(
        "/api/v1/validations", json={**body, "validator_id": "bus-09-z"}, headers=gate
    )
    assert_problem(foreign, 403, "validator_not_yours")


def test_validations_are_rate_limited(template_instance: Any, tmp_path: Any) -> None:
    import shutil

    from cashless import create_app
    from tests.conftest import make_settings

    instance = tmp_path / "limited"
    shutil.copytree(template_instance, instance)
    app = create_app(make_settings(instance, validation_rate_limit="3 per minute"))
    client, gate = app.test_client(), gate_headers(app)
    body = {"qr_text": "x", "validator_id": "bus-09-a", "mode": "bus"}
    codes = [
        client.post("/api/v1/validations", json={**body, "validator_seq": i}, headers=gate)
        for i in range(4)
    ]
    assert [r.status_code for r in codes[:3]] == [200, 200, 200]
    assert_problem(codes[3], 429, "rate_limited")
    assert "Retry-After" in codes[3].headers
    app.extensions["cashless"].db.dispose()


# -- the bundle ---------------------------------------------------------------------------------
def test_bundle_is_signed_and_syncs_revocations(
    app: Flask, client: FlaskClient, auth: Any, commuter: dict[str, Any]
) -> None:
    gate, admin = gate_headers(app), auth("admin1")
    jwk = client.get("/.well-known/bundle-key.json").json
    assert jwk["kty"] == "EC" and "d" not in jwk
    full = client.get("/api/v1/validators/bundle", headers=gate).json
    data = verify_bundle(full["bundle"], jwk, int(time.time()))
    assert {"bus-09-a", "metro-cat-linh"} <= set(data.validators)
    assert data.products[BUS_SINGLE].routes is not None and "09" in data.products[BUS_SINGLE].routes
    assert full["since"] is None and data.expires_at - data.issued_at == 86_400
    ticket = buy(client, commuter["headers"], commuter["device"]).json
    revoked = client.post(
        f"/api/v1/tickets/{ticket['id']}/revocation", json={"note": "lost phone"}, headers=admin
    )
    assert revoked.status_code == 200 and revoked.json["status"] == "revoked"
    twice = client.post(
        f"/api/v1/tickets/{ticket['id']}/revocation", json={"note": "again"}, headers=admin
    )
    assert_problem(twice, 409, "ticket_already_revoked")
    delta = client.get(
        "/api/v1/validators/bundle", query_string={"since": full["next_since"]}, headers=gate
    ).json
    payload = verify_bundle(delta["bundle"], jwk, int(time.time())).payload
    assert [r["ticket_id"] for r in payload["revocations"]] == [ticket["id"]]
    assert delta["since"] == full["next_since"] and delta["next_since"] > full["next_since"]
    qr = commuter["phone"].qr(ticket["credential"])
    assert validate(client, gate, qr, 50)["reason"] == "revoked"
    lifted = client.post(
        f"/api/v1/tickets/{ticket['id']}/revocation/lift", json={"note": "found"}, headers=admin
    )
    assert lifted.status_code == 200 and lifted.json["status"] == "active"
    removal = client.get(
        "/api/v1/validators/bundle", query_string={"since": delta["next_since"]}, headers=gate
    ).json
    entries = verify_bundle(removal["bundle"], jwk, int(time.time())).payload["revocations"]
    assert entries[0]["ticket_id"] == ticket["id"] and entries[0]["removed"] is True
    assert entries[0]["until"] <= time.time() + 1
    after = verify_bundle(
        client.get("/api/v1/validators/bundle", headers=gate).json["bundle"], jwk, int(time.time())
    )
    assert ticket["id"] not in {r.ticket_id for r in after.revocations}
    future = client.get(
        "/api/v1/validators/bundle", query_string={"since": 10**9}, headers=gate
    ).json
    assert future["since"] is None  # an unknown cursor gets the full list
    jose = client.get("/api/v1/validators/bundle", headers={**gate, "Accept": "application/jose"})
    assert jose.mimetype == "application/jose" and jose.get_data(as_text=True).count(".") == 2
    assert_problem(client.get("/api/v1/validators/bundle", headers=commuter["headers"]), 403)


def test_rotated_ticket_key_keeps_phones_working(
    app: Flask, client: FlaskClient, commuter: dict[str, Any]
) -> None:
    from core.keys import Purpose, retire, rotate
    from ticketing.issuing import SIGNING_HANDOVER, Issuer

    ticket = buy(client, commuter["headers"], commuter["device"], product=METRO_MONTHLY).json
    old_kid = parse_credential(base64.b64decode(ticket["credential"])).fields.key_id
    new_kid = rotate(svc(app).db, svc(app).keyring, Purpose.TICKET, actor="test")
    issuer = Issuer(svc(app).keyring, b"x")
    now = datetime.now(UTC)
    assert issuer.signing_key(now).kid == old_kid  # gates first learn the new key from bundles
    assert issuer.signing_key(now + SIGNING_HANDOVER).kid == new_kid
    keys = {k.kid: k for k in issuer.issuer_keys()}
    assert keys[old_kid].not_after is not None and keys[new_kid].not_after is None
    assert keys[old_kid].not_after >= time.time() + 73 * 3600 - 5
    gate = gate_headers(app)
    qr = commuter["phone"].qr(ticket["credential"])
    assert validate(client, gate, qr, 70, "metro-cat-linh", "metro")["decision"] == "accept"
    retire(svc(app).db, svc(app).keyring, Purpose.TICKET, old_kid, actor="test")
    assert validate(client, gate, qr, 71, "metro-yen-nghia", "metro")["reason"] == "unknown_key"
    fresh = client.post(
        f"/api/v1/tickets/{ticket['id']}/credential",
        json={"device_id": commuter["device"]},
        headers=commuter["headers"],
    ).json
    assert parse_credential(base64.b64decode(fresh["credential"])).fields.key_id == new_kid


# -- offline taps and revenue protection --------------------------------------------------------
def offline_tap(phone: Phone, credential: str, seq: int, at: int, decision: str = "accept") -> dict:
    return {
        "validator_seq": seq,
        "qr_text": phone.qr(credential, at=at),
        "scanned_at": iso(at),
        "decision": decision,
        "reason": "ok" if decision == "accept" else "passback",
    }


def upload(client: FlaskClient, headers: dict[str, str], validator: str, taps: list) -> Any:
    response = client.post(
        "/api/v1/validators/taps", json={"validator_id": validator, "taps": taps}, headers=headers
    )
    assert response.status_code == 200, response.json
    return response.json


def test_offline_taps_count_once_and_flag_impossible_journeys(
    app: Flask, client: FlaskClient, auth: Any, commuter: dict[str, Any]
) -> None:
    ticket = bought_earlier(app, "commuter1", commuter["device"], METRO_MONTHLY, 3600)
    phone, cred, gate = commuter["phone"], ticket["credential"], gate_headers(app)
    t0 = int(time.time()) - 600
    first = upload(client, gate, "metro-cat-linh", [offline_tap(phone, cred, 1, t0)])
    assert first["recorded"] == 1 and first["results"][0]["decision"] == "accept"
    assert first["results"][0]["flagged"] is False
    far = offline_tap(phone, cred, 1, t0 + 90)
    denied = offline_tap(phone, cred, 2, t0 + 30, decision="deny")
    second = upload(client, gate, "metro-yen-nghia", [far, denied])
    assert [r["status"] for r in second["results"]] == ["recorded", "recorded"]
    assert second["results"][0]["flagged"] is True  # 11 km in 90 s
    assert second["results"][1]["reason"] == "passback"  # the gate's own refusal is kept
    again = upload(client, gate, "metro-yen-nghia", [far, denied])
    assert again["duplicates"] == 2 and [r["flagged"] for r in again["results"]] == [False] * 2
    # the same sequence number for another scan is refused for that tap only
    other = offline_tap(phone, cred, 1, t0 + 95)
    clash = upload(client, gate, "metro-yen-nghia", [other, offline_tap(phone, cred, 3, t0 + 99)])
    assert [r["status"] for r in clash["results"]] == ["conflict", "recorded"]
    assert clash["results"][1]["flagged"] is False  # one open flag per ticket is enough
    admin = auth("admin1")
    status = client.get(f"/api/v1/tickets/{ticket['id']}", headers=admin).json["status"]
    assert status == "revoked"
    flags = client.get(
        "/api/v1/revenue-protection/flags", query_string={"status": "open"}, headers=admin
    ).json["data"]
    assert len(flags) == 1 and flags[0]["kind"] == "impossible_journey"
    assert flags[0]["detail"]["distance_km"] > 10
    assert_problem(client.get("/api/v1/revenue-protection/flags", headers=gate), 403)
    dismissed = client.post(
        f"/api/v1/revenue-protection/flags/{flags[0]['id']}/resolution",
        json={"action": "dismiss", "note": "two phones, one family; verified"},
        headers=admin,
    )
    assert dismissed.status_code == 200 and dismissed.json["status"] == "dismissed"
    assert client.get(f"/api/v1/tickets/{ticket['id']}", headers=admin).json["status"] == "active"
    again_resolved = client.post(
        f"/api/v1/revenue-protection/flags/{flags[0]['id']}/resolution",
        json={"action": "confirm", "note": "changed my mind"},
        headers=admin,
    )
    assert_problem(again_resolved, 409, "flag_already_resolved")


def test_single_ride_accepted_twice_offline_is_flagged(
    app: Flask, client: FlaskClient, auth: Any, commuter: dict[str, Any]
) -> None:
    admin, gate = auth("admin1"), gate_headers(app)
    client.post(
        "/api/v1/validators",
        json={"id": "bus-09-b", "mode": "bus", "route": "09", "name": "Tuyến 09 xe B"},
        headers=admin,
    )
    ticket = bought_earlier(app, "commuter1", commuter["device"], BUS_SINGLE, 3600)
    phone, cred = commuter["phone"], ticket["credential"]
    t0 = int(time.time()) - 1200
    one = upload(client, gate, "bus-09-a", [offline_tap(phone, cred, 5, t0)])
    assert one["results"][0]["decision"] == "accept"
    two = upload(client, gate, "bus-09-b", [offline_tap(phone, cred, 5, t0 + 600)])
    result = two["results"][0]
    assert (result["decision"], result["reason"], result["flagged"]) == ("deny", "consumed", True)
    flags = client.get("/api/v1/revenue-protection/flags", headers=admin).json["data"]
    assert [f["kind"] for f in flags] == ["ride_reused"]
    assert flags[0]["other_tap_id"] == one["results"][0]["tap_id"]


def test_tap_upload_validation(app: Flask, client: FlaskClient, auth: Any) -> None:
    gate = gate_headers(app)
    response = client.post(
        "/api/v1/validators/taps", json={"validator_id": "bus-09-a", "taps": []}, headers=gate
    )
    assert_problem(response, 422, "validation_failed")
    tap = {
        "validator_seq": 1,
        "qr_text": "x",
        "scanned_at": "2026-01-01T00:00:00",
        "decision": "accept",
        "reason": "ok",
    }
    naive = client.post(
        "/api/v1/validators/taps", json={"validator_id": "bus-09-a", "taps": [tap]}, headers=gate
    )
    assert_problem(naive, 422, "validation_failed")


# -- admin: products, validators, concessions ---------------------------------------------------
def test_admin_manages_products_and_validators(client: FlaskClient, auth: Any) -> None:
    admin = auth("admin1")
    product = {
        "code": "BUS-DAY-TEST",
        "kind": "day_pass",
        "mode": "bus",
        "price": 30_000,
        "name_vi": "Vé ngày xe buýt",
        "name_en": "Bus day pass",
        "concession_prices": {"priority": 15_000},
    }
    created = client.post("/api/v1/fare-products", json=product, headers=admin)
    assert created.status_code == 201 and created.json["passback_seconds"] == 900
    assert created.json["id"] > 320 and created.json["validity_hours"] is None
    dup = client.post("/api/v1/fare-products", json=product, headers=admin)
    assert_problem(dup, 409, "already_exists")
    dear = {**product, "code": "X1", "concession_prices": {"priority": 40_000}}
    assert_problem(client.post("/api/v1/fare-products", json=dear, headers=admin), 422)
    floaty = {**product, "code": "X2", "price": 30000.5}
    assert_problem(client.post("/api/v1/fare-products", json=floaty, headers=admin), 422)
    big = {**product, "code": "X3", "id": 70_000}
    assert_problem(client.post("/api/v1/fare-products", json=big, headers=admin), 422)
    commuter = auth("commuter1")
    assert_problem(client.post("/api/v1/fare-products", json=product, headers=commuter), 403)
    no_route = client.post("/api/v1/validators", json={"id": "b-1", "mode": "bus"}, headers=admin)
    assert_problem(no_route, 422)
    gate = client.post(
        "/api/v1/validators",
        json={"id": "metro-3-x", "mode": "metro", "station": "NHON", "lat": 21.05, "lon": 105.73},
        headers=admin,
    )
    assert gate.status_code == 201 and gate.json["active"] is True
    off = client.patch("/api/v1/validators/metro-3-x", json={"active": False}, headers=admin)
    assert off.status_code == 200 and off.json["active"] is False
    assert client.get("/api/v1/validators", headers=admin).json["data"]
    assert_problem(client.get("/api/v1/validators/nope", headers=admin), 404, "validator_not_found")


def test_concessions_priority_and_free(app: Flask, client: FlaskClient, auth: Any) -> None:
    admin, headers = auth("admin1"), auth("commuter1")
    device = register(client, headers, Phone())
    uid = user_id(app, "commuter1")
    categories = client.get("/api/v1/concession-categories", headers=headers).json["data"]
    assert {"elderly_60", "child_under_6", "student", "industrial_worker"} <= {
        c["code"] for c in categories
    }
    assert_problem(client.get("/api/v1/commuters/me/concession", headers=headers), 404)
    set_free = client.put(
        f"/api/v1/commuters/{uid}/concession",
        json={"category": "elderly_60", "note": "CCCD checked at the counter"},
        headers=admin,
    )
    assert set_free.status_code == 200 and set_free.json["verified_by"] == "admin1"
    free = buy(client, headers, device, product=BUS_MONTHLY_ALL)  # the wallet is empty
    assert free.status_code == 201, free.json
    assert (free.json["price"], free.json["payment_id"]) == (0, None)
    assert free.json["concession_category"] == "elderly_60"
    fund(app, "commuter1", 200_000)
    client.put(
        f"/api/v1/commuters/{uid}/concession",
        json={"category": "student", "note": "student card 2026"},
        headers=admin,
    )
    half = buy(client, headers, device, product=BUS_MONTHLY_ALL)
    assert half.json["price"] == 140_000 and half.json["payment_id"] is not None
    single = buy(client, headers, device)  # no priority price for single rides
    assert single.json["price"] == 8_000 and single.json["concession_category"] is None
    nosy = client.put(
        f"/api/v1/commuters/{uid}/concession",
        json={"category": "elderly_60", "note": "self-service"},
        headers=headers,
    )
    assert_problem(nosy, 403)
    removed = client.delete(
        f"/api/v1/commuters/{uid}/concession", json={"note": "graduated"}, headers=admin
    )
    assert removed.status_code == 204
    with svc(app).db.reader() as session:
        actions = set(session.scalars(select(AuditRecord.action)).all())
    assert {"concession.set", "concession.remove", "ticket.issue_free"} <= actions


# -- pages and documents ------------------------------------------------------------------------
def test_ticket_page(client: FlaskClient, auth: Any) -> None:
    anonymous = client.get("/ticket")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    page = client.get("/ticket", headers=auth("commuter1"))
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Vé lượt xe buýt" in html
    assert "/static/ticketing/ticket_page.js" in html and "<script>" not in html
    assert "8.000\u00a0₫" in html
    english = client.get("/ticket?lang=en", headers=auth("commuter1")).get_data(as_text=True)
    assert "Bus single ride" in english
    assert client.get("/ticket", headers=auth("vendor1")).status_code == 403
    js = client.get("/static/ticketing/ticket_page.js")
    assert js.status_code == 200 and "javascript" in js.mimetype
    worker = client.get("/ticket-sw.js")
    assert worker.status_code == 200 and worker.headers["Service-Worker-Allowed"] == "/"


def test_openapi_documents_ticketing(client: FlaskClient) -> None:
    paths = client.get("/openapi.json").json["paths"]
    for path in (
        "/api/v1/fare-products",
        "/api/v1/devices",
        "/api/v1/tickets",
        "/api/v1/tickets/{ticket_id}/credential",
        "/api/v1/tickets/{ticket_id}/tokens",
        "/api/v1/validations",
        "/api/v1/validators/bundle",
        "/api/v1/validators/taps",
        "/.well-known/bundle-key.json",
    ):
        assert path in paths, path
    assert "/ticket" not in paths


def test_refund_revokes_the_ticket(
    app: Flask, client: FlaskClient, commuter: dict[str, Any]
) -> None:
    from ticketing.models import Ticket
    from ticketing.service import on_payment_refunded

    ticket = buy(client, commuter["headers"], commuter["device"]).json
    with svc(app).db.transaction() as session:
        on_payment_refunded(
            session,
            {
                "purpose": "ticket",
                "status": "partially_refunded",
                "owner_ref": f"ticket:{ticket['id']}",
            },
        )
        assert session.get(Ticket, ticket["id"]).status == "active"
        on_payment_refunded(
            session,
            {"purpose": "ticket", "status": "refunded", "owner_ref": f"ticket:{ticket['id']}"},
        )
        assert session.get(Ticket, ticket["id"]).status == "revoked"


def test_qr_parses_as_the_contract_says(commuter: dict[str, Any], client: FlaskClient) -> None:
    ticket = buy(client, commuter["headers"], commuter["device"]).json
    qr = commuter["phone"].qr(ticket["credential"])
    parsed = parse_qr(qr)
    assert parsed.credential.raw == base64.b64decode(ticket["credential"])  # type: ignore[union-attr]
    assert len(qr) == 4 + 290
