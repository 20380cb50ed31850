"""Items of a run and what finance staff decide about them: accept, write off, link, adjust.

Every decision carries a mandatory note and is audited (who, when, before, after). A write-off
or an adjustment moves money through the ledger (`payments.ledger.post`, idempotent by a key
derived from the resolution); a link of a parked credit to a payment goes through payments'
own `apply_suspense_to_payment`. Decisions outlive re-runs: they are keyed by what they are
about (a statement line or a ledger line of the day), not by the item row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core import audit
from core.db import Database
from core.errors import BadRequest, invalid
from payments import ledger, notifications
from payments.ledger import Leg
from reconciliation.categories import MATCHED_CATEGORIES, Action
from reconciliation.errors import (
    AlreadyResolved,
    ItemNotFound,
    NothingToPost,
    NotResolvable,
    RunNotFound,
    StaleRun,
)
from reconciliation.models import Item, Resolution, Run, RunStatus, StatementLine
from reconciliation.service import check_open

# Where an adjustment's other leg may go (the bank clearing account is always the first leg).
ADJUST_ACCOUNTS = ("bank_fees", "write_offs", "suspense", "refunds_payable")
MONEY_ACTIONS = (Action.WRITE_OFF, Action.ADJUST)


@dataclass(frozen=True)
class Decision:
    """What finance asked for: an action, a note and the action's own fields."""

    action: Action
    note: str
    amount: int | None = None
    account: str | None = None
    posting_id: int | None = None
    statement_line_id: int | None = None
    payment_id: int | None = None


def resolve_item(
    db: Database, item_id: int, decision: Decision, *, actor: str, idempotency_key: str | None
) -> dict[str, Any]:
    """Resolve one item of the latest finished run of an open day, once.

    Guarantees: a note is required (422); `write_off` and `adjust` need an Idempotency-Key
    (400) and post one balanced ledger transaction into the item's day; the item is locked,
    so two concurrent decisions cannot both apply (the second gets 409 already_resolved);
    the decision, its ledger posting and its audit record commit together.
    """
    note = (decision.note or "").strip()
    if not note:
        raise invalid("note", "a note is required to resolve an item", "required")
    if decision.action in MONEY_ACTIONS and not idempotency_key:
        raise BadRequest(
            "write_off and adjust move money: send an Idempotency-Key header",
            code="idempotency_key_missing",
        )
    suspense_id = _suspense_notification(db, item_id) if decision.payment_id else None
    with db.transaction() as session:
        item, run = _resolvable(session, item_id)
        before = _snapshot(item)
        resolution = _record(session, item, run, decision, note, actor)
        _APPLY[decision.action](session, item, run, resolution, decision, suspense_id)
        item.resolution_id = resolution.id
        session.flush()
        trail = audit.record(
            session,
            actor=actor,
            action=f"reconciliation.item.{decision.action}",
            entity_type="recon_item",
            entity_id=item.id,
            before=before,
            after={**_snapshot(item), **_resolution_view(resolution)},
            note=note,
        )
        return {**_resolution_view(resolution), "audit": trail}


def _resolvable(session: Session, item_id: int) -> tuple[Item, Run]:
    item = session.get(Item, item_id, with_for_update=True)
    if item is None:
        raise ItemNotFound("no such item")
    run = session.get(Run, item.run_id)
    if run is None:
        raise RunNotFound("no such run")
    if item.category in MATCHED_CATEGORIES:
        raise NotResolvable(f"a {item.category} item needs no resolution")
    if item.resolution_id is not None:
        raise AlreadyResolved("this item is already resolved")
    latest = session.scalar(
        select(Run.id)
        .where(Run.account_number == run.account_number, Run.business_date == run.business_date)
        .order_by(Run.attempt.desc())
        .limit(1)
    )
    if run.status != RunStatus.DONE or latest != run.id:
        raise StaleRun("resolve the items of the latest finished run of the day")
    check_open(session, run.business_date)
    return item, run


def _subject(item: Item) -> tuple[str, int]:
    if item.statement_line_id is not None:
        return "line", item.statement_line_id
    assert item.posting_id is not None
    return "posting", item.posting_id


def _record(
    session: Session, item: Item, run: Run, decision: Decision, note: str, actor: str
) -> Resolution:
    subject, subject_id = _subject(item)
    resolution = Resolution(
        account_number=run.account_number,
        business_date=run.business_date,
        subject=subject,
        subject_id=subject_id,
        category=item.category,
        action=decision.action,
        note=note,
        item_id=item.id,
        actor=actor,
    )
    session.add(resolution)
    session.flush()
    return resolution


