"""Server-Sent Events for one payment: the current state at once, then every change.

The subscription is opened before the state is read, so a change between the two is never
missed; a quiet stream re-reads the database every few seconds as a safety net.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

from core.db import Database
from core.events import LiveBus
from payments.models import Payment
from payments.service import event_payload
from payments.states import PaymentStatus

log = logging.getLogger(__name__)
FINAL = {
    PaymentStatus.SUCCEEDED,
    PaymentStatus.EXPIRED,
    PaymentStatus.CANCELLED,
    PaymentStatus.FAILED,
    PaymentStatus.REFUNDED,
}
HEARTBEAT_SECONDS = 5.0
MAX_STREAM_SECONDS = 900


def _sse(event: str, data: dict[str, Any]) -> str:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n"


def _read(db: Database, payment_id: int) -> dict[str, Any]:
    with db.reader() as session:
        payment = session.get(Payment, payment_id)
        assert payment is not None
        return event_payload(payment)


class _Polling:
    """Used when the live bus is unreachable (Redis down): the stream re-reads the database."""

    def get(self, timeout: float) -> dict[str, Any] | None:
        time.sleep(min(timeout, 1.0))
        return None

    def close(self) -> None:
        return None


def _subscribe(bus: LiveBus, channel: str) -> Any:
    try:
        return bus.subscribe(channel)
    except Exception:
        log.warning("live bus unavailable; streaming by polling the database")
        return _Polling()


def stream(
    db: Database, bus: LiveBus, payment_id: int, max_seconds: float = MAX_STREAM_SECONDS
) -> Iterator[str]:
    """Yield SSE frames until the payment reaches a final state or the time is up."""
    subscription = _subscribe(bus, f"payment:{payment_id}")
    try:
        state = _read(db, payment_id)
        yield "retry: 1000\n\n" + _sse("status", state)
        deadline = time.monotonic() + max_seconds
        while state["status"] not in FINAL and time.monotonic() < deadline:
            message = subscription.get(timeout=HEARTBEAT_SECONDS)
            if message is None:
                fresh = _read(db, payment_id)
                if fresh["status"] != state["status"]:
                    state = fresh
                    yield _sse("status", state)
                else:
                    yield ": keep-alive\n\n"
                continue
            kind = message.pop("type", "status")
            if kind == "status":
                state = message
            yield _sse(kind, message)
    finally:
        subscription.close()
