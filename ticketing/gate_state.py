"""The database side of a gate decision: the scan as reported and the `GateState` port.

`ticketing.validation` decides; this module remembers, in the taps table, what it needs to:
which (validator, ticket, step) was accepted (a partial unique index), when a ticket last passed a
validator (anti-passback), and whether a single ride is consumed (a conditional UPDATE).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ticketing.models import Tap, TapSource, Ticket, TicketStatus
from ticketing.validation import AcceptRecord, Decision, Outcome, Reason

STEP_SECONDS = 30
# Replay memory is 2 h and anti-passback at most a day: accepts further away never matter.
LOOKBACK = timedelta(days=1)


@dataclass(frozen=True)
class Scan:
    """One scan as a validator reports it; (validator_id, validator_seq) is its idempotent id."""

    validator_id: str
    validator_seq: int
    qr_text: str
    scanned_at: datetime
    source: TapSource
    device_decision: str | None = None
    device_reason: str | None = None
    lat: float | None = None
    lon: float | None = None

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.qr_text.encode("utf-8")).hexdigest()

    @classmethod
    def online(cls, body: dict[str, Any], received_at: datetime) -> Scan:
        """A scan sent to `POST /validations` (its `scanned_at` defaults to our clock)."""
        return cls(
            body["validator_id"],
            body["validator_seq"],
            body["qr_text"],
            body.get("scanned_at") or received_at,
            TapSource.ONLINE,
            lat=body.get("lat"),
            lon=body.get("lon"),
        )

    @classmethod
    def offline(cls, validator_id: str, tap: dict[str, Any]) -> Scan:
        """A tap from an upload: `{validator_seq, qr_text, scanned_at, decision, reason}`."""
        return cls(
            validator_id,
            tap["validator_seq"],
            tap["qr_text"],
            tap["scanned_at"],
            TapSource.OFFLINE,
            tap["decision"],
            tap["reason"],
            tap.get("lat"),
            tap.get("lon"),
        )


def epoch(at: datetime) -> int:
    return int(at.timestamp())


class _Lost(Exception):
    """Another accept of the same single ride got there first."""


class DbGateState:
    """`GateState` over the taps table, for one scan.

    `record_accept` inserts the accepted tap under the unique index (validator, ticket, step)
    and, for a single ride, consumes it with a conditional UPDATE in the same savepoint: a
    concurrent accept of the same step or ride makes it return False and leaves nothing behind.
    Replay and anti-passback are answered from one read of the ticket's accepts at the validator.
    """

    def __init__(self, session: Session, scan: Scan, decided_at: datetime, received_at: datetime):
        self.session, self.scan = session, scan
        self.decided_at, self.received_at = decided_at, received_at
        self.accepted: Tap | None = None
        self._seen: tuple[tuple[str, int], list[tuple[int, datetime]]] | None = None

    def _accepts(self, validator_id: str, ticket_id: int) -> list[tuple[int, datetime]]:
        key = (validator_id, ticket_id)
        if self._seen is None or self._seen[0] != key:
            stmt = select(Tap.step, Tap.decided_at).where(
                Tap.validator_id == validator_id,
                Tap.ticket_id == ticket_id,
                Tap.decision == Outcome.ACCEPT,
                Tap.decided_at.between(self.decided_at - LOOKBACK, self.decided_at + LOOKBACK),
            )
            rows = [(step, at) for step, at in self.session.execute(stmt) if step is not None]
            self._seen = (key, rows)
        return self._seen[1]

    def step_accepted(self, validator_id: str, ticket_id: int, step: int) -> bool:
        return any(s == step for s, _ in self._accepts(validator_id, ticket_id))

    def last_accept_at(self, validator_id: str, ticket_id: int) -> int | None:
        # Only accepts up to this decision: offline uploads arriving out of order stay fair.
        times = [at for _, at in self._accepts(validator_id, ticket_id) if at <= self.decided_at]
        return epoch(max(times)) if times else None

    def ride_consumed(self, ticket_id: int) -> bool:
        stmt = select(Ticket.consumed_at).where(Ticket.id == ticket_id)
        return self.session.scalar(stmt) is not None

    def record_accept(self, record: AcceptRecord) -> bool:
        self._seen = None  # whatever happens, the next question must read the table again
        values = tap_values(self.scan, self.decided_at, self.received_at)
        values.update(ticket_id=record.ticket_id, step=record.step, decision=Outcome.ACCEPT)
        values.update(reason=Reason.OK, skew=record.at - STEP_SECONDS * record.step)
        if not record.consumes_ride:
            self.accepted = self._insert_once(values)
            return self.accepted is not None
        try:
            with self.session.begin_nested():
                tap = Tap(**values)
                self.session.add(tap)
                self.session.flush()
                if not self._consume(record.ticket_id):
                    raise _Lost
        except (IntegrityError, _Lost):
            return False
        self.accepted = tap
        return True

    def _insert_once(self, values: dict[str, Any]) -> Tap | None:
        """INSERT … ON CONFLICT DO NOTHING RETURNING: a pass needs no savepoint."""
        dialect = self.session.get_bind().dialect.name
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        stmt = insert(Tap).values(**values).on_conflict_do_nothing().returning(Tap)
        return self.session.scalars(stmt).first()

    def _consume(self, ticket_id: int) -> bool:
        stmt = (
            update(Ticket)
            .where(Ticket.id == ticket_id, Ticket.consumed_at.is_(None))
            .values(
                consumed_at=self.decided_at,
                status=case(
                    (Ticket.status == TicketStatus.ACTIVE, TicketStatus.CONSUMED),
                    else_=Ticket.status,
                ),
            )
            .execution_options(synchronize_session=False)
        )
        return bool(self.session.execute(stmt).rowcount)  # type: ignore[attr-defined]


def tap_values(scan: Scan, decided_at: datetime, received_at: datetime) -> dict[str, Any]:
    return {
        "validator_id": scan.validator_id,
        "validator_seq": scan.validator_seq,
        "qr_sha256": scan.digest,
        "source": scan.source,
        "device_decision": scan.device_decision,
        "device_reason": scan.device_reason,
        "lat": scan.lat,
        "lon": scan.lon,
        "scanned_at": scan.scanned_at.astimezone(UTC),
        "decided_at": decided_at,
        "received_at": received_at,
    }


def insert_tap(
    session: Session, scan: Scan, decision: Decision, decided_at: datetime, received_at: datetime
) -> Tap:
    """Store a tap that was not accepted (a deny, or a gate's own refusal)."""
    tap = Tap(**tap_values(scan, decided_at, received_at))
    tap.ticket_id, tap.step, tap.skew = decision.ticket_id, decision.step, decision.skew
    tap.decision, tap.reason = decision.decision, decision.reason
    session.add(tap)
    session.flush()
    return tap
