"""A ping that travels API → outbox → queue → worker → database, so that path is always proven."""

from __future__ import annotations

import os
import socket
import time
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from core.clock import utcnow
from core.db import Base, BigId, Database
from core.errors import NotFound
from core.queue import enqueue, get_runner


class Ping(Base):
    __tablename__ = "pings"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default="queued")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    answered_at: Mapped[datetime | None]
    answered_by: Mapped[str | None] = mapped_column(String(200))


def create_ping(db: Database, message: str, hold_seconds: int = 0) -> Ping:
    """Store a ping and enqueue its job in the same transaction.

    `hold_seconds` keeps the job busy that long before answering (fault tests kill a worker
    in the middle of it).
    """
    with db.transaction() as session:
        ping = Ping(message=message, status="queued")
        session.add(ping)
        session.flush()
        enqueue(
            session,
            "core.diagnostics.answer_ping_job",
            ping.id,
            hold_seconds,
            job_id=f"ping:{ping.id}",
            queue="high",
        )
        return ping


def get_ping(db: Database, ping_id: int) -> Ping:
    with db.reader() as session:
        ping = session.get(Ping, ping_id)
        if ping is None:
            raise NotFound("no such ping")
        return ping


def answer_ping_job(ping_id: int, hold_seconds: int = 0) -> str:
    """Mark a ping answered by this process. Safe to run twice (the first answer stays)."""
    db = get_runner().db
    if hold_seconds:
        time.sleep(min(hold_seconds, 30))
    worker = f"{socket.gethostname()}:{os.getpid()}"
    with db.transaction() as session:
        ping = session.get(Ping, ping_id, with_for_update=True)
        if ping is None or ping.status == "answered":
            return "skipped"
        ping.status = "answered"
        ping.answered_at = utcnow()
        ping.answered_by = worker
    return worker