def _accept(session: Session, item: Item, run: Run, res: Resolution, *_: Any) -> None:
    """Nothing moves: finance confirms the item is explained (the note says how)."""


def _write_off(session: Session, item: Item, run: Run, res: Resolution, *_: Any) -> None:
    """Book the difference between bank and ledger to the `write_offs` expense account."""
    difference = (item.line_amount or 0) - (item.ledger_amount or 0)
    if item.related_posting_id is None and difference == 0:
        raise NothingToPost(
            "bank and ledger agree on the amount: link, accept or adjust this item instead"
        )
    _post(session, run, res, "recon_write_off", difference, "write_offs")


def _adjust(
    session: Session, item: Item, run: Run, res: Resolution, decision: Decision, *_: Any
) -> None:
    """Post `amount` to the bank clearing account against the chosen account."""
    if not decision.amount:
        raise invalid("amount", "an adjustment needs a non-zero amount", "required")
    account = decision.account or "bank_fees"
    if account not in ADJUST_ACCOUNTS:
        raise invalid("account", f"account must be one of {', '.join(ADJUST_ACCOUNTS)}")
    _post(session, run, res, "recon_adjustment", decision.amount, account)


def _post(session: Session, run: Run, res: Resolution, kind: str, amount: int, other: str) -> None:
    key = f"recon:{res.id}:{kind}"
    ledger.post(
        session,
        external_key=key,
        kind=kind,
        business_date=run.business_date,
        memo=f"reconciliation {res.subject} {res.subject_id}: {res.note}"[:500],
        legs=[Leg("bank_clearing", amount), Leg(other, -amount)],
    )
    res.amount, res.counter_account, res.journal_key = amount, other, key


def _link(
    session: Session,
    item: Item,
    run: Run,
    res: Resolution,
    decision: Decision,
    suspense_id: int | None,
) -> None:
    """Pair a line and a ledger line by hand, or apply a parked credit to a payment."""
    if decision.payment_id is not None:
        if suspense_id is None:
            raise invalid("payment_id", "only a credit parked in suspense can go to a payment")
        notifications.apply_suspense_to_payment(
            session, suspense_id, decision.payment_id, res.actor, res.note
        )
        res.linked_to = f"payment:{decision.payment_id}"
        return
    other = _counterpart(session, item, decision)
    if (other.line_amount if item.line_amount is None else item.line_amount) != (
        other.ledger_amount if item.ledger_amount is None else item.ledger_amount
    ):
        raise NothingToPost("the amounts differ: adjust or write off the difference instead")
    twin = _record(session, other, run, decision, res.note, res.actor)
    twin.linked_to = f"{res.subject}:{res.subject_id}"
    res.linked_to = f"{twin.subject}:{twin.subject_id}"
    other.resolution_id = twin.id


def _counterpart(session: Session, item: Item, decision: Decision) -> Item:
    """The unresolved item of the same run on the other side of a manual link."""
    query = select(Item).where(Item.run_id == item.run_id, Item.resolution_id.is_(None))
    if item.statement_line_id is not None and item.posting_id is None and decision.posting_id:
        query = query.where(
            Item.posting_id == decision.posting_id, Item.statement_line_id.is_(None)
        )
        field = "posting_id"
    elif (
        item.posting_id is not None
        and item.statement_line_id is None
        and (decision.statement_line_id)
    ):
        query = query.where(
            Item.statement_line_id == decision.statement_line_id, Item.posting_id.is_(None)
        )
        field = "statement_line_id"
    else:
        raise invalid(
            "link",
            "link a statement line to a ledger line (posting_id), a ledger line to a "
            "statement line (statement_line_id), or a parked credit to a payment (payment_id)",
        )
    other = session.scalars(query.with_for_update()).first()
    if other is None:
        raise invalid(field, "no unresolved item of this run on the other side")
    return other


