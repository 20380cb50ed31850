"""The bank's notifications out of order, late and repeated, on PostgreSQL, over real HTTP.

One day at the bank, fixed below: wallet top-ups, market charges, a stall's static code, a
top-up and a charge each paid twice by their payers, wrong amounts, a reference we never
issued, a note without one, and a top-up and a charge that expired before their credits came.
The bank resends some notifications (the same transaction id, the same body). Every order in
which the bank might deliver them goes through the signed webhook of a live server: by time,
reversed, seeded shuffles, batches that repeat earlier singles and singles that repeat batch
items, and several threads at once. Each order starts from the same freshly seeded data
(every table truncated, the seeded rows put back).

After every order the ledger is the one worked out by hand in EXPECTED_*: the same payments
succeeded, the same suspense entries, every balance to the dong, every journal transaction
balanced, each bank transaction posted once, each payment's events emitted once. Where the
rules make an outcome depend on arrival order (which of two transfers for one charge wins;
whether a wrong amount came before or after the right one), a small model of the rules
(`answers`) says what each sequential order must give, and the concurrent orders must give
one of the possibilities, consistently.
"""

from __future__ import annotations

import json
import random
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import Integer, Table, select, text

from cashless.demo import seed_demo
from cashless.models import metadata
from core.clock import utcnow
from core.events import handlers
from core.users import register_commuter
from merchants.service import MerchantApplication, create_charge, my_merchant, onboard_merchant
from merchants.service import stall_code as stall_qr
from payments import bank, ledger
from payments.models import Payment
from payments.references import new_charge_reference
from payments.service import PaymentsConfig, expire_due_payments, topup_wallet
from tests.conftest import ThreadedServer, free_port
from tests.integration.conftest import _pg_app, truncate_all

pytestmark = pytest.mark.integration


# -- the day at the bank --------------------------------------------------------------------------
@dataclass(frozen=True)
class Charge:
    """A pending VietQR payment made before the bank speaks."""

    label: str
    owner: str  # whose account it credits: rider_a, rider_b (wallets), market, hom (merchants)
    amount: int
    expires_first: bool = False  # the expiry job runs before any credit arrives


CHARGES = (
    Charge("T1", "rider_a", 100_000),
    Charge("T2", "rider_b", 50_000),
    Charge("T3", "rider_a", 20_000, expires_first=True),
    Charge("C1", "market", 15_000),
    Charge("C2", "market", 32_000),
    Charge("C3", "hom", 47_000),
    Charge("C4", "hom", 9_000),
    Charge("C5", "market", 12_000, expires_first=True),
)
TOPUP_OWNERS = ("rider_a", "rider_b")


@dataclass(frozen=True)
class Credit:
    """One credit the bank notifies: its transaction id, what the payer meant to pay, the
    amount, the transfer note as the payer's bank wrote it (`{ref}` is the reference), and
    how many times the bank sends the same notification again."""

    txn: str
    target: str  # a charge's label, STALL1 / STALL2 (static codes), UNKNOWN, or NONE
    amount: int
    note: str = "{ref}"
    resends: int = 0


CREDITS = (
    Credit("FT26001", "T1", 100_000, "{ref} nap vi", resends=2),
    Credit("FT26002", "T2", 50_000, "NAP VI {lower}"),
    Credit("FT26003", "T2", 50_000, "{ref} chuyen lai"),  # the payer paid T2 a second time
    Credit("FT26004", "T3", 20_000, "{ref} nap vi", resends=1),  # T3 has expired
    Credit("FT26005", "C1", 15_000, "{ref} thanh toan rau", resends=1),
    Credit("FT26006", "C2", 23_000),  # 32,000 asked: wrong amount, C2 stays pending
    Credit("FT26007", "C3", 47_000, "CK {spaced}"),
    Credit("FT26008", "C3", 47_000, resends=1),  # a second payment for C3
    Credit("FT26009", "C4", 90_000),  # a zero too many: 9,000 asked
    Credit("FT26010", "C4", 9_000, "{ref}-mua hoa"),
    Credit("FT26011", "C5", 12_000, resends=1),  # C5 has expired
    Credit("FT26012", "STALL1", 8_000, "{ref} mua rau", resends=1),
    Credit("FT26013", "STALL2", 5_000),
    Credit("FT26014", "UNKNOWN", 7_000, resends=1),  # a valid reference we never issued
    Credit("FT26015", "NONE", 3_000, "chuyen tien"),  # the payer's bank dropped the note
)
BY_TXN = {credit.txn: credit for credit in CREDITS}

