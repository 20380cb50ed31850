"""The set-based batch path for bank credits on the real PostgreSQL.

The property: for any mix of credits (matching, wrong amount, unknown reference, no reference,
a stall's static code, late, already paid or cancelled charges, a closed day, the wrong
account, transaction ids repeated inside and across batches), `receive_many` (set-based on
PostgreSQL) leaves exactly what `record_credit` one by one leaves (`receive_each`) on an
identical copy of the data: outcomes, notifications, payments, journal transactions and
their legs, balances, merchant events and deliveries, `payment.succeeded` handler calls and
live messages. Each run happens in a savepoint that is rolled back, so both start from the
same state. The outcomes are also checked against a small independent model.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text

from core.clock import business_date, utcnow
from core.events import handlers
from payments import bank, ledger, notifications
from payments.models import (
    MerchantEvent,
    Payment,
    StaticCode,
    WebhookDelivery,
    WebhookEndpoint,
)
from payments.notifications import IncomingCredit
from payments.references import new_charge_reference, stall_reference
from payments.service import PaymentsConfig

pytestmark = pytest.mark.integration

STALL_ID, STALL_MERCHANT = 990_001, 4_243
NOW = utcnow()  # when the world's charges were made (the same in both runs)
UNKNOWN_STALL = 990_002


def db_of(app: Any) -> Any:
    return app.extensions["cashless"].db


def cfg_of(app: Any) -> PaymentsConfig:
    return PaymentsConfig.from_settings(app.extensions["cashless"].settings)


# -- the world both runs start from -------------------------------------------------------------
@dataclass(frozen=True)
class Charge:
    reference: str
    amount: int
    status: str
    purpose: str
    credit_account: str
    merchant_id: int | None


def make_world() -> list[Charge]:
    """Pending charges to merchants (one not seen before), a wallet top-up, a ticket, and
    charges that are expired, cancelled and already paid."""
    rows = [
        ("pending", "charge", "merchant:4242:payable", 4242),
        ("pending", "charge", "merchant:4242:payable", 4242),
        ("pending", "charge", "merchant:4244:payable", 4244),
        ("pending", "topup", "wallet:880001", None),
        ("pending", "ticket", "transit_revenue", None),
        ("expired", "charge", "merchant:4242:payable", 4242),
        ("cancelled", "charge", "merchant:4242:payable", 4242),
        ("succeeded", "charge", "merchant:4242:payable", 4242),
    ]
    return [
        Charge(new_charge_reference(), 1000 * (index + 3), status, purpose, account, merchant)
        for index, (status, purpose, account, merchant) in enumerate(rows)
    ]


def seed(db: Any, world: list[Charge]) -> None:
    now = NOW
    with db.transaction() as session:
        for charge in world:
            session.add(
                Payment(
                    reference=charge.reference,
                    amount=charge.amount,
                    method="vietqr",
                    status=charge.status,
                    purpose=charge.purpose,
                    owner_ref=f"test:{charge.reference}",
                    credit_account=charge.credit_account,
                    merchant_id=charge.merchant_id,
                    business_date=business_date(now),
                    created_at=now,
                    expires_at=now + timedelta(minutes=15),
                    succeeded_at=now if charge.status == "succeeded" else None,
                )
            )
        session.add(
            StaticCode(
                reference=stall_reference(STALL_ID),
                stall_id=STALL_ID,
                merchant_id=STALL_MERCHANT,
                credit_account=f"merchant:{STALL_MERCHANT}:payable",
                terminal_label="SAP990001",
                payload="x",
            )
        )
        session.add(
            WebhookEndpoint(
                merchant_id=4242, url="http://127.0.0.1:9/hook", secrets=["s"], active=True
            )
        )
        ledger.close_day(session, business_date(now) - timedelta(days=1), "test")


# -- the credits ----------------------------------------------------------------------------------
KINDS = (
    "match",
    "wrong_amount",
    "unknown_reference",
    "no_reference",
    "stall",
    "unknown_stall",
    "late",
    "cancelled",
    "already_paid",
    "wrong_account",
    "closed_day",
    "repeat",
)


def make_credits(
    world: list[Charge], picks: list[tuple[str, int]], account: str, tag: str
) -> list[IncomingCredit]:
    pending = [c for c in world if c.status == "pending"]
    by_status = {c.status: c for c in world if c.status != "pending"}
    now = utcnow()
    credits: list[IncomingCredit] = []
    for index, (kind, n) in enumerate(picks):
        if kind == "repeat" and credits:
            credits.append(credits[n % len(credits)])  # the same transaction id again
            continue
        target = pending[n % len(pending)]
        amount, note, to, at = target.amount, f"{target.reference} thanh toan", account, now
        if kind == "wrong_amount":
            amount += 500
        elif kind == "unknown_reference":
            note = f"CK {new_charge_reference()}"
        elif kind in ("no_reference", "repeat"):
            note = "chuyen tien"
        elif kind in ("stall", "unknown_stall"):
            stall = STALL_ID if kind == "stall" else UNKNOWN_STALL
            amount, note = 1000 * (n + 1), f"{stall_reference(stall)} rau"
        elif kind in ("late", "cancelled", "already_paid"):
            status = {"late": "expired", "cancelled": "cancelled"}.get(kind, "succeeded")
            amount, note = by_status[status].amount, by_status[status].reference
        elif kind == "wrong_account":
            to = "999000111"
        elif kind == "closed_day":
            at = now - timedelta(days=1)
        credits.append(
            IncomingCredit(
                transaction_id=f"FT{tag}{index:03d}",
                account_number=to,
                amount=amount,
                credited_at=at,
                description=note,
                counterparty_name=f"PAYER {index}" if n % 2 else None,
                counterparty_account=f"01234{index:05d}" if n % 3 else None,
                counterparty_bank_bin="970436" if n % 3 else None,
            )
        )
    return credits


def model(world: list[Charge], credits: list[IncomingCredit], account: str) -> list[tuple]:
    """What must come out, worked out independently of the code under test."""
    status = {c.reference: c.status for c in world}
    amounts = {c.reference: c.amount for c in world}
    seen: set[str] = set()
    out: list[tuple] = []
    for credit in credits:
        words = credit.description.split()
        ref = words[0] if words and words[0][:2] in ("HC", "HS") else None
        ref = words[1] if len(words) > 1 and words[0] == "CK" else ref
        if credit.transaction_id in seen:
            out.append(("duplicate", None))
        elif credit.account_number != account:
            out.append(("suspense", "wrong_account"))
        elif ref is None:
            out.append(("suspense", "no_reference"))
        elif ref.startswith("HS"):
            known = ref == stall_reference(STALL_ID)
            out.append(("matched", None) if known else ("suspense", "unknown_reference"))
        elif ref not in status:
            out.append(("suspense", "unknown_reference"))
        elif status[ref] != "pending":
            late = "late_credit" if status[ref] == "expired" else f"payment_{status[ref]}"
            out.append(("suspense", late))
        elif credit.amount != amounts[ref]:
            out.append(("suspense", "amount_mismatch"))
        else:
            status[ref] = "succeeded"
            out.append(("matched", None))
        seen.add(credit.transaction_id)
    return out


# -- running one path in a savepoint and taking a picture ---------------------------------------
@dataclass
class Recorder:
    handled: list[dict[str, Any]] = field(default_factory=list)
    live: list[tuple[str, dict[str, Any]]] = field(default_factory=list)


@pytest.fixture
def recorder(pg_app: Any) -> Iterator[Recorder]:
    """Records handler calls and live messages; keeps jobs in the outbox (nothing is sent)."""
    db = db_of(pg_app)
    seen = Recorder()
    hooks = list(db.after_commit_hooks)
    db.after_commit_hooks[:] = [lambda s: seen.live.extend(s.info.pop("live", []))]
    handlers.register("payment.succeeded", lambda _s, payload: seen.handled.append(payload))
    yield seen
    db.after_commit_hooks[:] = hooks


Path = Callable[[Any, PaymentsConfig, list[IncomingCredit]], list[Any]]


def run(
    app: Any, rec: Recorder, world: list[Charge], batches: list[list[IncomingCredit]], path: Path
) -> dict[str, Any]:
    db = db_of(app)
    connection = db.sessionmaker.kw["bind"]
    savepoint = connection.begin_nested()
    try:
        seed(db, world)
        marks = _marks(db)
        rec.handled.clear()
        rec.live.clear()
        outcomes = [o for batch in batches for o in path(db, cfg_of(app), batch)]
        return picture(db, rec, outcomes, marks)
    finally:
        savepoint.rollback()


def _marks(db: Any) -> dict[str, int]:
    with db.reader() as session:
        return {
            table: int(session.execute(text(f"SELECT coalesce(max(id), 0) FROM {table}")).scalar())
            for table in ("payments", "merchant_events", "bank_notifications")
        }


def picture(db: Any, rec: Recorder, outcomes: list[Any], marks: dict[str, int]) -> dict[str, Any]:
    """Everything the run left behind, with database ids replaced by stable keys."""
    with db.reader() as session:
        keys = {
            p.id: p.reference or p.external_key
            for p in session.scalars(select(Payment).where(Payment.id > 0))
        }

        def key(payment_id: Any) -> Any:
            return keys.get(payment_id) if payment_id is not None else None

        def scrub(payload: dict[str, Any]) -> dict[str, Any]:
            out = {k: v for k, v in payload.items() if k not in ("succeeded_at", "timestamp")}
            if "payment_id" in out:
                out["payment_id"] = key(out["payment_id"])
            if isinstance(out.get("data"), dict):
                out["data"] = scrub(out["data"])
            return out

        return {
            "outcomes": [(o.status, o.reason, key(o.payment_id)) for o in outcomes],
            "notifications": _notifications(session, key, marks),
            "payments": _payments(session, marks),
            "journal": _journal(session, key),
            "balances": dict(
                session.execute(text("SELECT code, balance FROM ledger_accounts")).all()
            ),
            "events": [
                (e.merchant_id, e.type, scrub(e.payload), _deliveries(session, e.id))
                for e in session.scalars(
                    select(MerchantEvent)
                    .where(MerchantEvent.id > marks["merchant_events"])
                    .order_by(MerchantEvent.id)
                )
            ],
            "handled": [scrub(p) for p in rec.handled],
            "live": [(key(int(c.split(":")[1])), scrub(m)) for c, m in rec.live],
        }


def _deliveries(session: Any, event_id: int) -> int:
    return len(
        list(
            session.scalars(select(WebhookDelivery.id).where(WebhookDelivery.event_id == event_id))
        )
    )


def _notifications(session: Any, key: Any, marks: dict[str, int]) -> list[tuple]:
    rows = session.execute(
        text(
            "SELECT transaction_id, account_number, amount, credited_at, description,"
            " counterparty_name, counterparty_account, counterparty_bank_bin, status, reason,"
            " reference, payment_id, business_date, resolved_at FROM bank_notifications"
            " WHERE id > :mark ORDER BY transaction_id"
        ),
        {"mark": marks["bank_notifications"]},
    )
    return [(*row[:11], key(row[11]), *row[12:]) for row in rows]


def _payments(session: Any, marks: dict[str, int]) -> dict[str, tuple]:
    columns = (
        "amount, currency, method, status, purpose, owner_ref, credit_account, payer_user_id,"
        " merchant_id, stall_id, description, qr_payload, business_date, expires_at,"
        " succeeded_at IS NOT NULL, cancelled_at, refunded_amount, bank_transaction_id,"
        " counterparty_account, counterparty_bank_bin, counterparty_name"
    )
    rows = session.execute(
        text(
            f"SELECT coalesce(reference, external_key), {columns},"
            " CASE WHEN id > :mark AND reference IS NULL THEN created_at END"
            " FROM payments WHERE id > :mark OR owner_ref LIKE 'test:%'"
        ),
        {"mark": marks["payments"]},
    )
    return {row[0]: tuple(row[1:]) for row in rows}


def _journal(session: Any, key: Any) -> list[tuple]:
    rows = session.execute(
        text(
            "SELECT t.external_key, t.kind, t.memo, t.business_date, t.payment_id,"
            " array_agg(a.code || '=' || p.amount ORDER BY p.id),"
            " count(DISTINCT s.transaction_id), t.reverses_id"
            " FROM journal_transactions t JOIN postings p ON p.transaction_id = t.id"
            " JOIN ledger_accounts a ON a.id = p.account_id"
            " LEFT JOIN journal_seals s ON s.transaction_id = t.id"
            " WHERE t.external_key LIKE 'bank:%' GROUP BY t.id ORDER BY t.id"
        )
    )
    return [(*row[:4], key(row[4]), list(row[5]), *row[6:]) for row in rows]


# -- the property ---------------------------------------------------------------------------------
picks = st.lists(st.tuples(st.sampled_from(KINDS), st.integers(0, 11)), min_size=1, max_size=16)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(picks=picks, cuts=st.lists(st.integers(1, 15), max_size=3))
def test_set_based_batches_equal_one_by_one(
    pg_app: Any, recorder: Recorder, picks: list[tuple[str, int]], cuts: list[int]
) -> None:
    cfg = cfg_of(pg_app)
    world = make_world()
    credits = make_credits(world, picks, cfg.account, secrets.token_hex(3).upper())
    bounds = sorted({c for c in cuts if c < len(credits)} | {0, len(credits)})
    batches = [credits[a:b] for a, b in itertools.pairwise(bounds)]
    one_by_one = run(pg_app, recorder, world, batches, notifications.receive_each)
    set_based = run(pg_app, recorder, world, batches, notifications.receive_many)
    for part in one_by_one:
        assert set_based[part] == one_by_one[part], part
    expected = model(world, credits, cfg.account)
    assert [(s, r) for s, r, _ in set_based["outcomes"]] == expected
    assert len(set_based["journal"]) == sum(1 for s, _ in expected if s != "duplicate")
    assert all(seals == 1 for *_, seals, _ in set_based["journal"])


# -- more behaviour of the path -------------------------------------------------------------------
def test_a_batch_is_a_handful_of_statements(pg_app: Any, recorder: Recorder) -> None:
    """A batch of 200 credits (matched and suspense, one new stall payment) takes a fixed
    number of statements, not ~20 per credit: 17, plus two per webhook delivery (two
    events for a merchant with an endpoint here), once the accounts exist."""
    from sqlalchemy import event

    db = db_of(pg_app)
    cfg = cfg_of(pg_app)
    world = make_world()
    picks = [("match", n) for n in range(5)] + [("no_reference", 0)] * 194 + [("stall", 2)]
    credits = make_credits(world, picks, cfg.account, "STMT")
    statements: list[str] = []

    def count(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    connection = db.sessionmaker.kw["bind"]
    savepoint = connection.begin_nested()
    try:
        seed(db, world)
        with db.transaction() as session:  # accounts are made on first use: not counted here
            codes = {c.credit_account for c in world} | {f"merchant:{STALL_MERCHANT}:payable"}
            ledger.account_refs(session, [*codes, "bank_clearing", "suspense"])
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            outcomes = notifications.receive_many(db, cfg, credits)
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
    finally:
        savepoint.rollback()
    assert [o.status for o in outcomes].count("matched") == 6
    assert len(statements) == 17 + 4, statements


def test_batch_endpoint_on_postgresql(pg_app: Any, recorder: Recorder) -> None:
    """Through HTTP: results in order, duplicates inside the batch, money posted once."""
    db = db_of(pg_app)
    cfg = cfg_of(pg_app)
    world = make_world()
    seed(db, world)
    picks = [("match", 0), ("repeat", 0), ("match", 0), ("wrong_amount", 1), ("stall", 4)]
    credits = make_credits(world, picks, cfg.account, "HTTP")
    body = {
        "notifications": [
            {
                "transaction_id": c.transaction_id,
                "account_number": c.account_number,
                "amount": c.amount,
                "credited_at": c.credited_at.isoformat(),
                "description": c.description,
                "counterparty_name": c.counterparty_name,
            }
            for c in credits
        ]
    }
    raw = json.dumps(body).encode()
    with db.reader() as session:
        before = ledger.balance(session, "bank_clearing")
    response = pg_app.test_client().post(
        "/api/v1/bank/notifications/batch",
        data=raw,
        headers={
            "X-Signature": bank.sign(cfg.webhook_secret, raw, int(time.time())),
            "Content-Type": "application/json",
        },
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    results = response.json["results"]
    assert [r["status"] for r in results] == [
        "matched",
        "duplicate",
        "suspense",
        "suspense",
        "matched",
    ]
    with db.reader() as session:
        paid = session.get(Payment, results[0]["payment_id"])
        assert (paid.status, paid.reference) == ("succeeded", world[0].reference)
        assert results[2]["payment_id"] == paid.id  # the second credit found it paid
        stall = session.get(Payment, results[4]["payment_id"])
        assert (stall.stall_id, stall.status, stall.amount) == (STALL_ID, "succeeded", 5000)
        posted = world[0].amount * 2 + world[1].amount + 500 + 5000
        assert ledger.balance(session, "bank_clearing") - before == posted
    channels = [channel for channel, message in recorder.live if message["type"] == "status"]
    assert channels == [f"payment:{paid.id}", f"payment:{stall.id}"]


def pending_charges(db: Any, merchant_id: int, amounts: list[int]) -> list[str]:
    """Pending charges of one merchant, committed; their references."""
    references = [new_charge_reference() for _ in amounts]
    with db.transaction() as session:
        for reference, amount in zip(references, amounts, strict=True):
            session.add(
                Payment(
                    reference=reference,
                    amount=amount,
                    method="vietqr",
                    status="pending",
                    purpose="charge",
                    owner_ref="race",
                    credit_account=f"merchant:{merchant_id}:payable",
                    merchant_id=merchant_id,
                    business_date=business_date(NOW),
                    created_at=NOW,
                )
            )
    return references


def at_once(app: Any, batches: list[list[IncomingCredit]]) -> list[list[str]]:
    """`receive_many` of each batch in its own thread, all started together."""
    import threading

    db, cfg = db_of(app), cfg_of(app)
    barrier = threading.Barrier(len(batches))
    answers: list[list[str]] = [[] for _ in batches]
    errors: list[BaseException] = []

    def post(index: int) -> None:
        barrier.wait()
        try:
            answers[index] = [o.status for o in notifications.receive_many(db, cfg, batches[index])]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(n,)) for n in range(len(batches))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    return answers


def test_concurrent_batches_neither_deadlock_nor_lose_money(pg_committed: Any) -> None:
    """Six clients post batches for charges of one merchant at once (the hot rows: bank
    clearing and that merchant's payable): every credit is matched once, nothing deadlocks,
    and the balances move by exactly the sum."""
    db, cfg = db_of(pg_committed), cfg_of(pg_committed)
    amounts = [1000 * (n % 7 + 1) for n in range(240)]
    references = pending_charges(db, 4250, amounts)
    credits = [
        IncomingCredit(f"FTRACE{n:04d}", cfg.account, amount, utcnow(), f"{reference} tra")
        for n, (reference, amount) in enumerate(zip(references, amounts, strict=True))
    ]
    with db.reader() as session:
        before = ledger.balance(session, "bank_clearing")
    answers = at_once(pg_committed, [credits[n : n + 40] for n in range(0, len(credits), 40)])
    assert [status for batch in answers for status in batch] == ["matched"] * len(credits)
    with db.reader() as session:
        assert ledger.balance(session, "bank_clearing") - before == sum(amounts)
        assert ledger.balance(session, "merchant:4250:payable") == -sum(amounts)


def test_overlapping_batches_in_opposite_orders_post_each_credit_once(pg_committed: Any) -> None:
    """A bank retrying a batch while the first attempt still runs, in another order: each
    credit is matched by one of them and a duplicate in the other, and the money moves once
    (the notifications are inserted in transaction id order, so the two never deadlock)."""
    db, cfg = db_of(pg_committed), cfg_of(pg_committed)
    references = pending_charges(db, 4251, [5000] * 300)
    credits = [
        IncomingCredit(f"FTRETRY{n:03d}", cfg.account, 5000, utcnow(), reference)
        for n, reference in enumerate(references)
    ]
    forward, backward = at_once(pg_committed, [credits, credits[::-1]])
    pairs = zip(forward, backward[::-1], strict=True)
    assert all(sorted(pair) == ["duplicate", "matched"] for pair in pairs)
    with db.reader() as session:
        assert ledger.balance(session, "merchant:4251:payable") == -5000 * len(credits)


def test_text_and_times_are_stored_exactly(pg_app: Any, recorder: Recorder) -> None:
    """Vietnamese text, quotes, backslashes and micro-seconds survive the batch statements."""
    from payments.models import BankNotification

    db, cfg = db_of(pg_app), cfg_of(pg_app)
    at = utcnow().replace(microsecond=123456)
    note = 'Chuyển tiền "chợ Sấu" \\ 50% — ok'
    credit = IncomingCredit(
        "FTTEXT1", cfg.account, 7000, at, note, "Nguyễn Thị Ánh", "0123456789", "970436"
    )
    assert notifications.receive_many(db, cfg, [credit])[0].reason == "no_reference"
    with db.reader() as session:
        row = session.scalars(
            select(BankNotification).where(BankNotification.transaction_id == "FTTEXT1")
        ).one()
        assert (row.description, row.counterparty_name, row.credited_at) == (
            note,
            "Nguyễn Thị Ánh",
            at,
        )
        assert (row.counterparty_account, row.counterparty_bank_bin) == ("0123456789", "970436")
