"""The ledger's invariants on the real PostgreSQL: enforced by the database, race-proof."""

from __future__ import annotations

import json
import threading
import time
from datetime import date
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from core.clock import utcnow
from payments import bank, ledger
from payments.errors import DayClosed, InsufficientFunds
from payments.ledger import Leg
from payments.models import LedgerAccount
from payments.service import PaymentsConfig, create_vietqr_payment, credit_wallet, spend_from_wallet

pytestmark = pytest.mark.integration


def db_of(app: Any) -> Any:
    return app.extensions["cashless"].db


def test_unbalanced_transaction_is_refused_by_the_database(pg_committed: Any) -> None:
    db = db_of(pg_committed)
    with db.transaction() as session:
        ledger.ensure_account(session, "suspense")
        ledger.ensure_account(session, "bank_clearing")
    with pytest.raises(DBAPIError, match="unbalanced"):
        with db.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO journal_transactions (external_key, kind, business_date, memo, "
                    "created_at) VALUES ('raw-1', 'test', '2026-01-02', '', now())"
                )
            )
            session.execute(
                text(
                    "INSERT INTO postings (transaction_id, account_id, amount, business_date, "
                    "created_at) SELECT t.id, a.id, 500, '2026-01-02', now() FROM "
                    "journal_transactions t, ledger_accounts a WHERE t.external_key = 'raw-1' "
                    "AND a.code = 'suspense'"
                )
            )
    with db.reader() as session:
        assert session.execute(text("SELECT count(*) FROM postings")).scalar() == 0