# Worked out by hand from the two tables (raw ledger balances: debits positive, credits
# negative). Paid once each: T1 100,000; T2 50,000; C1 15,000; C3 47,000; C4 9,000; stall
# codes 8,000 + 5,000. Everything else is in suspense: T2's and C3's second payments (50,000,
# 47,000), the late T3 and C5 (20,000, 12,000), the wrong amounts for C2 and C4 (23,000,
# 90,000), the unknown reference (7,000) and the note without one (3,000).
EXPECTED_BALANCES = {
    "bank_clearing": 486_000,  # each of the 15 credits once
    "rider_a": -100_000,  # T1; T3's 20,000 came after it expired
    "rider_b": -50_000,  # T2, once
    "market": -28_000,  # C1 15,000 + STALL1 8,000 + STALL2 5,000
    "hom": -56_000,  # C3 47,000 + C4 9,000
    "suspense": -252_000,  # 50 + 20 + 23 + 47 + 90 + 12 + 7 + 3 thousand
}
EXPECTED_STATUS = {
    "T1": ("succeeded", 100_000),
    "T2": ("succeeded", 50_000),
    "T3": ("expired", 20_000),
    "C1": ("succeeded", 15_000),
    "C2": ("pending", 32_000),
    "C3": ("succeeded", 47_000),
    "C4": ("succeeded", 9_000),
    "C5": ("expired", 12_000),
    "STALL1": ("succeeded", 8_000),
    "STALL2": ("succeeded", 5_000),
}
# C4's 90,000 is `amount_mismatch` if it came while C4 was pending, `payment_succeeded` after
# C4 was paid: the reason says what the charge was when the credit arrived.
C4_WRONG = "FT26009"


def expected_suspense(c4_reason: str) -> list[tuple[str, int, str]]:
    return sorted(
        [
            ("T2", 50_000, "payment_succeeded"),
            ("C3", 47_000, "payment_succeeded"),
            ("T3", 20_000, "late_credit"),
            ("C5", 12_000, "late_credit"),
            ("C2", 23_000, "amount_mismatch"),
            ("C4", 90_000, c4_reason),
            ("", 7_000, "unknown_reference"),
            ("", 3_000, "no_reference"),
        ]
    )


SUCCEEDED = sorted(label for label, (status, _) in EXPECTED_STATUS.items() if status == "succeeded")
MERCHANT_EVENTS = Counter(
    {("payment.succeeded", label): 1 for label in ("C1", "C3", "C4", "STALL1", "STALL2")}
    | {("payment.expired", "C5"): 1}  # made by the expiry job before the credits
)


# -- the model of the rules (SPEC §4, §13), for the answers of one sequential order ---------------
@dataclass(frozen=True)
class Answer:
    status: str  # matched | suspense | duplicate
    label: str  # the payment it concerns ("" for none)
    reason: str | None = None


def answers(sequence: list[str]) -> list[Answer]:
    """What each delivery of `sequence` (transaction ids, resends included) must be answered."""
    state = {c.label: "expired" if c.expires_first else "pending" for c in CHARGES}
    asked = {c.label: c.amount for c in CHARGES}
    seen: set[str] = set()
    out: list[Answer] = []
    for txn in sequence:
        credit = BY_TXN[txn]
        target = credit.target
        if txn in seen:
            out.append(Answer("duplicate", ""))
        elif target == "UNKNOWN":
            out.append(Answer("suspense", "", "unknown_reference"))
        elif target == "NONE":
            out.append(Answer("suspense", "", "no_reference"))
        elif target.startswith("STALL"):
            out.append(Answer("matched", target))
        elif state[target] == "expired":
            out.append(Answer("suspense", target, "late_credit"))
        elif state[target] == "succeeded":
            out.append(Answer("suspense", target, "payment_succeeded"))
        elif credit.amount != asked[target]:
            out.append(Answer("suspense", target, "amount_mismatch"))
        else:
            state[target] = "succeeded"
            out.append(Answer("matched", target))
        seen.add(txn)
    return out


