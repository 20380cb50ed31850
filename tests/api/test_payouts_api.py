"""Settlement on the embedded default: the daily payout batch per merchant, its ledger posting
(the contract with reconciliation), the bank payout file, the `payout.sent` event, re-runs, the
carry-over of a day with nothing due, the schedule, and the property that a payout equals the
day's charges minus refunds minus the discount."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from core.clock import business_date, utcnow
from merchants import payouts, service
from merchants.jobs import run_payouts_job
from merchants.models import PayoutBatch
from payments import ledger, notifications
from payments.ledger import Leg
from payments.models import JournalTransaction, LedgerAccount, MerchantEvent, Posting
from payments.service import PaymentsConfig, create_vietqr_payment, refund
from tests.api.test_foundation import assert_problem
from tests.api.test_payments_api import balances, idem, svc
from tests.conftest import wait_for


def new_merchant(app: Flask, rate_bp: int, name: str = "Chợ Sấu") -> int:
    application = service.MerchantApplication(
        legal_name=f"Hộ kinh doanh {name}",
        short_name=name,
        category="market_vendor",
        settlement_bank_bin="970436",
        settlement_account="0099887766",
        discount_rate_bp=rate_bp,
    )
    view = service.onboard_merchant(svc(app).db, application, actor="test")
    return int(view.id)


def paid_charge(app: Flask, merchant_id: int, amount: int, txn: str) -> int:
    """A dynamic charge paid by a bank credit, as the webhook would match it."""
    cfg = PaymentsConfig.from_settings(svc(app).settings)
    with svc(app).db.transaction() as session:
        payment = create_vietqr_payment(
            session,
            cfg,
            amount=amount,
            purpose="charge",
            owner_ref=f"merchant:{merchant_id}",
            credit_account=ledger.merchant_payable_code(merchant_id),
            merchant_id=merchant_id,
        )
        reference, payment_id = payment.reference, payment.id
    credit = notifications.IncomingCredit(
        transaction_id=txn,
        account_number=cfg.account,
        amount=amount,
        credited_at=utcnow(),
        description=f"{reference} thanh toan",
    )
    assert notifications.receive(svc(app).db, cfg, credit).status == "matched"
    return int(payment_id)


def journal(app: Flask, key: str) -> dict[str, int]:
    with svc(app).db.reader() as session:
        rows = session.execute(
            select(LedgerAccount.code, Posting.amount, JournalTransaction.kind)
            .join(Posting, Posting.account_id == LedgerAccount.id)
            .join(JournalTransaction, JournalTransaction.id == Posting.transaction_id)
            .where(JournalTransaction.external_key == key)
        ).all()
    assert {kind for _, _, kind in rows} == {"payout"}
    return {code: amount for code, amount, _ in rows}


def test_payout_batch_posts_the_contracted_journal_and_file(
    client: FlaskClient, auth: Any, app: Flask
) -> None:
    mid = new_merchant(app, rate_bp=150)
    first = paid_charge(app, mid, 15_000, "FT-P-1")
    paid_charge(app, mid, 999, "FT-P-2")
    paid_charge(app, mid, 8_000, "FT-P-3")
    refund(svc(app).db, first, amount=2_000, refund_amount_available=15_000, actor="vendor1")
    today = business_date(utcnow())
    finance = auth("finance1")
    run = client.post(
        "/api/v1/merchants/payouts/runs",
        json={"business_date": today.isoformat(), "merchant_id": mid},
        headers=idem(finance, "payout-run-1"),
    )
    assert run.status_code == 201, run.json
    (batch,) = run.json["batches"]
    discount = 15_000 * 150 // 10_000 + 999 * 150 // 10_000 + 8_000 * 150 // 10_000
    assert batch["charges_count"] == 3 and batch["refunds_amount"] == 2_000
    assert batch["gross_amount"] == 21_999 and batch["discount_amount"] == discount
    assert batch["amount"] == 21_999 - discount and batch["status"] == "posted"
    assert batch["description"] == f"PAYOUT {today.isoformat()} CHO SAU"
    legs = journal(app, f"payout:{batch['id']}")
    assert legs == {
        f"merchant:{mid}:payable": 21_999,
        "merchant_discount_revenue": -discount,
        "bank_clearing": -(21_999 - discount),
    }
    assert balances(app)[f"merchant:{mid}:payable"] == 0
    file = client.get(
        "/api/v1/merchants/payouts/file",
        query_string={"business_date": today.isoformat()},
        headers=finance,
    )
    assert file.mimetype == "text/csv"
    (line,) = [
        r
        for r in csv.DictReader(io.StringIO(file.get_data(as_text=True)))
        if r["merchant_id"] == str(mid)
    ]
    assert int(line["amount"]) == batch["amount"] and line["description"] == batch["description"]
    assert line["bank_bin"] == "970436" and line["account_number"] == "0099887766"
    with svc(app).db.reader() as session:
        events = session.scalars(
            select(MerchantEvent).where(
                MerchantEvent.merchant_id == mid, MerchantEvent.type == "payout.sent"
            )
        ).all()
    assert [e.payload["data"]["amount"] for e in events] == [batch["amount"]]


def test_a_rerun_creates_nothing_twice(client: FlaskClient, auth: Any, app: Flask) -> None:
    mid = new_merchant(app, rate_bp=0)
    paid_charge(app, mid, 40_000, "FT-R-1")
    today = business_date(utcnow()).isoformat()
    finance = auth("finance1")
    body = {"business_date": today, "merchant_id": mid}
    one = client.post("/api/v1/merchants/payouts/runs", json=body, headers=idem(finance, "r1"))
    two = client.post("/api/v1/merchants/payouts/runs", json=body, headers=idem(finance, "r2"))
    assert one.json["batches"] == two.json["batches"]
    assert "Idempotent-Replayed" not in two.headers
    with svc(app).db.reader() as session:
        count = session.query(PayoutBatch).filter(PayoutBatch.merchant_id == mid).count()
        keys = session.scalars(
            select(JournalTransaction.external_key).where(JournalTransaction.kind == "payout")
        ).all()
    assert count == 1 and keys.count(f"payout:{one.json['batches'][0]['id']}") == 1
    listed = client.get(f"/api/v1/merchants/{mid}/payouts", headers=finance).json
    assert [b["id"] for b in listed["data"]] == [one.json["batches"][0]["id"]]
    vendor = idem(auth("vendor1"), "r3")
    assert_problem(client.post("/api/v1/merchants/payouts/runs", json=body, headers=vendor), 403)
    assert_problem(client.post("/api/v1/merchants/payouts/runs", json=body, headers=finance), 400)


def _post_on(app: Flask, mid: int, day: date, amount: int, kind: str, key: str) -> None:
    payable = ledger.merchant_payable_code(mid)
    legs = (
        [Leg("bank_clearing", amount), Leg(payable, -amount)]
        if kind == "bank_credit"
        else [Leg(payable, amount), Leg("refunds_payable", -amount)]
    )
    with svc(app).db.transaction() as session:
        ledger.post(session, external_key=key, kind=kind, business_date=day, legs=legs)


def test_a_day_with_nothing_due_carries_to_the_next_batch(app: Flask) -> None:
    mid = new_merchant(app, rate_bp=100)
    day1 = business_date(utcnow()) - timedelta(days=3)
    day2 = day1 + timedelta(days=1)
    _post_on(app, mid, day1 - timedelta(days=1), 50_000, "bank_credit", f"c0-{mid}")
    first = payouts.run_payout(svc(app).db, mid, day1 - timedelta(days=1))
    assert first is not None and first.net_amount == 49_500
    _post_on(app, mid, day1, 10_000, "bank_credit", f"c1-{mid}")
    _post_on(app, mid, day1, 30_000, "refund", f"r1-{mid}")
    nothing = payouts.run_payout(svc(app).db, mid, day1)
    assert nothing is not None and nothing.status == "nothing_due" and nothing.net_amount == 0
    assert nothing.journal_key is None
    _post_on(app, mid, day2, 60_000, "bank_credit", f"c2-{mid}")
    carried = payouts.run_payout(svc(app).db, mid, day2)
    assert carried is not None and carried.period_start == day1
    assert carried.gross_amount == 10_000 - 30_000 + 60_000
    assert carried.discount_amount == 100 + 600
    assert carried.net_amount == 40_000 - 700
    # A late run for an earlier day, after a later batch paid it, pays nothing again.
    assert payouts.run_payout(svc(app).db, mid, day1 - timedelta(days=2)) is None
    assert balances(app)[f"merchant:{mid}:payable"] == 0


def test_the_schedule_pays_the_previous_business_day_once(app: Flask) -> None:
    from cashless.schedules import all_schedules

    schedule = next(s for s in all_schedules() if s.name == "merchant-payouts")
    assert schedule.per_business_day and schedule.cron == "30 0 * * *"
    # Cron strings are read in Asia/Ho_Chi_Minh: 23:00 on the 21st fires at 00:30 on the 22nd
    # (17:30 UTC on the 21st), and that run pays business day the 21st.
    from croniter import croniter

    from core.clock import HCM

    fired = croniter(schedule.cron, datetime(2026, 11, 21, 23, 0, tzinfo=HCM)).get_next(datetime)
    assert fired.astimezone(UTC) == datetime(2026, 11, 21, 17, 30, tzinfo=UTC)
    assert business_date(fired) - timedelta(days=1) == date(2026, 11, 21)
    mid = new_merchant(app, rate_bp=0)
    yesterday = business_date(utcnow()) - timedelta(days=1)
    _post_on(app, mid, yesterday, 25_000, "bank_credit", f"s1-{mid}")
    runner = svc(app).runner
    job_id = runner.fire_schedule("merchant-payouts")
    assert job_id == f"merchant-payouts:{business_date(utcnow()).isoformat()}"
    assert runner.fire_schedule("merchant-payouts") == job_id
    batch = wait_for(lambda: _batch(app, mid, yesterday))
    assert batch.net_amount == 25_000
    again = run_payouts_job(business_date(utcnow()).isoformat())
    assert again["business_date"] == yesterday.isoformat()
    with svc(app).db.reader() as session:
        assert session.query(PayoutBatch).filter(PayoutBatch.merchant_id == mid).count() == 1


def _batch(app: Flask, mid: int, day: date) -> PayoutBatch | None:
    with svc(app).db.reader() as session:
        return session.scalars(
            select(PayoutBatch).where(
                PayoutBatch.merchant_id == mid, PayoutBatch.business_date == day
            )
        ).first()


sales = st.lists(
    st.tuples(st.integers(1, 5_000_000), st.integers(0, 5_000_000)), min_size=1, max_size=6
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sales=sales, rate=st.sampled_from([0, 1, 99, 150, 250, 10_000]))
def test_payout_equals_charges_minus_refunds_minus_discount(
    app: Flask, sales: list[tuple[int, int]], rate: int
) -> None:
    """Property: for any day of charges and refunds, the payout is exactly the charges minus
    the refunds minus the per-charge floored discount (or nothing due, never negative)."""
    mid = new_merchant(app, rate_bp=rate)
    refunded = 0
    for index, (amount, back) in enumerate(sales):
        payment_id = paid_charge(app, mid, amount, f"FT-H-{mid}-{index}")
        back = min(back, amount)
        if back:
            refund(
                svc(app).db, payment_id, amount=back, refund_amount_available=amount, actor="test"
            )
            refunded += back
    before = balances(app).get("bank_clearing", 0)
    batch = payouts.run_payout(svc(app).db, mid, business_date(utcnow()))
    assert batch is not None
    charged = sum(amount for amount, _ in sales)
    discount = sum(amount * rate // 10_000 for amount, _ in sales)
    expected = charged - refunded - discount
    assert batch.charges_amount == charged and batch.refunds_amount == refunded
    assert batch.discount_amount == discount
    assert batch.net_amount == max(expected, 0)
    assert balances(app)["bank_clearing"] == before - max(expected, 0)
    assert batch.status == ("posted" if expected > 0 else "nothing_due")


def test_sandbox_bank_books_the_payout_as_a_debit(app: Flask) -> None:
    """In sandbox mode the simulated bank executes the payout, so simulated statements show
    the DR line reconciliation matches against the payout batch."""
    from payments.models import SandboxTransfer
    from payments.service import PaymentsConfig

    mid = new_merchant(app, rate_bp=0)
    day = business_date(utcnow()) - timedelta(days=1)
    _post_on(app, mid, day, 42_000, "bank_credit", f"sb-{mid}")
    cfg = PaymentsConfig.from_settings(svc(app).settings)
    batch = payouts.run_payout(svc(app).db, mid, day, cfg=cfg)
    assert batch is not None
    payouts.run_payout(svc(app).db, mid, day, cfg=cfg)  # a re-run books nothing twice
    with svc(app).db.reader() as session:
        rows = session.query(SandboxTransfer).filter(SandboxTransfer.direction == "DR").all()
    assert [(r.amount, r.description) for r in rows] == [(42_000, batch.description)]