def test_postings_cannot_be_updated_or_deleted(pg_committed: Any) -> None:
    db = db_of(pg_committed)
    with db.transaction() as session:
        credit_wallet(session, user_id=1, amount=1000, external_key="seed")
    for statement in (
        "UPDATE postings SET amount = 1",
        "DELETE FROM postings",
        "UPDATE journal_transactions SET memo = 'edited'",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with db.transaction() as session:
                session.execute(text(statement))


def test_posting_into_a_closed_day_is_refused(pg_committed: Any) -> None:
    db = db_of(pg_committed)
    with db.transaction() as session:
        ledger.ensure_account(session, "suspense")
        ledger.close_day(session, date(2026, 1, 5), "finance1")
    with pytest.raises(DayClosed):
        with db.transaction() as session:
            ledger.post(
                session,
                external_key="closed-1",
                kind="t",
                business_date=date(2026, 1, 5),
                legs=[Leg("sandbox_funding", 10), Leg("suspense", -10)],
            )
    with pytest.raises(DBAPIError, match="closed"):  # even bypassing the service
        with db.transaction() as session:
            session.execute(
                text(
                    "INSERT INTO journal_transactions (external_key, kind, business_date, memo, "
                    "created_at) VALUES ('raw-closed', 't', '2026-01-05', '', now())"
                )
            )
            session.execute(
                text(
                    "INSERT INTO postings (transaction_id, account_id, amount, business_date, "
                    "created_at) SELECT t.id, a.id, 10, '2026-01-05', now() FROM "
                    "journal_transactions t, ledger_accounts a WHERE t.external_key = 'raw-closed' "
                    "AND a.code = 'suspense'"
                )
            )


def test_100_concurrent_spends_never_overdraw(pg_committed: Any) -> None:
    db = db_of(pg_committed)
    with db.transaction() as session:
        credit_wallet(session, user_id=1, amount=50_000, external_key="fund-100")
    barrier = threading.Barrier(20)
    outcomes: list[int] = []
    lock = threading.Lock()

    def spend(worker: int) -> None:
        barrier.wait()
        for index in range(5):
            amount = 700 + (worker * 5 + index) % 7 * 100
            try:
                with db.transaction() as session:
                    spend_from_wallet(
                        session,
                        user_id=1,
                        amount=amount,
                        purpose="ticket",
                        owner_ref=None,
                        credit_account="transit_revenue",
                        external_key=f"spend-{worker}-{index}",
                    )
                result = amount
            except InsufficientFunds:
                result = 0
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 100
    with db.reader() as session:
        left = ledger.spendable(session, 1)
        revenue = -ledger.balance(session, "transit_revenue")
    assert left >= 0
    assert sum(outcomes) == 50_000 - left == revenue
    assert any(o == 0 for o in outcomes)  # the wallet did run dry: the guard was exercised


def test_same_notification_50_times_concurrently_posts_once(pg_committed: Any) -> None:
    app = pg_committed
    db = db_of(app)
    cfg = PaymentsConfig.from_settings(app.extensions["cashless"].settings)
    with db.transaction() as session:
        payment = create_vietqr_payment(
            session,
            cfg,
            amount=15000,
            purpose="charge",
            owner_ref=None,
            credit_account="merchant:1:payable",
            merchant_id=1,
        )
    body = json.dumps(
        {
            "transaction_id": "FT-RACE",
            "account_number": cfg.account,
            "amount": 15000,
            "credited_at": utcnow().isoformat(),
            "description": payment.reference,
        }
    ).encode()
    barrier = threading.Barrier(50)
    statuses: list[str] = []
    lock = threading.Lock()

    def deliver() -> None:
        client = app.test_client()
        header = bank.sign(cfg.webhook_secret, body, int(time.time()))
        barrier.wait()
        response = client.post(
            "/api/v1/bank/notifications",
            data=body,
            headers={"X-Signature": header, "Content-Type": "application/json"},
        )
        with lock:
            statuses.append(response.json["status"])

    threads = [threading.Thread(target=deliver) for _ in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == ["duplicate"] * 49 + ["matched"]
    with db.reader() as session:
        assert ledger.balance(session, "bank_clearing") == 15000
        assert (
            session.execute(
                text("SELECT count(*) FROM journal_transactions WHERE kind = 'bank_credit'")
            ).scalar()
            == 1
        )


operations = st.lists(
    st.tuples(
        st.sampled_from(["topup", "spend", "refund"]), st.integers(1, 30).map(lambda n: n * 1000)
    ),
    max_size=12,
)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=operations)
def test_random_money_sequences_stay_balanced(pg_app: Any, ops: list[tuple[str, int]]) -> None:
    """Whatever happens, every transaction balances and no wallet goes below zero."""
    from payments.service import refund

    db = db_of(pg_app)
    spent: list[int] = []
    tag = f"{time.monotonic_ns()}"
    for index, (kind, amount) in enumerate(ops):
        key = f"{tag}-{index}"
        try:
            if kind == "topup":
                with db.transaction() as session:
                    credit_wallet(session, user_id=2, amount=amount, external_key=key)
            elif kind == "spend":
                with db.transaction() as session:
                    payment = spend_from_wallet(
                        session,
                        user_id=2,
                        amount=amount,
                        purpose="ticket",
                        owner_ref=None,
                        credit_account="transit_revenue",
                        external_key=key,
                    )
                    spent.append(payment.id)
            elif spent:
                payment_id = spent.pop()
                from payments.models import Payment

                with db.reader() as session:
                    paid = session.get(Payment, payment_id)
                    available = paid.amount - paid.refunded_amount
                refund(
                    db,
                    payment_id,
                    amount=min(amount, available),
                    refund_amount_available=available,
                    actor="prop",
                )
        except InsufficientFunds:
            pass
    with db.reader() as session:
        unbalanced = session.execute(
            text(
                "SELECT transaction_id FROM postings GROUP BY transaction_id "
                "HAVING sum(amount) <> 0 OR count(*) < 2"
            )
        ).all()
        assert unbalanced == []
        total = session.execute(text("SELECT coalesce(sum(amount), 0) FROM postings")).scalar()
        assert total == 0
        for account in session.query(LedgerAccount).filter(LedgerAccount.no_overdraft):
            assert account.balance <= 0
            posted = session.execute(
                text("SELECT coalesce(sum(amount),0) FROM postings WHERE account_id = :a"),
                {"a": account.id},
            ).scalar()
            assert posted == account.balance