# -- orders of delivery ---------------------------------------------------------------------------
Request = tuple[str, list[str]]  # ("single", [txn]) or ("batch", [txn, ...])


def timeline() -> list[str]:
    """Every delivery by the time the bank sends it: credit i at 10·i s, resends 45 s apart."""
    sends = [
        (10 * index + 45 * again, credit.txn)
        for index, credit in enumerate(CREDITS)
        for again in range(credit.resends + 1)
    ]
    return [txn for _, txn in sorted(sends)]


def shuffled(seed: int) -> list[str]:
    deliveries = timeline()
    random.Random(seed).shuffle(deliveries)
    return deliveries


def singles(txns: list[str]) -> list[Request]:
    return [("single", [txn]) for txn in txns]


def originals() -> list[str]:
    return [credit.txn for credit in CREDITS]


def single_then_batch() -> list[Request]:
    """Six singles; one batch of every credit (repeating those six); the rest as singles
    (each repeating an item of the batch)."""
    line = timeline()
    return [*singles(line[:6]), ("batch", originals()), *singles(line[6:])]


def batch_then_singles() -> list[Request]:
    """Two batches (the second repeats a transaction id inside itself), then every
    delivery as a single, reversed (each repeating a batch item), then a batch of
    everything again (repeating the singles)."""
    first, second = originals()[7:][::-1], originals()[:7]
    return [
        ("batch", first),
        ("batch", [*second, second[2]]),
        *singles(timeline()[::-1]),
        ("batch", shuffled(5)),
    ]


def interleaved(seed: int) -> list[Request]:
    """The shuffled deliveries cut into runs of 1-5, sent alternately as a batch and as
    singles."""
    deliveries, rng, out = shuffled(seed), random.Random(seed), []
    as_batch = True
    while deliveries:
        cut = rng.randint(1, 5)
        run, deliveries = deliveries[:cut], deliveries[cut:]
        out.extend([("batch", run)] if as_batch else singles(run))
        as_batch = not as_batch
    return out


SEQUENTIAL: dict[str, list[Request]] = {
    "by_time": singles(timeline()),
    "reversed": singles(timeline()[::-1]),
    "shuffled_1": singles(shuffled(1)),
    "shuffled_2": singles(shuffled(2)),
    "shuffled_3": singles(shuffled(3)),
    "single_then_batch": single_then_batch(),
    "batch_then_singles": batch_then_singles(),
    "interleaved": interleaved(11),
}


def dealt(requests: list[Request], threads: int) -> list[list[Request]]:
    return [requests[n::threads] for n in range(threads)]


def rivals(thread: int) -> list[Request]:
    """The two credits for T2, for C3 and for C4, each sent by two threads at once."""
    pairs = (("FT26002", "FT26003"), ("FT26007", "FT26008"), ("FT26009", "FT26010"))
    return singles([pair[(thread + n) % 2] for n, pair in enumerate(pairs)])


CONCURRENT: dict[str, list[list[Request]]] = {
    "4_threads_singles": dealt(singles(shuffled(4)), 4),
    "4_threads_rivals": [rivals(n) + rest for n, rest in enumerate(dealt(singles(shuffled(6)), 4))],
    "4_threads_mixed": [
        [("batch", timeline())],
        singles(timeline()[::-1]),
        *dealt(interleaved(12), 2),
    ],
}


