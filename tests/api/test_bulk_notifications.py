"""The bank's batch webhook (`POST /api/v1/bank/notifications/batch`) on the embedded default:
up to 1,000 signed credits per request, each answered in order exactly as if it had come
alone (tests/integration/test_bulk_notifications_pg.py holds the same on PostgreSQL, where the
batch is set-based)."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from payments import bank
from payments.models import BankNotification, Payment, StaticCode
from payments.references import new_charge_reference, stall_reference
from tests.api.test_foundation import assert_problem
from tests.api.test_payments_api import balances, credit_body, make_charge, svc

BATCH = "/api/v1/bank/notifications/batch"


def post_batch(
    client: FlaskClient, app: Flask, items: list[dict[str, Any]], secret: str | None = None
) -> Any:
    raw = json.dumps({"notifications": items}).encode()
    header = bank.sign(secret or svc(app).settings.bank_webhook_secret, raw, int(time.time()))
    return client.post(
        BATCH, data=raw, headers={"X-Signature": header, "Content-Type": "application/json"}
    )


def reference_of(app: Flask, payment_id: int) -> str:
    with svc(app).db.reader() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None and payment.reference is not None
        return payment.reference


def add_stall(app: Flask, stall_id: int, merchant_id: int) -> str:
    reference = stall_reference(stall_id)
    with svc(app).db.transaction() as session:
        session.add(
            StaticCode(
                reference=reference,
                stall_id=stall_id,
                merchant_id=merchant_id,
                credit_account=f"merchant:{merchant_id}:payable",
                terminal_label=f"SAP{stall_id}",
                payload="x",
            )
        )
    return reference


def test_each_credit_is_answered_in_order_as_if_alone(client: FlaskClient, app: Flask) -> None:
    first, second = make_charge(app, 15000), make_charge(app, 20000)
    ref_first, ref_second = reference_of(app, first), reference_of(app, second)
    stall = add_stall(app, 31, 9)
    wrong_account = credit_body(app, 15000, ref_second, "FT-B5")
    wrong_account["account_number"] = "999000111"
    items = [
        credit_body(app, 15000, f"{ref_first} rau muong", "FT-B1"),
        credit_body(app, 15000, f"{ref_first} rau muong", "FT-B1"),  # the same id again
        credit_body(app, 15000, ref_first, "FT-B2"),  # a second payment of a paid charge
        credit_body(app, 19000, ref_second, "FT-B3"),  # wrong amount
        credit_body(app, 7000, new_charge_reference(), "FT-B4"),  # nobody's reference
        wrong_account,
        credit_body(app, 3000, "chuyen tien", "FT-B6"),  # no reference at all
        credit_body(app, 12000, f"{stall} thit", "FT-B7"),  # a stall's static code
    ]
    before = balances(app)
    response = post_batch(client, app, items)
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.json["results"]
    assert [r["status"] for r in results] == [
        "matched",
        "duplicate",
        "suspense",
        "suspense",
        "suspense",
        "suspense",
        "suspense",
        "matched",
    ]
    assert [r["payment_id"] for r in results[:4]] == [first, None, first, second]
    after = balances(app)
    moved = {code: after[code] - before.get(code, 0) for code in after}
    assert moved["bank_clearing"] == 15000 * 2 + 19000 + 7000 + 15000 + 3000 + 12000
    assert moved["suspense"] == -(15000 + 19000 + 7000 + 15000 + 3000)
    assert moved["merchant:7:payable"] == -15000 and moved["merchant:9:payable"] == -12000
    with svc(app).db.reader() as session:
        reasons = dict(
            session.query(BankNotification.transaction_id, BankNotification.reason).all()
        )
        assert session.get(Payment, first).status == "succeeded"
        assert session.get(Payment, second).status == "pending"
        made = session.get(Payment, results[7]["payment_id"])
        assert (made.stall_id, made.amount, made.status) == (31, 12000, "succeeded")
    assert [reasons[f"FT-B{n}"] for n in range(2, 7)] == [
        "payment_succeeded",
        "amount_mismatch",
        "unknown_reference",
        "wrong_account",
        "no_reference",
    ]


def test_a_replayed_batch_is_all_duplicates_and_moves_nothing(
    client: FlaskClient, app: Flask
) -> None:
    payment = make_charge(app, 9000)
    items = [
        credit_body(app, 9000, reference_of(app, payment), "FT-R1"),
        credit_body(app, 4000, "khong ro", "FT-R2"),
    ]
    assert [r["status"] for r in post_batch(client, app, items).json["results"]] == [
        "matched",
        "suspense",
    ]
    before = balances(app)
    again = post_batch(client, app, items[::-1])
    assert again.status_code == 200
    assert again.json["results"] == [
        {"status": "duplicate", "payment_id": None},
        {"status": "duplicate", "payment_id": None},
    ]
    assert balances(app) == before


def test_a_bad_signature_or_a_bad_item_refuses_the_whole_batch(
    client: FlaskClient, app: Flask
) -> None:
    good = credit_body(app, 5000, "chuyen tien", "FT-V1")
    assert_problem(post_batch(client, app, [good], secret="not-the-bank"), 401, "bad_signature")
    assert_problem(post_batch(client, app, []), 422)
    too_many = [credit_body(app, 1000, "x", f"FT-M{n}") for n in range(1001)]
    assert_problem(post_batch(client, app, too_many), 422)
    for amount in (5000.5, -5, 0, "5000", 10**13):
        bad = {**credit_body(app, 5000, "x", "FT-V2"), "amount": amount}
        assert_problem(post_batch(client, app, [good, bad]), 422)
    with svc(app).db.reader() as session:
        assert session.query(BankNotification).count() == 0


def test_merchant_events_in_bulk_are_the_events_one_by_one(app: Flask) -> None:
    """`record_merchant_events` on the embedded default stores what `record_merchant_event`
    stores, in order (the batch path uses it on PostgreSQL)."""
    from payments.events import record_merchant_event, record_merchant_events
    from payments.models import MerchantEvent

    wanted = [(61, "payment.succeeded", {"n": 1}), (62, "payment.expired", {"n": 2})]
    with svc(app).db.transaction() as session:
        ids = record_merchant_events(session, wanted)
        single = record_merchant_event(session, 61, "payment.succeeded", {"n": 1}).id
    with svc(app).db.reader() as session:
        rows = [session.get(MerchantEvent, event_id) for event_id in [*ids, single]]
        got = [(r.merchant_id, r.type, r.payload["type"], r.payload["data"]) for r in rows]
    assert ids == sorted(ids) and single > ids[-1]
    assert got == [(m, t, t, d) for m, t, d in [*wanted, wanted[0]]]
    with pytest.raises(ValueError), svc(app).db.transaction() as session:
        record_merchant_events(session, [(61, "payment.lost", {})])
