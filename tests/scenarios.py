"""Reconciliation scenarios: a ledger day and a bank statement with known anomalies.

`build_scenario` posts a business day through payments' own functions (charges, signed-bank
credits, static stall codes, payouts) and writes the statement the bank would send for it,
with one or more cases of every category, and records what the run must say about each line:
matched (by bank id, by reference, by amount and time for a static stall QR), fee-netted and
plain batch settlements, a payout debit, amount mismatches, a duplicated line, a second credit
for a paid charge, lines without our reference, credits missing on either side, ambiguous
static-QR credits, late lines across midnight in Asia/Ho_Chi_Minh (written in UTC), malformed
lines and a repeated bank id.

`write_bulk_statement` and `BULK_LEDGER_SQL` make the million-line day of
bench/bench_reconciliation.py.
"""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

from core.clock import business_date, utcnow
from payments import ledger, notifications, references
from payments.ledger import Leg
from payments.service import PaymentsConfig, create_vietqr_payment
from payments.static_codes import register_static_code
from reconciliation.statements import CSV_COLUMNS

ICT = timezone(timedelta(hours=7))
MERCHANT = 9001
STALL = 501
STALL_LABEL = "CHO SAU A01"


@dataclass
class Expected:
    lines: dict[str, str] = field(default_factory=dict)  # bank_txn_id -> category
    postings: dict[str, str] = field(default_factory=dict)  # external_key -> category
    fees: dict[str, int] = field(default_factory=dict)  # bank_txn_id -> fee
    rejected: dict[int, str] = field(default_factory=dict)  # line number -> message part
    skipped: int = 0


@dataclass
class Scenario:
    day: date
    account: str
    csv_text: str
    expected: Expected

    @property
    def csv_bytes(self) -> bytes:
        return self.csv_text.encode("utf-8")


class _Builder:
    def __init__(self, db: Any, cfg: PaymentsConfig, day: date, seed: int) -> None:
        self.db, self.cfg, self.day = db, cfg, day
        self.rng = random.Random(seed)
        self.rows: list[str] = []
        self.expected = Expected()
        self.seq = 0

    def at(self, hh: int, mm: int, ss: int = 0, day_offset: int = 0) -> datetime:
        return datetime.combine(self.day + timedelta(days=day_offset), time(hh, mm, ss), ICT)

    def txn(self, prefix: str = "FT") -> str:
        self.seq += 1
        return f"{prefix}{self.day:%y%m%d}{self.seq:05d}"

    def amount(self) -> int:
        return self.rng.randint(5, 400) * 1000

    def charge(self, amount: int) -> str:
        with self.db.transaction() as session:
            payment = create_vietqr_payment(
                session,
                self.cfg,
                amount=amount,
                purpose="charge",
                owner_ref="scenario",
                credit_account=ledger.merchant_payable_code(MERCHANT),
                merchant_id=MERCHANT,
            )
            return str(payment.reference)

    def notify(self, txn: str, amount: int, at: datetime, description: str) -> str:
        credit = notifications.IncomingCredit(
            txn, self.cfg.account, amount, at, description, "NGUYEN VAN A", "0123456789", "970436"
        )
        notifications.receive(self.db, self.cfg, credit)
        return f"bank:{txn}"

    def line(
        self,
        txn: str,
        at: datetime,
        amount: int,
        description: str,
        *,
        direction: str = "CR",
        expect: str | None = None,
        utc: bool = False,
    ) -> None:
        booked = at.astimezone(UTC) if utc else at.astimezone(ICT)
        values = [
            txn,
            booked.isoformat(),
            booked.date().isoformat(),
            str(amount),
            direction,
            description,
            "0123456789",
            "NGUYEN VAN A",
        ]
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerow(values)
        self.rows.append(out.getvalue())
        if expect is not None:
            self.expected.lines[txn] = expect

    def raw(self, text: str, rejected_because: str) -> None:
        self.rows.append(text + "\n")
        self.expected.rejected[len(self.rows) + 1] = rejected_because

    def csv_text(self) -> str:
        return ",".join(CSV_COLUMNS) + "\n" + "".join(self.rows)


