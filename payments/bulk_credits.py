"""Many bank credits at once, set-based, on PostgreSQL (the path behind `receive_many`).

`record_credits` has exactly the outcomes and effects of `notifications.record_credit` called
for each credit in order (SPEC §13 allows PostgreSQL-only fast paths behind the same service
function): the same notification rows, statuses and reasons; the same payments succeeded and
static-code payments created; the same journal transactions (`bank:{transaction_id}`, kinds,
legs, business days); the same `payment.succeeded` handlers (inside the transaction), live
messages (after commit) and merchant events. A transaction id seen before, also earlier in
the same batch, is a duplicate; a second credit for one charge finds it succeeded.

It takes about a dozen statements per batch, whatever its size: the closed days; one
INSERT … ON CONFLICT DO NOTHING RETURNING of the notifications; one SELECT … FOR UPDATE of the
named charges (id order) and one of the static codes; the decisions in Python
(`credit_rules.classify`, credit by credit, on the rows' state in memory); the static
payments, the succeeded charges and the notifications' outcomes as one statement each; the
merchant events; then `ledger.post_many` (journal transactions, postings, seals, and one
balance UPDATE per batch, last, so bank clearing's hot row is locked only until commit).
The database triggers still check every posting and seal.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import String, any_, bindparam, select, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from core.clock import as_utc, business_date
from core.events import handlers, publish_after_commit
from payments import ledger
from payments.bank import our_reference
from payments.credit_rules import (
    ChargeState,
    Decision,
    IncomingCredit,
    Outcome,
    classify,
    payment_memo,
    suspense_memo,
)
from payments.events import record_merchant_events
from payments.ledger import Entry, Leg, json_rows
from payments.models import NotificationStatus, Payment, StaticCode
from payments.service import PaymentsConfig, event_payload
from payments.states import PaymentStatus

__all__ = ["record_credits"]


@dataclass
class _Charge:
    """A payments row as matching and the event payload read it (a credit may succeed it)."""

    id: int
    reference: str | None
    amount: int
    status: str
    purpose: str
    owner_ref: str | None
    method: str
    merchant_id: int | None
    stall_id: int | None
    credit_account: str
    currency: str = "VND"
    refunded_amount: int = 0
    succeeded_at: datetime | None = None


@dataclass(frozen=True)
class _Stall:
    reference: str
    stall_id: int
    merchant_id: int
    credit_account: str


_UNDECIDED = Decision(False)


@dataclass
class _Step:
    """One credit seen for the first time, and what becomes of it."""

    index: int
    credit: IncomingCredit
    note_id: int
    day: date
    kind: str | None
    reference: str | None
    decision: Decision = _UNDECIDED
    charge: _Charge | None = None  # the payment it concerns (existing or new static)
    stall: _Stall | None = None  # the static code a new payment is made for

    @property
    def outcome(self) -> Outcome:
        payment_id = self.charge.id if self.charge else None
        if self.decision.matched:
            return Outcome(NotificationStatus.MATCHED, payment_id)
        return Outcome(NotificationStatus.SUSPENSE, payment_id, self.decision.reason)


def record_credits(
    session: Session, cfg: PaymentsConfig, credits: list[IncomingCredit], now: datetime
) -> list[Outcome]:
    """Store, match and post `credits` as `record_credit` would one after the other (PostgreSQL).

    Idempotent by the bank's transaction id. Locks the named charges (id order), then, last,
    the balance rows it moves (id order). Moves money: bank clearing → each beneficiary or
    suspense. Flushes nothing of the ORM; the caller's transaction commits.
    """
    steps = _store(session, credits, now)
    charges = _lock_charges(session, cfg, steps)
    stalls = _static_codes(session, cfg, steps)
    for step in steps:
        _decide(cfg, step, charges, stalls)
    _create_static_payments(session, steps, now)
    _succeed_charges(session, steps, now)
    _finish_notifications(session, steps)
    # The payload of `payment.succeeded`, built by the one function that defines it.
    payloads = {
        step.index: event_payload(cast(Payment, charge)) for step, charge in _matched(steps)
    }
    record_merchant_events(
        session,
        [
            (charge.merchant_id, "payment.succeeded", payloads[step.index])
            for step, charge in _matched(steps)
            if charge.merchant_id is not None
        ],
    )
    _post(session, steps)
    _announce(session, steps, payloads)
    outcomes = [Outcome(NotificationStatus.DUPLICATE)] * len(credits)
    for step in steps:
        outcomes[step.index] = step.outcome
    return outcomes


def _matched(steps: list[_Step]) -> list[tuple[_Step, _Charge]]:
    return [
        (step, step.charge) for step in steps if step.decision.matched and step.charge is not None
    ]


# -- storing the notifications ------------------------------------------------------------------
_INSERT_NOTIFICATIONS = text(
    "INSERT INTO bank_notifications (transaction_id, account_number, amount, credited_at,"
    " description, counterparty_name, counterparty_account, counterparty_bank_bin, status,"
    " reference, received_at, business_date)"
    " SELECT transaction_id, account_number, amount, credited_at, description,"
    " counterparty_name, counterparty_account, counterparty_bank_bin, 'new', reference, :now,"
    " business_date FROM json_populate_recordset(NULL::bank_notifications, CAST(:rows AS json))"
    " ON CONFLICT DO NOTHING RETURNING id, transaction_id"
)


def _store(session: Session, credits: list[IncomingCredit], now: datetime) -> list[_Step]:
    """Insert each transaction id's first credit; those not there before become steps."""
    first: dict[str, int] = {}
    for index, credit in enumerate(credits):
        first.setdefault(credit.transaction_id, index)
    batch = [credits[index] for index in first.values()]
    days = _posting_days(session, batch, now)
    found = [our_reference(credit.description) for credit in batch]
    rows = [
        {
            "transaction_id": credit.transaction_id,
            "account_number": credit.account_number,
            "amount": credit.amount,
            "credited_at": as_utc(credit.credited_at),
            "description": credit.description[:500],
            "counterparty_name": credit.counterparty_name,
            "counterparty_account": credit.counterparty_account,
            "counterparty_bank_bin": credit.counterparty_bank_bin,
            "reference": ref[1] if ref else None,
            "business_date": day,
        }
        for credit, ref, day in zip(batch, found, days, strict=True)
    ]
    # In transaction id order: two overlapping batches wait for each other, never deadlock.
    rows.sort(key=lambda row: str(row["transaction_id"]))
    inserted = session.execute(_INSERT_NOTIFICATIONS, {"now": now, "rows": json_rows(rows)})
    note_ids = {str(txn): int(note_id) for note_id, txn in inserted}
    return [
        _Step(index, credit, note_ids[credit.transaction_id], day, *(ref or (None, None)))
        for index, credit, day, ref in zip(first.values(), batch, days, found, strict=True)
        if credit.transaction_id in note_ids
    ]