def _suspense_notification(db: Database, item_id: int) -> int | None:
    """The parked bank credit behind an item's ledger line, if it is one."""
    with db.reader() as session:
        item = session.get(Item, item_id)
        if item is None or item.posting_id is None:
            return None
        cl = ledger.clearing_lines().subquery()
        key = session.scalar(select(cl.c.external_key).where(cl.c.posting_id == item.posting_id))
    if not key or not key.startswith("bank:"):
        return None
    txn, cursor = key.removeprefix("bank:"), None
    while True:  # payments lists unresolved suspense credits; there are few of them
        page = notifications.list_suspense(db, limit=200, starting_after=cursor)
        for note in page["data"]:
            if note.transaction_id == txn:
                return int(note.id)
        if not page["has_more"]:
            return None
        cursor = page["next_cursor"]


_APPLY = {
    Action.ACCEPT: _accept,
    Action.WRITE_OFF: _write_off,
    Action.ADJUST: _adjust,
    Action.LINK: _link,
}


def _snapshot(item: Item) -> dict[str, Any]:
    return {
        "item_id": item.id,
        "category": item.category,
        "statement_line_id": item.statement_line_id,
        "posting_id": item.posting_id,
        "line_amount": item.line_amount,
        "ledger_amount": item.ledger_amount,
        "resolution_id": item.resolution_id,
    }


def _resolution_view(res: Resolution) -> dict[str, Any]:
    return {
        "id": res.id,
        "item_id": res.item_id,
        "action": res.action,
        "note": res.note,
        "amount": res.amount,
        "account": res.counter_account,
        "linked_to": res.linked_to,
        "journal_key": res.journal_key,
        "resolved_by": res.actor,
        "resolved_at": res.created_at.isoformat() if res.created_at else None,
    }


# -- reading items ----------------------------------------------------------------------------
def list_items(
    db: Database,
    run_id: int,
    *,
    category: str | None,
    needs_resolution: bool = False,
    limit: int,
    starting_after: int | None,
) -> dict[str, Any]:
    """A run's items in id order — of one category, or only those needing a resolution —
    with their statement line, ledger line and resolution."""
    with db.reader() as session:
        if session.get(Run, run_id) is None:
            raise RunNotFound("no such run")
        query = (
            select(Item, StatementLine, Resolution)
            .outerjoin(StatementLine, StatementLine.id == Item.statement_line_id)
            .outerjoin(Resolution, Resolution.id == Item.resolution_id)
            .where(Item.run_id == run_id)
        )
        if category:
            query = query.where(Item.category == category)
        if needs_resolution:
            query = query.where(Item.category.not_in([c.value for c in MATCHED_CATEGORIES]))
        if starting_after is not None:
            query = query.where(Item.id > starting_after)
        rows = session.execute(query.order_by(Item.id).limit(limit + 1)).all()
        page = rows[:limit]
        ledger_lines = _ledger_lines(
            session, [r[0].posting_id or r[0].related_posting_id for r in page]
        )
    data = [_item_view(item, line, res, ledger_lines) for item, line, res in page]
    more = len(rows) > limit
    return {"data": data, "has_more": more, "next_cursor": data[-1]["id"] if more else None}


def _ledger_lines(session: Session, ids: list[int | None]) -> dict[int, dict[str, Any]]:
    wanted = [i for i in ids if i is not None]
    if not wanted:
        return {}
    cl = ledger.clearing_lines().subquery()
    rows = session.execute(select(cl).where(cl.c.posting_id.in_(wanted))).mappings()
    return {
        int(row["posting_id"]): {
            "posting_id": row["posting_id"],
            "amount": row["amount"],
            "business_date": row["business_date"],
            "external_key": row["external_key"],
            "kind": row["kind"],
            "memo": row["memo"],
            "payment_id": row["payment_id"],
            "reference": row["payment_reference"] or row["stall_reference"],
        }
        for row in rows
    }


def _item_view(
    item: Item,
    line: StatementLine | None,
    res: Resolution | None,
    ledger_lines: dict[int, dict[str, Any]],
) -> dict[str, Any]:
    posting = item.posting_id or item.related_posting_id
    return {
        "id": item.id,
        "run_id": item.run_id,
        "category": item.category,
        "method": item.method,
        "statement_line_id": item.statement_line_id,
        "posting_id": item.posting_id,
        "related_posting_id": item.related_posting_id,
        "member_count": item.member_count,
        "line_amount": item.line_amount,
        "ledger_amount": item.ledger_amount,
        "fee": item.fee,
        "reason": item.reason,
        "statement_line": line,
        "ledger_line": ledger_lines.get(posting) if posting else None,
        "resolution": _resolution_view(res) if res else None,
        "resolved": res is not None,
    }