def build_scenario(
    db: Any, cfg: PaymentsConfig, day: date, *, seed: int = 7, scale: int = 1
) -> Scenario:
    """Post the ledger of `day` through payments and write its statement (see module doc)."""
    b = _Builder(db, cfg, day, seed)
    for k in range(scale):
        _plain_matches(b)
        _static_qr(b, k)
        _mismatches_and_duplicates(b)
        _missing(b)
        _across_midnight(b)
        _batches(b)
        _payouts(b, k)
    _malformed(b)
    return Scenario(day, cfg.account, b.csv_text(), b.expected)


def _plain_matches(b: _Builder) -> None:
    for i in range(6):  # the bank's statement id is the notification's id
        amount, at = b.amount(), b.at(8, 10 + i)
        ref = b.charge(amount)
        txn = b.txn()
        b.notify(txn, amount, at, f"{ref} thanh toan")
        b.line(txn, at + timedelta(seconds=3), amount, f"{ref} thanh toan", expect="matched")
    for i in range(4):  # the statement numbers lines its own way: found by our reference
        amount, at = b.amount(), b.at(9, 10 + i)
        ref = b.charge(amount)
        b.notify(b.txn("NT"), amount, at, ref)
        spaced = f"TT {ref[:4]}-{ref[4:8]} {ref[8:].lower()} cam on"  # mangled by the payer bank
        b.line(b.txn(), at + timedelta(seconds=9), amount, spaced, expect="matched")


def _static_qr(b: _Builder, k: int) -> None:
    with b.db.transaction() as session:
        code = register_static_code(
            session,
            b.cfg,
            stall_id=STALL,
            merchant_id=MERCHANT,
            terminal_label=STALL_LABEL,
            merchant_name="Cho Sau",
        )
        stall_ref = code.reference
    at = b.at(10, 5)
    amount = 20_000 + 1000 * k  # distinct per repetition, or the repetitions would collide
    b.notify(b.txn("NT"), amount, at, stall_ref)
    b.line(b.txn(), at + timedelta(seconds=40), amount, f"{stall_ref} rau muong", expect="matched")
    at = b.at(10, 40)
    amount = 27_000 + 1000 * k
    b.notify(b.txn("NT"), amount, at, stall_ref)
    # Only the stall's terminal label reached the statement: found by amount, time and label.
    b.line(b.txn(), at + timedelta(minutes=2), amount, "CK CHO SAU A01", expect="matched")
    # Two equal sales minutes apart: either line fits either credit, so a human decides.
    for minute in (0, 4):
        at = b.at(11, 20 + minute)
        key = b.notify(b.txn("NT"), 35_000 + 1000 * k, at, stall_ref)
        b.expected.postings[key] = "missing_in_bank"
        b.line(
            b.txn(),
            at + timedelta(seconds=30),
            35_000 + 1000 * k,
            stall_ref,
            expect="missing_in_ledger",
        )


def _mismatches_and_duplicates(b: _Builder) -> None:
    ref = b.charge(50_000)  # the statement says 45,000 for a 50,000 credit
    b.notify(b.txn("NT"), 50_000, b.at(12, 1), ref)
    b.line(b.txn(), b.at(12, 1, 20), 45_000, ref, expect="amount_mismatch")
    ref = b.charge(30_000)  # the payer sent 25,000: payments parked it in suspense
    txn = b.txn()
    b.notify(txn, 25_000, b.at(12, 5), ref)
    b.line(txn, b.at(12, 5, 4), 25_000, ref, expect="amount_mismatch")
    amount = b.amount()  # the bank lists one credit twice under two ids
    ref = b.charge(amount)
    txn = b.txn()
    b.notify(txn, amount, b.at(12, 30), ref)
    b.line(txn, b.at(12, 30, 2), amount, ref, expect="matched")
    b.line(b.txn(), b.at(12, 30, 3), amount, ref, expect="duplicate")
    amount = b.amount()  # the payer paid one charge twice: the second credit is a duplicate
    ref = b.charge(amount)
    first, second = b.txn(), b.txn()
    b.notify(first, amount, b.at(13, 0), ref)
    b.notify(second, amount, b.at(13, 2), ref)
    b.line(first, b.at(13, 0, 5), amount, ref, expect="matched")
    b.line(second, b.at(13, 2, 5), amount, ref, expect="duplicate")


