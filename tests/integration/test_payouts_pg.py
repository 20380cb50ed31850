"""Payouts on the real PostgreSQL: concurrent runs make one batch and one journal transaction,
and (property) a payout is the day's charges minus refunds minus the floored discount."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from core.clock import business_date, utcnow
from merchants import payouts, service
from merchants.models import PayoutBatch
from payments import ledger
from payments.models import JournalTransaction
from payments.service import refund
from tests.api.test_payouts_api import paid_charge
from tests.integration.test_parking_pg import db_of, race

pytestmark = pytest.mark.integration


def merchant(app: Any, rate: int) -> int:
    application = service.MerchantApplication(
        legal_name="Hộ kinh doanh chợ Hôm",
        short_name="Chợ Hôm",
        category="market_vendor",
        settlement_bank_bin="970418",
        settlement_account="21410000999999",
        discount_rate_bp=rate,
    )
    return int(service.onboard_merchant(db_of(app), application, actor="test").id)


def test_concurrent_runs_make_one_batch(pg_committed: Any) -> None:
    mid = merchant(pg_committed, 100)
    paid_charge(pg_committed, mid, 70_000, "FT-PG-P1")
    day = business_date(utcnow())
    results = race(6, lambda i: payouts.run_payout(db_of(pg_committed), mid, day))
    assert {r.id for r in results} == {results[0].id}, results
    with db_of(pg_committed).reader() as session:
        batches = session.scalar(select(func.count()).where(PayoutBatch.merchant_id == mid))
        posted = session.scalar(
            select(func.count()).where(JournalTransaction.external_key == f"payout:{results[0].id}")
        )
        payable = ledger.balance(session, ledger.merchant_payable_code(mid))
    assert batches == 1 and posted == 1 and payable == 0
    assert results[0].net_amount == 70_000 - 700


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    sales=st.lists(
        st.tuples(st.integers(1, 2_000_000), st.integers(0, 2_000_000)), min_size=1, max_size=5
    ),
    rate=st.sampled_from([0, 75, 150, 10_000]),
)
def test_payout_property_on_postgresql(
    pg_app: Any, sales: list[tuple[int, int]], rate: int
) -> None:
    mid = merchant(pg_app, rate)
    refunded = 0
    for index, (amount, back) in enumerate(sales):
        payment_id = paid_charge(pg_app, mid, amount, f"FT-PGH-{mid}-{index}")
        back = min(back, amount)
        if back:
            refund(
                db_of(pg_app), payment_id, amount=back, refund_amount_available=amount, actor="test"
            )
            refunded += back
    batch = payouts.run_payout(db_of(pg_app), mid, business_date(utcnow()))
    assert batch is not None
    discount = sum(amount * rate // 10_000 for amount, _ in sales)
    expected = sum(amount for amount, _ in sales) - refunded - discount
    assert batch.net_amount == max(expected, 0) and batch.discount_amount == discount
