"""Payments through the HTTP API on the embedded default: top-ups via the bank simulator, the
signed webhook, suspense, wallet payments, refunds, expiry, cancel and live status."""

from __future__ import annotations

import json
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from core.clock import utcnow
from payments import bank, ledger, vietqr
from payments.references import is_valid_reference, stall_reference
from payments.service import PaymentsConfig, create_vietqr_payment, credit_wallet
from tests.api.test_foundation import assert_problem
from tests.conftest import login, wait_for


def rider(client: FlaskClient) -> dict[str, str]:
    """A commuter of its own with an empty wallet (demo commuter1 starts with money)."""
    import secrets

    name = f"rider{secrets.token_hex(4)}"
    created = client.post("/api/v1/auth/register", json={"username": name, "password": "ride1"})
    assert created.status_code == 201, created.get_data(as_text=True)
    return login(client, name, "ride1")


def svc(app: Flask) -> Any:
    return app.extensions["cashless"]


def idem(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


def user_id(client: FlaskClient, headers: dict[str, str]) -> int:
    return int(client.get("/api/v1/auth/me", headers=headers).json["id"])


def fund(app: Flask, uid: int, amount: int, key: str) -> None:
    with svc(app).db.transaction() as session:
        credit_wallet(session, user_id=uid, amount=amount, external_key=key)


def make_charge(app: Flask, amount: int, merchant_id: int = 7) -> int:
    cfg = PaymentsConfig.from_settings(svc(app).settings)
    with svc(app).db.transaction() as session:
        payment = create_vietqr_payment(
            session,
            cfg,
            amount=amount,
            purpose="charge",
            owner_ref="test",
            credit_account=f"merchant:{merchant_id}:payable",
            merchant_id=merchant_id,
        )
        return payment.id


def signed_post(
    client: FlaskClient,
    app: Flask,
    body: dict[str, Any],
    timestamp: int | None = None,
    secret: str | None = None,
) -> Any:
    raw = json.dumps(body).encode()
    secret = secret or svc(app).settings.bank_webhook_secret
    header = bank.sign(secret, raw, timestamp or int(time.time()))
    return client.post(
        "/api/v1/bank/notifications",
        data=raw,
        headers={"X-Signature": header, "Content-Type": "application/json"},
    )


def credit_body(app: Flask, amount: int, description: str, txn: str) -> dict[str, Any]:
    return {
        "transaction_id": txn,
        "account_number": svc(app).settings.collection_account,
        "amount": amount,
        "credited_at": utcnow().isoformat(),
        "description": description,
        "counterparty_name": "NGUYEN VAN A",
    }


def balances(app: Flask) -> dict[str, int]:
    from payments.models import LedgerAccount

    with svc(app).db.reader() as session:
        return {a.code: a.balance for a in session.query(LedgerAccount).all()}


def test_topup_returns_pending_vietqr(client: FlaskClient, auth: Any) -> None:
    headers = rider(client)
    response = client.post(
        "/api/v1/wallets/me/topups", json={"amount": 50000}, headers=idem(headers, "topup-1")
    )
    assert response.status_code == 201, response.json
    body = response.json
    assert body["status"] == "pending" and body["amount"] == 50000 and body["currency"] == "VND"
    assert is_valid_reference(body["reference"]) and body["reference"].startswith("HC")
    decoded = vietqr.decode(body["qr"]["payload"])
    assert decoded.amount == 50000 and decoded.purpose == body["reference"]
    png = client.get(body["qr"]["png_url"])
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")
    svg = client.get(body["qr"]["svg_url"])
    assert svg.status_code == 200 and b"<svg" in svg.data
    assert client.get(body["qr"]["png_url"].split("?")[0]).status_code == 401


@pytest.mark.parametrize("amount", [15000.5, 1.0, -5, 0, "15000", 10**13, True, None])
def test_bad_amounts_are_422_and_write_nothing(
    client: FlaskClient, auth: Any, app: Flask, amount: Any
) -> None:
    headers = rider(client)
    response = client.post(
        "/api/v1/wallets/me/topups", json={"amount": amount}, headers=idem(headers, "bad-amount")
    )
    assert_problem(response, 422)
    from payments.models import Payment

    with svc(app).db.reader() as session:
        assert session.query(Payment).count() == 0


def test_topup_requires_idempotency_key(client: FlaskClient, auth: Any) -> None:
    response = client.post(
        "/api/v1/wallets/me/topups", json={"amount": 10000}, headers=rider(client)
    )
    assert_problem(response, 400, "idempotency_key_missing")


def test_topup_paid_through_simulator_reaches_wallet(live_app: Flask) -> None:
    client = live_app.test_client()
    headers = rider(client)
    payment = client.post(
        "/api/v1/wallets/me/topups", json={"amount": 120000}, headers=idem(headers, "topup-sim")
    ).json
    transfer = client.post(
        "/api/v1/sandbox/bank/transfers",
        headers=headers,
        json={"qr_payload": payment["qr"]["payload"]},
    )
    assert transfer.status_code == 201, transfer.json

    def succeeded() -> bool:
        current = client.get(f"/api/v1/payments/{payment['id']}", headers=headers).json
        return current["status"] == "succeeded"

    wait_for(succeeded)
    assert client.get("/api/v1/wallets/me", headers=headers).json == {
        "balance": 120000,
        "currency": "VND",
    }
    start = (utcnow() - timedelta(hours=1)).isoformat()
    end = (utcnow() + timedelta(hours=1)).isoformat()
    statement = client.get(
        "/api/v1/wallets/me/transactions", query_string={"from": start, "to": end}, headers=headers
    ).json
    assert [m["amount"] for m in statement["data"]] == [120000]
    assert balances(live_app)["bank_clearing"] == 120000


def test_sse_stream_reports_success_within_a_second(live_app: Flask) -> None:
    """The vendor's page learns of success within 1 s of the bank's notification."""
    import urllib.request

    client = live_app.test_client()
    headers = rider(client)
    payment = client.post(
        "/api/v1/wallets/me/topups", json={"amount": 30000}, headers=idem(headers, "topup-sse")
    ).json
    url = svc(live_app).settings.public_url + f"/api/v1/payments/{payment['id']}/events"
    request = urllib.request.Request(url, headers=headers)
    events: list[tuple[float, str, dict[str, Any]]] = []

    def listen() -> None:
        with urllib.request.urlopen(request, timeout=20) as stream:
            event = ""
            for raw in stream:
                line = raw.decode().strip()
                if line.startswith("event:"):
                    event = line.split(":", 1)[1].strip()
                elif line.startswith("data:"):
                    events.append((time.monotonic(), event, json.loads(line[5:])))
                    if events[-1][2].get("status") == "succeeded":
                        return

    listener = threading.Thread(target=listen)
    listener.start()
    wait_for(lambda: events)
    assert events[0][2]["status"] == "pending"
    sent = time.monotonic()
    body = credit_body(live_app, 30000, f"NAP TIEN {payment['reference']}", "FT-SSE-1")
    assert signed_post(client, live_app, body).json["status"] == "matched"
    listener.join(10)
    assert events[-1][2]["status"] == "succeeded"
    assert events[-1][0] - sent < 1.0


def test_webhook_rejects_bad_and_stale_signatures(client: FlaskClient, app: Flask) -> None:
    body = credit_body(app, 10000, "x", "FT-SIG-1")
    assert_problem(signed_post(client, app, body, secret="wrong"), 401, "bad_signature")
    stale = int(time.time()) - 301
    assert_problem(signed_post(client, app, body, timestamp=stale), 401, "bad_signature")
    raw = json.dumps(body).encode()
    unsigned = client.post(
        "/api/v1/bank/notifications", data=raw, headers={"Content-Type": "application/json"}
    )
    assert_problem(unsigned, 401, "bad_signature")
    garbage = client.post(
        "/api/v1/bank/notifications",
        data=b"{nope",
        headers={
            "Content-Type": "application/json",
            "X-Signature": bank.sign(
                svc(app).settings.bank_webhook_secret, b"{nope", int(time.time())
            ),
        },
    )
    assert_problem(garbage, 400, "malformed_json")
    assert "bank_clearing" not in balances(app)


def test_replayed_notification_posts_once(client: FlaskClient, app: Flask) -> None:
    payment_id = make_charge(app, 15000)
    reference = client.application.extensions["cashless"].db
    from payments.models import Payment

    with reference.reader() as session:
        ref = session.get(Payment, payment_id).reference
    body = credit_body(app, 15000, f"{ref} thanh toan", "FT-REPLAY")
    first = signed_post(client, app, body)
    assert first.json == {"status": "matched", "payment_id": payment_id}
    for _ in range(3):
        assert signed_post(client, app, body).json["status"] == "duplicate"
    assert balances(app)["bank_clearing"] == 15000
    assert balances(app)["merchant:7:payable"] == -15000


def test_unknown_reference_and_no_reference_go_to_suspense(
    client: FlaskClient, app: Flask, auth: Any
) -> None:
    from payments.references import new_charge_reference

    unknown = signed_post(client, app, credit_body(app, 9000, new_charge_reference(), "FT-U1"))
    plain = signed_post(client, app, credit_body(app, 7000, "chuyen tien", "FT-U2"))
    assert unknown.json["status"] == plain.json["status"] == "suspense"
    assert balances(app)["suspense"] == -16000
    items = client.get("/api/v1/suspense", headers=auth("finance1")).json["data"]
    assert {(i["transaction_id"], i["reason"]) for i in items} == {
        ("FT-U1", "unknown_reference"),
        ("FT-U2", "no_reference"),
    }


def test_wrong_amount_goes_to_suspense_and_payment_stays_pending(
    client: FlaskClient, app: Flask
) -> None:
    payment_id = make_charge(app, 20000)
    from payments.models import Payment

    with svc(app).db.reader() as session:
        ref = session.get(Payment, payment_id).reference
    outcome = signed_post(client, app, credit_body(app, 2000, ref, "FT-WRONG")).json
    assert outcome == {"status": "suspense", "payment_id": payment_id}
    with svc(app).db.reader() as session:
        assert session.get(Payment, payment_id).status == "pending"


def test_static_stall_code_credit_becomes_a_payment(client: FlaskClient, app: Flask) -> None:
    from payments.models import Payment, StaticCode

    reference = stall_reference(12)
    with svc(app).db.transaction() as session:
        session.add(
            StaticCode(
                reference=reference,
                stall_id=12,
                merchant_id=3,
                credit_account="merchant:3:payable",
                terminal_label="SAP12",
                payload="x",
            )
        )
    outcome = signed_post(client, app, credit_body(app, 8000, f"{reference} rau", "FT-ST")).json
    assert outcome["status"] == "matched"
    with svc(app).db.reader() as session:
        payment = session.get(Payment, outcome["payment_id"])
        assert (payment.status, payment.amount, payment.stall_id) == ("succeeded", 8000, 12)


def test_wallet_payment_of_pending_charge(client: FlaskClient, app: Flask, auth: Any) -> None:
    headers = rider(client)
    uid = user_id(client, headers)
    payment_id = make_charge(app, 25000)
    poor = client.post(
        f"/api/v1/payments/{payment_id}/wallet-payment", headers=idem(headers, "pay-1")
    )
    assert_problem(poor, 422, "insufficient_funds")
    fund(app, uid, 30000, "fund-1")
    paid = client.post(
        f"/api/v1/payments/{payment_id}/wallet-payment", headers=idem(headers, "pay-2")
    )
    assert paid.status_code == 200 and paid.json["status"] == "succeeded"
    assert paid.json["method"] == "wallet"
    again = client.post(
        f"/api/v1/payments/{payment_id}/wallet-payment", headers=idem(headers, "pay-2")
    )
    assert again.headers["Idempotent-Replayed"] == "true"
    other = make_charge(app, 1000)
    with svc(app).db.transaction() as session:
        from payments.models import Payment

        session.get(Payment, other).status = "cancelled"
    assert_problem(
        client.post(f"/api/v1/payments/{other}/wallet-payment", headers=idem(headers, "pay-3")),
        409,
        "payment_not_pending",
    )
    assert client.get("/api/v1/wallets/me", headers=headers).json["balance"] == 5000


def test_refunds_check_available_amount(client: FlaskClient, app: Flask, auth: Any) -> None:
    commuter = rider(client)
    uid = user_id(client, commuter)
    fund(app, uid, 40000, "fund-r")
    payment_id = make_charge(app, 40000)
    client.post(f"/api/v1/payments/{payment_id}/wallet-payment", headers=idem(commuter, "p"))
    finance = auth("finance1")
    url = f"/api/v1/payments/{payment_id}/refunds"
    stale = client.post(
        url, json={"amount": 1000, "refund_amount_available": 39000}, headers=idem(finance, "r0")
    )
    assert_problem(stale, 412, "refund_amount_changed")
    big = client.post(
        url, json={"amount": 50000, "refund_amount_available": 40000}, headers=idem(finance, "r1")
    )
    assert_problem(big, 422, "refund_too_large")
    part = client.post(
        url, json={"amount": 15000, "refund_amount_available": 40000}, headers=idem(finance, "r2")
    )
    assert part.status_code == 201 and part.json["destination"] == "wallet"
    payment = client.get(f"/api/v1/payments/{payment_id}", headers=finance).json
    assert payment["status"] == "partially_refunded"
    assert payment["refund_amount_available"] == 25000
    rest = client.post(
        url, json={"amount": 25000, "refund_amount_available": 25000}, headers=idem(finance, "r3")
    )
    assert rest.status_code == 201
    assert (
        client.get(f"/api/v1/payments/{payment_id}", headers=finance).json["status"] == "refunded"
    )
    assert client.get("/api/v1/wallets/me", headers=commuter).json["balance"] == 40000
    commuter_refund = client.post(
        url, json={"amount": 1, "refund_amount_available": 0}, headers=idem(commuter, "r4")
    )
    assert_problem(commuter_refund, 403)


def test_expiry_then_late_credit_goes_to_suspense(client: FlaskClient, app: Flask) -> None:
    from payments.models import Payment
    from payments.service import expire_due_payments

    payment_id = make_charge(app, 12000)
    assert expire_due_payments(svc(app).db, utcnow()) == 0
    assert expire_due_payments(svc(app).db, utcnow() + timedelta(minutes=16)) == 1
    assert expire_due_payments(svc(app).db, utcnow() + timedelta(minutes=16)) == 0
    with svc(app).db.reader() as session:
        payment = session.get(Payment, payment_id)
    assert payment.status == "expired"
    late = signed_post(client, app, credit_body(app, 12000, payment.reference, "FT-LATE")).json
    assert late == {"status": "suspense", "payment_id": payment_id}


def test_late_credit_resolved_by_finance_revives_payment(client: FlaskClient, app: Flask) -> None:
    from payments.models import BankNotification, Payment
    from payments.notifications import apply_suspense_to_payment
    from payments.service import expire_due_payments

    payment_id = make_charge(app, 11000)
    expire_due_payments(svc(app).db, utcnow() + timedelta(minutes=16))
    with svc(app).db.reader() as session:
        ref = session.get(Payment, payment_id).reference
    signed_post(client, app, credit_body(app, 11000, ref, "FT-LATE2"))
    with svc(app).db.transaction() as session:
        note = session.query(BankNotification).filter_by(transaction_id="FT-LATE2").one()
        apply_suspense_to_payment(session, note.id, payment_id, "finance1", "late credit")
    with svc(app).db.reader() as session:
        assert session.get(Payment, payment_id).status == "succeeded"
    assert balances(app)["suspense"] == 0
    assert balances(app)["merchant:7:payable"] == -11000


def test_cancel_pending_charge(client: FlaskClient, app: Flask, auth: Any) -> None:
    payment_id = make_charge(app, 5000)
    response = client.post(f"/api/v1/payments/{payment_id}/cancel", headers=auth("finance1"))
    assert response.status_code == 200 and response.json["status"] == "cancelled"
    assert response.json["qr"] is None
    assert_problem(
        client.post(f"/api/v1/payments/{payment_id}/cancel", headers=rider(client)), 403
    )


def test_payments_of_others_are_hidden(client: FlaskClient, app: Flask, auth: Any) -> None:
    payment_id = make_charge(app, 5000)
    assert_problem(client.get(f"/api/v1/payments/{payment_id}", headers=rider(client)), 404)
    assert client.get(f"/api/v1/payments/{payment_id}", headers=auth("finance1")).status_code == 200


def test_payment_lists_need_a_window(client: FlaskClient, auth: Any) -> None:
    assert_problem(client.get("/api/v1/payments", headers=auth("finance1")), 422)
    day = utcnow().date().isoformat()
    listed = client.get(f"/api/v1/payments?business_date={day}", headers=auth("finance1"))
    assert listed.status_code == 200 and listed.json["has_more"] is False


def test_sandbox_rejects_non_vietqr(client: FlaskClient, auth: Any) -> None:
    response = client.post(
        "/api/v1/sandbox/bank/transfers", headers=rider(client), json={"qr_payload": "hello"}
    )
    assert_problem(response, 422)


def test_ledger_guards_on_sqlite(app: Flask) -> None:
    """The embedded default refuses unbalanced seals and edits of postings too."""
    from sqlalchemy import text
    from sqlalchemy.exc import DatabaseError

    fund(app, 987654, 1000, "guard")
    db = svc(app).db
    with pytest.raises(DatabaseError):
        with db.transaction() as session:
            session.execute(text("UPDATE postings SET amount = amount + 1"))
    with pytest.raises(DatabaseError):
        with db.transaction() as session:
            session.execute(text("DELETE FROM postings"))
    with pytest.raises(DatabaseError):
        with db.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO journal_transactions (external_key, kind, business_date, memo, "
                    "created_at) VALUES ('x', 'x', '2026-01-01', '', '2026-01-01T00:00:00')"
                )
            )
            txn = session.execute(
                text("SELECT id FROM journal_transactions WHERE external_key='x'")
            ).scalar()
            account = session.execute(text("SELECT id FROM ledger_accounts LIMIT 1")).scalar()
            session.execute(
                text(
                    f"INSERT INTO postings (transaction_id, account_id, amount, business_date, "
                    f"created_at) VALUES ({txn}, {account}, 5, '2026-01-01', '2026-01-01T00:00:00')"
                )
            )
            session.execute(text(f"INSERT INTO journal_seals (transaction_id) VALUES ({txn})"))
    with db.reader() as session:
        assert ledger.balance(session, "wallet:987654") == -1000