def _missing(b: _Builder) -> None:
    # Never notified, no reference: money we know nothing about.
    b.line(b.txn(), b.at(14, 0), 77_000, "chuyen tien an trua", expect="missing_in_ledger")
    txn = b.txn()  # notified without our reference: parked in suspense, still unattributed
    b.notify(txn, 66_000, b.at(14, 10), "chuyen khoan")
    b.line(txn, b.at(14, 10, 5), 66_000, "chuyen khoan", expect="missing_in_ledger")
    amount = b.amount()  # notified, but the bank's statement does not have it
    ref = b.charge(amount)
    key = b.notify(b.txn("NT"), amount, b.at(14, 30), ref)
    b.expected.postings[key] = "missing_in_bank"


def _across_midnight(b: _Builder) -> None:
    amount = b.amount()  # booked 23:59:50, credited to us after midnight: the ledger's next day
    ref = b.charge(amount)
    txn = b.txn()
    b.notify(txn, amount, b.at(0, 0, 20, day_offset=1), ref)
    b.line(txn, b.at(23, 59, 50), amount, ref, expect="other_day", utc=True)
    amount = b.amount()  # credited 23:59:40, booked by the bank after midnight
    ref = b.charge(amount)
    txn = b.txn()
    b.notify(txn, amount, b.at(23, 59, 40), ref)
    b.line(txn, b.at(0, 0, 15, day_offset=1), amount, ref, expect="other_day", utc=True)