# -- the live server and what it emits ------------------------------------------------------------
@dataclass
class Emitted:
    """What committed transactions emitted: `payment.succeeded` handler calls and live
    messages (recorded by an after-commit hook, so a rolled-back call never counts)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    handled: list[int] = field(default_factory=list)
    live: list[tuple[int, str, str]] = field(default_factory=list)

    def clear(self) -> None:
        with self.lock:
            self.handled.clear()
            self.live.clear()


@dataclass(frozen=True)
class Base:
    """What every order starts from, besides the demo data: two riders, a second market
    merchant, and who owns which ledger account and static code."""

    owners: dict[str, int]  # rider_a, rider_b → user id; market, hom → merchant id
    accounts: dict[str, str]  # the same owners → ledger account code
    stall_references: dict[str, str]  # STALL1, STALL2 → the stall's static reference


@dataclass
class Bank:
    app: Flask
    url: str
    base: Base
    emitted: Emitted

    @property
    def db(self) -> Any:
        return self.app.extensions["cashless"].db

    @property
    def cfg(self) -> PaymentsConfig:
        return PaymentsConfig.from_settings(self.app.extensions["cashless"].settings)


Snapshot = list[tuple[Table, list[dict[str, Any]]]]


def snapshot(db: Any) -> Snapshot:
    """Every row of every table (the seeded base is small)."""
    with db.engine.connect() as conn:
        return [
            (table, [dict(row._mapping) for row in conn.execute(table.select())])
            for table in metadata.sorted_tables
        ]


def restore(db: Any, rows: Snapshot) -> None:
    """`truncate_all`, then the snapshot's rows back with their ids (seeding again would
    hash the demo passwords again: about a second per order)."""
    truncate_all(db)
    with db.engine.begin() as conn:
        conn.execute(text("SET LOCAL session_replication_role = replica"))
        for table, table_rows in rows:
            if table_rows:
                conn.execute(table.insert(), table_rows)
        for table, table_rows in rows:
            if table_rows and "id" in table.c and isinstance(table.c.id.type, Integer):
                conn.execute(
                    text(
                        "SELECT setval(seq, :v) FROM (SELECT pg_get_serial_sequence(:t, 'id')"
                        " AS seq) AS s WHERE seq IS NOT NULL"
                    ),
                    {"t": f'"{table.name}"', "v": max(row["id"] for row in table_rows)},
                )


def make_base(app: Flask) -> Base:
    db = app.extensions["cashless"].db
    with app.app_context():
        seed_demo(app)
    rider_a = register_commuter(db, "rider-a", "secret1").id
    rider_b = register_commuter(db, "rider-b", "secret1").id
    market = my_merchant(db, db_user_id(db, "vendor1"))
    hom = onboard_merchant(
        db,
        MerchantApplication(
            legal_name="Hộ kinh doanh Trần Văn Hải (chợ Hôm)",
            short_name="Chợ Hôm",
            category="market_vendor",
            settlement_bank_bin="970436",
            settlement_account="0011223344",
        ),
        actor="test",
    )
    owners = {"rider_a": rider_a, "rider_b": rider_b, "market": market.id, "hom": hom.id}
    accounts = {
        "rider_a": ledger.wallet_code(rider_a),
        "rider_b": ledger.wallet_code(rider_b),
        "market": ledger.merchant_payable_code(market.id),
        "hom": ledger.merchant_payable_code(hom.id),
    }
    stalls = {
        f"STALL{n}": stall_qr(db, market.id, stall.id).reference
        for n, stall in enumerate(market.stalls[:2], start=1)
    }
    return Base(owners, accounts, stalls)


def recording(app: Flask) -> Emitted:
    """Record what committed transactions emit (`payment.succeeded` handler calls and live
    messages). The handler registry is global: the next create_app clears it."""
    emitted = Emitted()

    def on_succeeded(session: Any, payload: dict[str, Any]) -> None:
        session.info.setdefault("test_handled", []).append(int(payload["payment_id"]))

    def record(session: Any) -> None:  # runs before the live hook takes the messages
        with emitted.lock:
            emitted.handled.extend(session.info.pop("test_handled", []))
            emitted.live.extend(
                (int(channel.split(":")[1]), message["type"], str(message.get("status")))
                for channel, message in session.info.get("live", [])
            )

    handlers.register("payment.succeeded", on_succeeded)
    app.extensions["cashless"].db.after_commit_hooks.insert(0, record)
    return emitted


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, template_instance: Path, pg_url: str
) -> Iterator[tuple[Bank, Snapshot]]:
    """One app on PostgreSQL (committing) for the module, served over HTTP, and the
    snapshot of its seeded base."""
    app = _pg_app(tmp_path_factory.mktemp("orders"), template_instance, pg_url)
    db = app.extensions["cashless"].db
    truncate_all(db)
    base = make_base(app)
    rows = snapshot(db)
    server = ThreadedServer(app, free_port())
    yield Bank(app, server.url, base, recording(app)), rows
    server.stop()
    app.extensions["cashless"].runner.dispatcher.stop()
    truncate_all(db)
    db.dispose()


@pytest.fixture
def bank_side(served: tuple[Bank, Snapshot]) -> Bank:
    """The served app with the seeded base restored and nothing recorded yet."""
    side, rows = served
    restore(side.db, rows)
    side.emitted.clear()
    return side


# -- the world before the bank speaks -------------------------------------------------------------
@dataclass
class World:
    payment_ids: dict[str, int]  # charge label → payment id
    accounts: dict[str, str]  # owner → ledger account code
    bodies: dict[str, dict[str, Any]]  # txn → the notification the bank sends (always the same)


def make_world(side: Bank) -> World:
    """T3 and C5 made and expired by the expiry job, then the other charges; the
    notifications of CREDITS for them."""
    db, cfg, owners = side.db, side.cfg, side.base.owners
    payments: dict[str, Payment] = {}
    for expired_first in (True, False):
        for charge in (c for c in CHARGES if c.expires_first == expired_first):
            owner = owners[charge.owner]
            if charge.owner in TOPUP_OWNERS:
                payments[charge.label] = topup_wallet(db, cfg, owner, charge.amount)
            else:
                payments[charge.label] = create_charge(db, cfg, owner, amount=charge.amount)
        if expired_first:  # the job runs as if the payment TTL has passed, then credits come
            assert expire_due_payments(db, utcnow() + cfg.payment_ttl + timedelta(seconds=1)) == 2
    references = {label: str(p.reference) for label, p in payments.items()}
    references |= side.base.stall_references
    references["UNKNOWN"] = new_charge_reference()
    references["NONE"] = ""
    base = utcnow() - timedelta(minutes=5)
    bodies = {
        credit.txn: {
            "transaction_id": credit.txn,
            "account_number": cfg.account,
            "amount": credit.amount,
            "credited_at": (base + timedelta(seconds=10 * index)).isoformat(),
            "description": _note(credit.note, references[credit.target]),
            "counterparty_name": f"NGUYEN VAN {index}",
            "counterparty_account": f"01234567{index:02d}",
            "counterparty_bank_bin": "970436",
        }
        for index, credit in enumerate(CREDITS)
    }
    side.emitted.clear()  # the expiry's messages are not the credits'
    return World({k: p.id for k, p in payments.items()}, side.base.accounts, bodies)


def _note(template: str, ref: str) -> str:
    spaced = f"{ref[:4]} {ref[4:8]} {ref[8:]}"  # banks split long words
    return template.format(ref=ref, lower=ref.lower(), spaced=spaced)


def db_user_id(db: Any, username: str) -> int:
    with db.reader() as session:
        return int(
            session.execute(
                text("SELECT id FROM users WHERE username = :u"), {"u": username}
            ).scalar_one()
        )


# -- delivering -----------------------------------------------------------------------------------
def deliver(side: Bank, world: World, request: Request) -> list[dict[str, Any]]:
    """One signed POST to the webhook (single or batch); the answers, one per notification."""
    kind, txns = request
    items = [world.bodies[txn] for txn in txns]
    path = "/api/v1/bank/notifications"
    payload: dict[str, Any] = items[0]
    if kind == "batch":
        path, payload = f"{path}/batch", {"notifications": items}
    raw = json.dumps(payload).encode()
    call = urllib.request.Request(
        side.url + path,
        data=raw,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "X-Signature": bank.sign(side.cfg.webhook_secret, raw, int(time.time())),
        },
    )
    with urllib.request.urlopen(call, timeout=30) as response:
        assert response.status == 200
        body = json.loads(response.read())
    results = body["results"] if kind == "batch" else [body]
    assert len(results) == len(txns)
    return list(results)


def deliver_all(side: Bank, world: World, requests: list[Request]) -> list[tuple[str, dict]]:
    return [
        (txn, result)
        for request in requests
        for txn, result in zip(request[1], deliver(side, world, request), strict=True)
    ]


def deliver_at_once(
    side: Bank, world: World, threads: list[list[Request]]
) -> list[tuple[str, dict]]:
    barrier = threading.Barrier(len(threads))
    got: list[tuple[str, dict]] = []
    failures: list[BaseException] = []
    lock = threading.Lock()

    def run(requests: list[Request]) -> None:
        try:
            barrier.wait()
            mine = deliver_all(side, world, requests)
            with lock:
                got.extend(mine)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    workers = [threading.Thread(target=run, args=(requests,)) for requests in threads]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert not failures, failures
    return got


# -- the end state --------------------------------------------------------------------------------
@dataclass
class State:
    labels: dict[int, str]  # payment id → label (the stall payments by their credit)
    statuses: dict[str, tuple[str, int]]
    bank_txn: dict[str, str | None]  # label → the transaction that paid it
    notifications: dict[str, Answer]  # txn → its recorded outcome
    balances: dict[str, int]
    suspense: list[tuple[str, int, str]]
    payments: int
    unbalanced: list[Any]
    stale_balances: list[Any]
    bank_journals: dict[str, tuple[str, int, str]]  # txn → (kind, postings, payment label)
    merchant_events: Counter[tuple[str, str]]

    def label(self, payment_id: int | None) -> str:
        return State.label_in(self.labels)(payment_id)

    @staticmethod
    def label_in(labels: dict[int, str]) -> Callable[[int | None], str]:
        """Payment id → label; no payment → ""; a payment we did not expect → KeyError."""
        return lambda payment_id: labels[payment_id] if payment_id is not None else ""


def read_state(side: Bank, world: World) -> State:
    with side.db.reader() as session:
        rows = session.scalars(select(Payment)).all()
        labels = {pid: label for label, pid in world.payment_ids.items()}
        for p in rows:
            if p.external_key and p.external_key.startswith("static:"):
                labels[p.id] = BY_TXN[p.external_key.removeprefix("static:")].target

        label = State.label_in(labels)
        notes = session.execute(
            text(
                "SELECT transaction_id, status, reason, payment_id, amount FROM bank_notifications"
            )
        ).all()
        codes = {code: owner for owner, code in world.accounts.items()}
        balances = {
            codes.get(code, code): int(balance)
            for code, balance in session.execute(
                text("SELECT code, balance FROM ledger_accounts WHERE balance <> 0")
            )
        }
        journals = session.execute(
            text(
                "SELECT substr(t.external_key, 6), t.kind, count(p.id), t.payment_id"
                " FROM journal_transactions t JOIN postings p ON p.transaction_id = t.id"
                " WHERE t.external_key LIKE 'bank:%' GROUP BY t.id"
            )
        ).all()
        events = session.execute(
            text("SELECT type, payload -> 'data' ->> 'payment_id' FROM merchant_events")
        ).all()
        return State(
            labels=labels,
            statuses={label(p.id): (p.status, p.amount) for p in rows},
            bank_txn={label(p.id): p.bank_transaction_id for p in rows},
            notifications={
                txn: Answer(status, label(pid), reason) for txn, status, reason, pid, _ in notes
            },
            balances=balances,
            suspense=sorted(
                (label(pid), amount, reason)
                for _, status, reason, pid, amount in notes
                if status == "suspense"
            ),
            payments=len(rows),
            unbalanced=session.execute(
                text(
                    "SELECT t.external_key, sum(p.amount), count(p.id) FROM journal_transactions t"
                    " LEFT JOIN postings p ON p.transaction_id = t.id GROUP BY t.id"
                    " HAVING coalesce(sum(p.amount), 0) <> 0 OR count(p.id) < 2"
                )
            ).all(),
            stale_balances=session.execute(
                text(
                    "SELECT a.code, a.balance, coalesce(sum(p.amount), 0) FROM ledger_accounts a"
                    " LEFT JOIN postings p ON p.account_id = a.id GROUP BY a.id"
                    " HAVING a.balance <> coalesce(sum(p.amount), 0)"
                )
            ).all(),
            bank_journals={str(txn): (kind, int(n), label(pid)) for txn, kind, n, pid in journals},
            merchant_events=Counter((t, label(int(pid))) for t, pid in events),
        )


def check_end_state(
    side: Bank, world: World, got: list[tuple[str, dict]], order: str
) -> tuple[State, str]:
    """The state every order must end in; returns it and the C4 reason it took."""
    state = read_state(side, world)
    c4_reason = state.notifications[C4_WRONG].reason or ""
    assert c4_reason in ("amount_mismatch", "payment_succeeded"), order
    assert state.statuses == EXPECTED_STATUS, order
    assert state.payments == len(EXPECTED_STATUS), order  # a resent stall credit made one
    assert state.balances == EXPECTED_BALANCES, order
    assert state.suspense == expected_suspense(c4_reason), order
    assert state.unbalanced == [], order
    assert state.stale_balances == [], order
    # Every transaction id is recorded once and posted once, as its outcome says.
    assert sorted(state.notifications) == sorted(BY_TXN), order
    assert sorted(state.bank_journals) == sorted(BY_TXN), order
    for txn, note in state.notifications.items():
        kind = "bank_credit" if note.status == "matched" else "bank_credit_suspense"
        assert state.bank_journals[txn] == (kind, 2, note.label), (order, txn)
    # Each succeeded payment was paid by exactly one credit: the one recorded on it.
    for label in SUCCEEDED:
        won = [t for t, n in state.notifications.items() if n == Answer("matched", label)]
        assert won == [state.bank_txn[label]], (order, label)
    # The webhook's answers: one non-duplicate per transaction id, telling what was recorded.
    firsts = [(txn, result) for txn, result in got if result["status"] != "duplicate"]
    assert sorted(txn for txn, _ in firsts) == sorted(BY_TXN), order
    for txn, result in firsts:
        note = state.notifications[txn]
        assert (result["status"], state.label(result["payment_id"])) == (
            note.status,
            note.label,
        ), (order, txn)
    assert all(r["payment_id"] is None for _, r in got if r["status"] == "duplicate"), order
    # Events: once per payment, whatever the number of credits and resends.
    assert state.merchant_events == MERCHANT_EVENTS, order
    with side.emitted.lock:
        handled = Counter(state.labels[pid] for pid in side.emitted.handled)
        live = Counter((state.labels[pid], kind, status) for pid, kind, status in side.emitted.live)
    assert handled == Counter(SUCCEEDED), order
    mismatches = {("C2", "amount_mismatch", "pending"): 1}
    if c4_reason == "amount_mismatch":
        mismatches[("C4", "amount_mismatch", "pending")] = 1
    assert live == Counter({(label, "status", "succeeded"): 1 for label in SUCCEEDED}) + Counter(
        mismatches
    ), order
    return state, c4_reason


# -- the tests ------------------------------------------------------------------------------------
def test_the_orders_cover_the_cases() -> None:
    """Each sequential order delivers every resend, and between them the orders put the
    cases that depend on order both ways round."""
    everything = Counter(timeline())
    assert sum(everything.values()) == len(CREDITS) + sum(c.resends for c in CREDITS)
    firsts = {}
    for name, requests in SEQUENTIAL.items():
        flat = [txn for _, txns in requests for txn in txns]
        assert set(flat) == set(BY_TXN), name
        assert all(Counter(flat)[txn] >= n for txn, n in everything.items()), name
        firsts[name] = [txn for n, txn in enumerate(flat) if txn not in flat[:n]]
    for early, late in (("FT26002", "FT26003"), ("FT26007", "FT26008"), ("FT26009", "FT26010")):
        before = {f.index(early) < f.index(late) for f in firsts.values()}
        assert before == {True, False}, (early, late)
    assert any(
        kind == "batch" and len(set(t)) < len(t) for r in SEQUENTIAL.values() for kind, t in r
    )


@pytest.mark.parametrize("order", sorted(SEQUENTIAL))
def test_any_order_ends_in_the_same_right_ledger(bank_side: Bank, order: str) -> None:
    world = make_world(bank_side)
    requests = SEQUENTIAL[order]
    got = deliver_all(bank_side, world, requests)
    state, c4_reason = check_end_state(bank_side, world, got, order)
    # In a sequential order each answer, and each recorded outcome, is what the rules say.
    sequence = [txn for txn, _ in got]
    model = answers(sequence)
    assert [Answer(result["status"], state.label(result["payment_id"])) for _, result in got] == [
        Answer(a.status, a.label) for a in model
    ], order
    recorded = {txn: a for txn, a in zip(sequence, model, strict=True) if a.status != "duplicate"}
    assert state.notifications == recorded, order
    assert c4_reason == recorded[C4_WRONG].reason, order


@pytest.mark.parametrize("order", sorted(CONCURRENT))
def test_concurrent_deliveries_end_in_the_same_right_ledger(bank_side: Bank, order: str) -> None:
    world = make_world(bank_side)
    got = deliver_at_once(bank_side, world, CONCURRENT[order])
    assert Counter(txn for txn, _ in got) == Counter(
        txn for requests in CONCURRENT[order] for _, txns in requests for txn in txns
    )
    check_end_state(bank_side, world, got, order)