def _posting_days(session: Session, credits: list[IncomingCredit], now: datetime) -> list[date]:
    """Each credit's own business day, or today when that day is already closed (SPEC §13)."""
    days = [business_date(credit.credited_at) for credit in credits]
    closed = ledger.closed_days(session, days)
    today = business_date(now)
    return [today if day in closed else day for day in days]


# -- reading what the references name -----------------------------------------------------------
def _wanted(cfg: PaymentsConfig, steps: list[_Step], kind: str) -> list[str]:
    # Only credits to our account are matched (the per-credit path looks nothing else up).
    return sorted(
        {
            step.reference
            for step in steps
            if step.kind == kind and step.reference and step.credit.account_number == cfg.account
        }
    )


def _texts(values: list[str]) -> Any:
    # One array parameter rather than an IN list: the statement text stays the same.
    return bindparam("references", values, type_=ARRAY(String))


def _lock_charges(session: Session, cfg: PaymentsConfig, steps: list[_Step]) -> dict[str, _Charge]:
    references = _wanted(cfg, steps, "charge")
    if not references:
        return {}
    rows = session.execute(
        select(
            Payment.id,
            Payment.reference,
            Payment.amount,
            Payment.status,
            Payment.purpose,
            Payment.owner_ref,
            Payment.method,
            Payment.merchant_id,
            Payment.stall_id,
            Payment.credit_account,
            Payment.currency,
            Payment.refunded_amount,
        )
        .where(Payment.reference == any_(_texts(references)))
        .order_by(Payment.id)
        .with_for_update()
    )
    return {str(row.reference): _Charge(*row) for row in rows}