def _batches(b: _Builder) -> None:
    for fee_share in (0, 100):  # basis points: a plain batch, then one net of a 1 % fee
        refs, total = [], 0
        for i in range(3 + fee_share // 100):
            amount = b.amount()
            ref = b.charge(amount)
            b.notify(b.txn("NT"), amount, b.at(15, 10 * i + fee_share // 50), ref)
            refs.append(ref)
            total += amount
        fee = total * fee_share // 10_000
        txn = b.txn()
        category = "matched_with_fee" if fee else "matched"
        b.line(
            txn,
            b.at(16, fee_share // 50),
            total - fee,
            "QUYET TOAN LO " + " ".join(refs),
            expect=category,
        )
        if fee:
            b.expected.fees[txn] = fee


def _payouts(b: _Builder, k: int) -> None:
    sales_day = b.day - timedelta(days=1)
    note = f"PAYOUT {sales_day.isoformat()} CHO SAU"
    for n, amount in enumerate((1_250_000 + 1000 * k, 830_000 + 1000 * k)):
        key = f"payout:scenario-{b.day.isoformat()}-{b.seq}-{n}"
        with b.db.transaction() as session:
            ledger.merchant_payable(session, MERCHANT)
            ledger.post(
                session,
                external_key=key,
                kind="payout",
                business_date=b.day,
                memo=note,
                legs=[
                    Leg(ledger.merchant_payable_code(MERCHANT), amount),
                    Leg("bank_clearing", -amount),
                ],
            )
        if n == 0:
            b.line(b.txn(), b.at(17, 0), amount, note, direction="DR", expect="matched")
        else:  # sent, but not (yet) debited by the bank
            b.expected.postings[key] = "missing_in_bank"


def _malformed(b: _Builder) -> None:
    b.raw("FTX1,2026-01-01T09:00:00+07:00,,12.5,CR,decimal amount,,", "without decimals")
    b.raw("FTX2,2026-01-01T09:00:00,,1000,CR,no offset,,", "no UTC offset")
    b.raw("FTX3,2026-01-01T09:00:00+07:00,,1000,XX,bad direction,,", "must be CR or DR")
    b.raw("FTX4,2026-01-01T09:00:00+07:00,1000,CR", "expected 8 fields")
    b.raw(b.rows[0].rstrip("\n"), "")  # the same bank id again: skipped, not rejected
    b.expected.rejected.pop(len(b.rows) + 1)
    b.expected.skipped += 1


# -- the million-line day of the benchmark ----------------------------------------------------
def bulk_reference(i: int) -> str:
    """A valid charge reference derived from `i` (the body is `i` in Crockford base 32)."""
    body = []
    for _ in range(references.BODY_LENGTH):
        i, digit = divmod(i, references.BASE)
        body.append(references.ALPHABET[digit])
    text = "".join(reversed(body))
    return references.CHARGE_PREFIX + text + references.check_character(text)


def bulk_amount(i: int) -> int:
    return (i * 7919 % 499 + 1) * 1000


def write_bulk_statement(path: Path, n: int, day: date, anomalies: int = 1000) -> dict[str, int]:
    """Write an n-line statement for the bulk ledger day; returns the expected counts.

    Line i pays ledger entry i, except: every 1000th line is missing (missing_in_bank), the
    next one carries a wrong amount (amount_mismatch), `anomalies` extra lines have no
    reference (missing_in_ledger) and `anomalies` more repeat an entry (duplicate).
    """
    counts = {
        "matched": 0,
        "amount_mismatch": 0,
        "missing_in_bank": 0,
        "missing_in_ledger": 0,
        "duplicate": 0,
    }
    start = datetime.combine(day, time(0), ICT)
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(",".join(CSV_COLUMNS) + "\n")
        for row, category in _bulk_rows(n, day, start, anomalies):
            out.write(row)
            counts[category] += 1
    return counts


def _bulk_rows(n: int, day: date, start: datetime, anomalies: int) -> Iterator[tuple[str, str]]:
    value_date = day.isoformat()
    for i in range(n):
        if i % 1000 == 0:
            yield "", "missing_in_bank"
            continue
        amount = bulk_amount(i) + (1000 if i % 1000 == 1 else 0)
        booked = (start + timedelta(seconds=i * 86_000 // n)).isoformat()
        category = "amount_mismatch" if i % 1000 == 1 else "matched"
        yield (
            (
                f"FB{i:09d},{booked},{value_date},{amount},CR,{bulk_reference(i)} thanh toan ve,"
                f"0123456789,NGUYEN VAN A\n"
            ),
            category,
        )
    for k in range(anomalies):
        booked = (start + timedelta(seconds=43_000 + k)).isoformat()
        yield f"FX{k:09d},{booked},{value_date},55000,CR,chuyen tien {k},,\n", "missing_in_ledger"
        i = 2 + k * 997 % max(n - 3, 1)
        i += 2 if i % 1000 in (0, 1) else 0
        yield (
            f"FD{k:09d},{booked},{value_date},{bulk_amount(i)},CR,{bulk_reference(i)},,\n",
            "duplicate",
        )


BULK_LEDGER_SQL = """
-- The bulk ledger day: n bank credits of paid charges, posted set-based (payments' triggers
-- off for the load). :n, :day and :t0 are bound; bulk_refs(i, ref) is filled by COPY.
SET session_replication_role = replica;
INSERT INTO payments (id, reference, amount, currency, method, status, purpose, credit_account,
                      merchant_id, business_date, created_at, succeeded_at, refunded_amount)
SELECT 100000000 + r.i, r.ref, (r.i * 7919 % 499 + 1) * 1000, 'VND', 'vietqr', 'succeeded',
       'ticket', 'transit_revenue', NULL, :day, :t0, :t0, 0
  FROM bulk_refs r;
INSERT INTO journal_transactions (id, external_key, kind, business_date, memo, payment_id,
                                  created_at)
SELECT 100000000 + r.i, 'bank:NB' || r.i, 'bank_credit', :day, r.ref, 100000000 + r.i, :t0
  FROM bulk_refs r;
INSERT INTO postings (transaction_id, account_id, amount, business_date, created_at)
SELECT 100000000 + r.i, a.id, CASE WHEN a.code = 'bank_clearing' THEN 1 ELSE -1 END
       * (r.i * 7919 % 499 + 1) * 1000, :day, :t0
  FROM bulk_refs r CROSS JOIN ledger_accounts a
 WHERE a.code IN ('bank_clearing', 'transit_revenue');
INSERT INTO journal_seals (transaction_id) SELECT 100000000 + i FROM bulk_refs;
SET session_replication_role = DEFAULT;
"""


def bulk_day() -> date:
    """A past business day for the benchmark (runs refuse days that have not happened)."""
    return business_date(utcnow()) - timedelta(days=3)
