"""Revocations: adding and lifting them, the change sequence, and the lookups gates use.

Every change (a revocation added or lifted, a product or validator changed) takes the next
number of the `bundle` counter with `UPDATE … RETURNING`. The row lock is held until commit, so
changes commit in sequence order: a reader that first reads the counter value N and then the
changes up to N cannot miss one, which makes the bundle's `since` delta sync exact.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from core import audit
from ticketing.errors import TicketNotFound, TicketNotUsable
from ticketing.models import Counter, Revocation, Ticket, TicketStatus
from ticketing.validation import Revocation as RevocationEntry

BUNDLE_COUNTER = "bundle"
CREDENTIAL_LIFETIME = timedelta(hours=72)


def next_seq(session: Session) -> int:
    """Take the next change number (locks the counter row until the transaction ends)."""
    stmt = (
        update(Counter)
        .where(Counter.name == BUNDLE_COUNTER)
        .values(value=Counter.value + 1)
        .returning(Counter.value)
    )
    value = session.execute(stmt).scalar()
    if value is None:  # a database created without the migration's seed row
        insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
        session.execute(
            insert(Counter).values(name=BUNDLE_COUNTER, value=0).on_conflict_do_nothing()
        )
        value = session.execute(stmt).scalar()
    assert value is not None
    return int(value)


def current_seq(session: Session) -> int:
    value = session.scalar(select(Counter.value).where(Counter.name == BUNDLE_COUNTER))
    return int(value or 0)


def _active_whole_ticket(session: Session, ticket_id: int) -> list[Revocation]:
    return list(
        session.scalars(
            select(Revocation).where(
                Revocation.ticket_id == ticket_id,
                Revocation.device_key.is_(None),
                Revocation.lifted_at.is_(None),
            )
        )
    )


def revoke(
    session: Session, ticket: Ticket, *, reason: str, actor: str, now: datetime, note: str = ""
) -> Revocation | None:
    """Revoke the whole ticket until its validity ends; None when it already is revoked.

    The caller holds the ticket row lock. Audited.
    """
    if _active_whole_ticket(session, ticket.id):
        return None
    row = Revocation(
        ticket_id=ticket.id,
        reason=reason,
        note=note or None,
        until=max(ticket.valid_until, now),
        created_at=now,
        created_by=actor,
        seq=next_seq(session),
    )
    session.add(row)
    before = ticket.status
    ticket.status, ticket.revoked_at = TicketStatus.REVOKED, now
    audit.record(
        session,
        actor=actor,
        action="ticket.revoke",
        entity_type="ticket",
        entity_id=ticket.id,
        before={"status": before},
        after={"status": ticket.status, "reason": reason},
        note=note or None,
    )
    return row


def revoke_device_binding(
    session: Session, ticket: Ticket, device_key: bytes, *, actor: str, now: datetime
) -> Revocation:
    """Refuse the credentials of `ticket` bound to `device_key` (a lost or replaced phone).

    They live at most 72 h from their issue, so the entry can drop out after that.
    """
    row = Revocation(
        ticket_id=ticket.id,
        device_key=device_key,
        reason="rebound",
        until=min(ticket.valid_until, now + CREDENTIAL_LIFETIME),
        created_at=now,
        created_by=actor,
        seq=next_seq(session),
    )
    session.add(row)
    return row


def lift(session: Session, ticket: Ticket, *, actor: str, now: datetime, note: str) -> int:
    """Un-revoke a ticket: lift its whole-ticket revocations; audited. Returns how many."""
    rows = _active_whole_ticket(session, ticket.id)
    if not rows:
        raise TicketNotUsable("the ticket is not revoked", code="ticket_not_revoked")
    for row in rows:
        row.lifted_at, row.lifted_by, row.seq = now, actor, next_seq(session)
    before = ticket.status
    ticket.status = TicketStatus.CONSUMED if ticket.consumed_at else TicketStatus.ACTIVE
    ticket.revoked_at = None
    audit.record(
        session,
        actor=actor,
        action="ticket.unrevoke",
        entity_type="ticket",
        entity_id=ticket.id,
        before={"status": before},
        after={"status": ticket.status, "lifted": [r.id for r in rows]},
        note=note,
    )
    return len(rows)


def lock_ticket(session: Session, ticket_id: int) -> Ticket:
    ticket = session.get(Ticket, ticket_id, with_for_update=True)
    if ticket is None:
        raise TicketNotFound("no such ticket")
    return ticket


# -- lookups ------------------------------------------------------------------------------------
def _at(unix: int) -> datetime:
    return datetime.fromtimestamp(unix, UTC)


class DbRevocations:
    """`RevocationLookup` over the database, as known at the decision time `now`.

    With `as_of_scan` (re-verifying an offline tap) a revocation created after the scan does
    not count, since the gate could not have known it; a lifted one counts until it was lifted.
    A ticket we have no row for counts as revoked.
    """

    def __init__(self, session: Session, *, as_of_scan: bool = False) -> None:
        self.session = session
        self.as_of_scan = as_of_scan

    def is_revoked(self, ticket_id: int, device_key: bytes | None, now: int) -> bool:
        at = _at(now)
        conditions = [
            Revocation.ticket_id == ticket_id,
            Revocation.until >= at,
            Revocation.device_key.is_(None)
            if device_key is None
            else (Revocation.device_key.is_(None) | (Revocation.device_key == device_key)),
        ]
        if self.as_of_scan:
            conditions.append(Revocation.created_at <= at)
            conditions.append(Revocation.lifted_at.is_(None) | (Revocation.lifted_at > at))
        else:
            conditions.append(Revocation.lifted_at.is_(None))
        # One round trip: does the ticket exist, and is a revocation in force?
        stmt = select(Ticket.id, exists().where(*conditions)).where(Ticket.id == ticket_id)
        row = self.session.execute(stmt).first()
        return row is None or bool(row[1])


@dataclass(frozen=True)
class RevocationChanges:
    entries: list[RevocationEntry]
    removed: list[bool]  # parallel to entries: True for a lifted revocation (a removal)
    since: int | None  # None: a full list (asked for, or `since` was unknown to us)
    next_since: int


def revocation_changes(session: Session, since: int | None, now: datetime) -> RevocationChanges:
    """Revocations for a bundle: all in force (no `since`), or every change after `since`.

    A `since` beyond our sequence (a gate that synced with a restored database) gets the full
    list, so it can never silently miss revocations.
    """
    upto = current_seq(session)  # read first: every change numbered up to it is committed
    if since is not None and since > upto:
        since = None
    stmt = select(Revocation).where(Revocation.seq <= upto).order_by(Revocation.seq)
    if since is None:
        stmt = stmt.where(Revocation.lifted_at.is_(None), Revocation.until >= now)
    else:
        stmt = stmt.where(Revocation.seq > since)
    entries, removed = [], []
    for row in session.scalars(stmt):
        lifted = row.lifted_at is not None
        until = row.lifted_at if row.lifted_at is not None else row.until
        entries.append(RevocationEntry(row.ticket_id, int(until.timestamp()), row.device_key))
        removed.append(lifted)
    return RevocationChanges(entries, removed, since, upto)