def _static_codes(session: Session, cfg: PaymentsConfig, steps: list[_Step]) -> dict[str, _Stall]:
    references = _wanted(cfg, steps, "stall")
    if not references:
        return {}
    rows = session.execute(
        select(
            StaticCode.reference,
            StaticCode.stall_id,
            StaticCode.merchant_id,
            StaticCode.credit_account,
        ).where(StaticCode.reference == any_(_texts(references)))
    )
    return {str(row.reference): _Stall(*row) for row in rows}


def _decide(
    cfg: PaymentsConfig, step: _Step, charges: dict[str, _Charge], stalls: dict[str, _Stall]
) -> None:
    """Classify one credit against the rows as the credits before it left them."""
    ours = step.credit.account_number == cfg.account
    charge = charges.get(step.reference or "") if ours and step.kind == "charge" else None
    stall = stalls.get(step.reference or "") if ours and step.kind == "stall" else None
    step.decision = classify(
        amount=step.credit.amount,
        right_account=ours,
        kind=step.kind,
        stall_known=stall is not None,
        charge=ChargeState(charge.status, charge.amount) if charge else None,
    )
    if step.decision.linked:
        step.charge = charge
    if step.decision.new_static_payment:
        step.stall = stall
    if step.decision.matched and charge is not None:
        charge.status = PaymentStatus.SUCCEEDED  # a second credit for it finds it paid


# -- writing the outcomes -----------------------------------------------------------------------
_INSERT_STATIC_PAYMENTS = text(
    "INSERT INTO payments (amount, currency, method, status, purpose, owner_ref,"
    " credit_account, merchant_id, stall_id, description, external_key, business_date,"
    " created_at, succeeded_at, refunded_amount, bank_transaction_id, counterparty_account,"
    " counterparty_bank_bin, counterparty_name)"
    " SELECT amount, 'VND', 'vietqr', 'succeeded', 'charge', owner_ref, credit_account,"
    " merchant_id, stall_id, 'Static stall QR', external_key, business_date, created_at, :now,"
    " 0, bank_transaction_id, counterparty_account, counterparty_bank_bin, counterparty_name"
    " FROM json_populate_recordset(NULL::payments, CAST(:rows AS json))"
    " RETURNING id, bank_transaction_id"
)


def _create_static_payments(session: Session, steps: list[_Step], now: datetime) -> None:
    """A stall's credit becomes a new payment, succeeded at once (as pending → succeeded)."""
    made = [(step, step.stall) for step in steps if step.stall is not None]
    if not made:
        return
    rows = [
        {
            "amount": step.credit.amount,
            "owner_ref": f"stall:{stall.stall_id}",
            "credit_account": stall.credit_account,
            "merchant_id": stall.merchant_id,
            "stall_id": stall.stall_id,
            "external_key": f"static:{step.credit.transaction_id}",
            "business_date": step.day,
            "created_at": as_utc(step.credit.credited_at),
            "bank_transaction_id": step.credit.transaction_id,
            **_counterparty(step.credit),
        }
        for step, stall in made
    ]
    inserted = session.execute(_INSERT_STATIC_PAYMENTS, {"now": now, "rows": json_rows(rows)})
    ids = {str(txn): int(payment_id) for payment_id, txn in inserted}
    for step, stall in made:
        step.charge = _Charge(
            ids[step.credit.transaction_id],
            None,
            step.credit.amount,
            PaymentStatus.SUCCEEDED,
            "charge",
            f"stall:{stall.stall_id}",
            "vietqr",
            stall.merchant_id,
            stall.stall_id,
            stall.credit_account,
            succeeded_at=now,
        )


