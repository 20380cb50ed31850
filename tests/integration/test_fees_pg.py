"""Fees on the real PostgreSQL: receipt numbers stay unique per year under concurrency (zero
payables completed at once and counter fees paid from wallets at the same moment), and fee
versions and waiver rules are append-only in the database."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from core import users
from payments import ledger
from payments.fees import service as fees
from payments.fees.models import FeeApplication
from payments.service import PaymentsConfig, credit_wallet, pay_pending_with_wallet

pytestmark = pytest.mark.integration
RECEIPT_RE = re.compile(r"^BL-(\d{4})-(\d{6})$")


def db_of(app: Any) -> Any:
    return app.extensions["cashless"].db


def cfg_of(app: Any) -> PaymentsConfig:
    return PaymentsConfig.from_settings(app.extensions["cashless"].settings)


def clock(iso: str) -> Callable[[], datetime]:
    moment = datetime.fromisoformat(iso).replace(tzinfo=UTC)
    return lambda: moment


def uid(app: Any, username: str) -> int:
    with db_of(app).reader() as session:
        user = session.scalars(select(users.User).where(users.User.username == username)).one()
        return int(user.id)


def run_threads(count: int, work: Callable[[int], None]) -> list[BaseException]:
    errors: list[BaseException] = []
    barrier = threading.Barrier(count)

    def runner(index: int) -> None:
        barrier.wait()
        try:
            work(index)
        except BaseException as exc:  # collected and asserted on below
            errors.append(exc)

    threads = [threading.Thread(target=runner, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return errors


def receipts(app: Any) -> list[str]:
    with db_of(app).reader() as session:
        stmt = select(FeeApplication.receipt_no).where(FeeApplication.receipt_no.is_not(None))
        return [str(r) for r in session.scalars(stmt)]


def test_zero_payable_receipts_are_unique_per_year_under_concurrency(pg_committed: Any) -> None:
    db, cfg = db_of(pg_committed), cfg_of(pg_committed)
    user = uid(pg_committed, "commuter1")
    years = {0: "2025-12-31T16:00:00", 1: "2025-12-31T18:00:00"}  # 2025 and 2026 in Hanoi

    def work(index: int) -> None:
        for _ in range(5):
            fees.file_application(
                db,
                cfg,
                code="household-business-registration",
                channel="online",
                beneficiary_category=None,
                user_id=user,
                clock=clock(years[index % 2]),
            )

    assert run_threads(12, work) == []
    numbers = receipts(pg_committed)
    assert len(numbers) == 60 and len(set(numbers)) == 60
    by_year: dict[str, list[int]] = {}
    for number in numbers:
        match = RECEIPT_RE.match(number)
        assert match, number
        by_year.setdefault(match.group(1), []).append(int(match.group(2)))
    assert {year: len(seqs) for year, seqs in by_year.items()} == {"2025": 30, "2026": 30}
    with db.reader() as session:
        assert ledger.balance(session, "fees_waived") == 60 * 100_000
        assert ledger.balance(session, "fee_waiver_memo") == -60 * 100_000


def test_counter_fees_paid_concurrently_get_distinct_receipts(pg_committed: Any) -> None:
    db, cfg = db_of(pg_committed), cfg_of(pg_committed)
    payers = [uid(pg_committed, name) for name in ("commuter1", "vendor1", "attendant1")]
    payments: list[tuple[int, int]] = []
    with db.transaction() as session:
        for payer in payers:
            credit_wallet(session, user_id=payer, amount=10_000_000, external_key=f"f-{payer}")
    for index in range(15):
        payer = payers[index % 3]
        application = fees.file_application(
            db,
            cfg,
            code="judicial-record-certificate",
            channel="counter",
            beneficiary_category="student" if index % 2 else None,
            user_id=payer,
            clock=clock("2026-03-02T03:00:00"),
        )
        assert application.payment_id is not None
        payments.append((application.payment_id, payer))

    def work(index: int) -> None:
        payment_id, payer = payments[index]
        pay_pending_with_wallet(db, payment_id, payer)

    assert run_threads(15, work) == []
    numbers = receipts(pg_committed)
    assert len(numbers) == 15 and len(set(numbers)) == 15
    with db.reader() as session:
        statuses = set(session.scalars(select(FeeApplication.status)))
        assert statuses == {"paid"}
        assert ledger.balance(session, "fees_waived") == 7 * 100_000  # the 7 students' halves
        assert ledger.balance(session, "fee_revenue") == -(8 * 200_000 + 7 * 100_000)


def test_fee_versions_and_rules_are_append_only_on_postgresql(pg_committed: Any) -> None:
    for statement in (
        "UPDATE fee_versions SET counter_fee = 1",
        "DELETE FROM fee_versions",
        "UPDATE fee_waiver_rules SET effective_to = '2026-01-01'",
        "DELETE FROM fee_waiver_rules",
    ):
        with pytest.raises(DBAPIError, match="append-only"):
            with db_of(pg_committed).transaction() as session:
                session.execute(text(statement))


def test_payable_must_equal_gross_less_waived(pg_app: Any) -> None:
    with pytest.raises(DBAPIError, match="payable_is_gross_less_waived"):
        with db_of(pg_app).transaction() as session:
            session.execute(
                text(
                    "INSERT INTO fee_applications (service_id, applicant_user_id, channel, "
                    "gross_fee, waived_amount, payable, currency, fee_version_id, status, "
                    "business_date, created_at) SELECT s.id, 1, 'counter', 100000, 0, 100001, "
                    "'VND', v.id, 'awaiting_payment', '2026-01-02', now() FROM public_services s "
                    "JOIN fee_versions v ON v.service_id = s.id LIMIT 1"
                )
            )
