"""Idempotency-Key storage (SPEC §2): replay, 422 on a changed body, 409 while in flight.

A key is scoped to its caller and kept for at least 7 days. The row is claimed in its own
short transaction before the use case runs, so two concurrent requests with one key cannot
both run: the database's unique constraint decides the winner.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import String, Text, UniqueConstraint, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, BigId, Database
from core.errors import BadRequest, Conflict, FieldError, ValidationFailed

KEY_RE = re.compile(r"^[A-Za-z0-9-]{1,255}$")
RETENTION = timedelta(days=7)
# A request still "in flight" after this long crashed before finishing; a retry may take over.
STALE_IN_FLIGHT = timedelta(seconds=60)


class IdempotencyRecord(Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("scope", "key"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(80))
    key: Mapped[str] = mapped_column(String(255))
    fingerprint: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    response_status: Mapped[int | None]
    response_body: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


@dataclass(frozen=True)
class Replay:
    status: int
    body: str


def check_key(raw: str | None, *, required: bool) -> str | None:
    """Validate the header: missing and required → 400, malformed → 422."""
    if raw is None or raw == "":
        if required:
            raise BadRequest(
                "this request needs an Idempotency-Key header", code="idempotency_key_missing"
            )
        return None
    if not KEY_RE.match(raw):
        message = "Idempotency-Key must be 1-255 of A-Z, a-z, 0-9 and '-'"
        raise ValidationFailed(
            message,
            code="idempotency_key_invalid",
            errors=[FieldError("Idempotency-Key", "invalid", message)],
        )
    return raw


def fingerprint(method: str, path: str, body: bytes) -> str:
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + body).hexdigest()


def claim(db: Database, scope: str, key: str, print_: str) -> Replay | None:
    """Claim a key for this request. None: go ahead. Replay: answer with the stored response.

    Raises 422 when the key was used with another request, 409 while the first still runs.
    """
    now = utcnow()
    with db.transaction() as session:
        insert = pg_insert if db.dialect == "postgresql" else sqlite_insert
        inserted = session.execute(
            insert(IdempotencyRecord)
            .values(
                scope=scope,
                key=key,
                fingerprint=print_,
                state="in_flight",
                started_at=now,
                expires_at=now + RETENTION,
            )
            .on_conflict_do_nothing()
            .returning(IdempotencyRecord.id)
        ).scalar()
        if inserted is not None:
            return None
        row = session.scalars(
            select(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .with_for_update()
        ).one()
        if row.expires_at < now:
            row.fingerprint, row.state, row.started_at = print_, "in_flight", now
            row.expires_at, row.response_status, row.response_body = now + RETENTION, None, None
            return None
        if row.fingerprint != print_:
            raise ValidationFailed(
                "this Idempotency-Key was used with a different request",
                code="idempotency_key_reused",
            )
        if row.state == "completed":
            assert row.response_status is not None
            return Replay(row.response_status, row.response_body or "")
        if now - row.started_at < STALE_IN_FLIGHT:
            raise Conflict(
                "a request with this Idempotency-Key is still in progress",
                code="idempotency_in_flight",
                headers={"Retry-After": "1"},
            )
        row.started_at = now
        return None


def complete(db: Database, scope: str, key: str, status: int, body: str) -> None:
    """Store the response to replay it for retries."""
    with db.transaction() as session:
        session.execute(
            update(IdempotencyRecord)
            .where(IdempotencyRecord.scope == scope, IdempotencyRecord.key == key)
            .values(state="completed", response_status=status, response_body=body)
        )


def release(db: Database, scope: str, key: str) -> None:
    """Forget a claim whose request failed on our side (5xx), so a retry runs again."""
    with db.transaction() as session:
        session.execute(
            delete(IdempotencyRecord).where(
                IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
            )
        )


def purge_expired_job() -> int:
    """Scheduled: delete keys past their retention. Safe to run twice."""
    from core.queue import get_runner

    db = get_runner().db
    with db.transaction() as session:
        result = session.execute(
            delete(IdempotencyRecord).where(IdempotencyRecord.expires_at < utcnow())
        )
        return int(result.rowcount)  # type: ignore[attr-defined]