_SUCCEED_CHARGES = text(
    "UPDATE payments AS p SET status = 'succeeded', succeeded_at = :now,"
    " bank_transaction_id = v.bank_transaction_id, counterparty_account = v.counterparty_account,"
    " counterparty_bank_bin = v.counterparty_bank_bin, counterparty_name = v.counterparty_name"
    " FROM json_populate_recordset(NULL::payments, CAST(:rows AS json)) AS v"
    " WHERE p.id = v.id AND p.status = 'pending'"
)


def _counterparty(credit: IncomingCredit) -> dict[str, str | None]:
    """What the payer's bank told us of the payer (a VietQR refund goes back there)."""
    return {
        "counterparty_account": credit.counterparty_account,
        "counterparty_bank_bin": credit.counterparty_bank_bin,
        "counterparty_name": credit.counterparty_name,
    }


def _succeed_charges(session: Session, steps: list[_Step], now: datetime) -> None:
    """Matched charges become succeeded (they are locked and were pending)."""
    paid = [(step.credit, charge) for step, charge in _matched(steps) if step.stall is None]
    if not paid:
        return
    rows = [
        {"id": charge.id, "bank_transaction_id": credit.transaction_id, **_counterparty(credit)}
        for credit, charge in paid
    ]
    result = session.execute(_SUCCEED_CHARGES, {"now": now, "rows": json_rows(rows)})
    if result.rowcount != len(paid):  # type: ignore[attr-defined]
        raise RuntimeError("a locked pending charge changed under us")
    for _, charge in paid:
        charge.succeeded_at = now


_FINISH_NOTIFICATIONS = text(
    "UPDATE bank_notifications AS b SET status = v.status, reason = v.reason,"
    " payment_id = v.payment_id"
    " FROM json_populate_recordset(NULL::bank_notifications, CAST(:rows AS json)) AS v"
    " WHERE b.id = v.id"
)


def _finish_notifications(session: Session, steps: list[_Step]) -> None:
    if not steps:
        return
    outcomes = [(step.note_id, step.outcome) for step in steps]
    rows = [
        {"id": note_id, "status": o.status, "reason": o.reason, "payment_id": o.payment_id}
        for note_id, o in outcomes
    ]
    session.execute(_FINISH_NOTIFICATIONS, {"rows": json_rows(rows)})


def _post(session: Session, steps: list[_Step]) -> None:
    """One journal transaction per credit: bank clearing → beneficiary, or → suspense."""
    entries = [_entry(step) for step in steps]
    # Every account in one look-up (cached), the merchants' payables made on first use.
    codes = {leg.account for entry in entries for leg in entry.legs}
    for _, charge in _matched(steps):
        if charge.merchant_id is not None and charge.credit_account.startswith("merchant:"):
            codes.add(ledger.merchant_payable_code(charge.merchant_id))
    ledger.account_refs(session, codes)
    ledger.post_many(session, entries)


def _entry(step: _Step) -> Entry:
    credit, charge = step.credit, step.charge
    if step.decision.matched and charge is not None:
        kind, memo = "bank_credit", payment_memo(charge.reference, charge.purpose)
        other = charge.credit_account
    else:
        kind, memo = "bank_credit_suspense", suspense_memo(str(step.decision.reason))
        other = "suspense"
    return Entry(
        f"bank:{credit.transaction_id}",
        kind,
        step.day,
        (Leg("bank_clearing", credit.amount), Leg(other, -credit.amount)),
        memo,
        charge.id if charge else None,
    )


def _announce(session: Session, steps: list[_Step], payloads: dict[int, dict[str, Any]]) -> None:
    """Domain handlers now (same transaction); live messages after commit, in credit order."""
    for step in steps:
        charge = step.charge
        if step.decision.matched and charge is not None:
            payload = payloads[step.index]
            handlers.publish(session, "payment.succeeded", payload)
            publish_after_commit(session, f"payment:{charge.id}", {"type": "status", **payload})
        elif step.decision.amount_mismatch and charge is not None:
            publish_after_commit(
                session,
                f"payment:{charge.id}",
                {
                    "type": "amount_mismatch",
                    "payment_id": charge.id,
                    "expected": charge.amount,
                    "received": step.credit.amount,
                    "status": PaymentStatus.PENDING,
                },
            )
