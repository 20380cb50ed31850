"""Events for merchants: stored for the catch-up list and delivered to their webhooks.

`record_merchant_event` runs in the money transaction; deliveries are outbox jobs, so an
event is never sent for a payment that rolled back, and never lost if Redis is down.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session

from core.clock import utcnow
from core.queue import enqueue
from payments.models import MerchantEvent, WebhookDelivery, WebhookEndpoint

EVENT_TYPES = ("payment.succeeded", "payment.expired", "payment.refunded", "payout.sent")


def record_merchant_event(
    session: Session, merchant_id: int, type_: str, data: dict[str, Any]
) -> MerchantEvent:
    """Store an event and queue one delivery per active endpoint of the merchant."""
    if type_ not in EVENT_TYPES:
        raise ValueError(f"unknown event type {type_!r}")
    now = utcnow()
    event = MerchantEvent(
        event_id=f"msg_{secrets.token_hex(12)}",
        merchant_id=merchant_id,
        type=type_,
        created_at=now,
        payload={"type": type_, "timestamp": now.isoformat(), "data": data},
    )
    session.add(event)
    session.flush()
    endpoints = session.scalars(
        select(WebhookEndpoint.id).where(
            WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.active.is_(True)
        )
    ).all()
    for endpoint_id in endpoints:
        _deliver(session, event.id, endpoint_id)
    return event


def _deliver(session: Session, event_id: int, endpoint_id: int) -> None:
    delivery = WebhookDelivery(event_id=event_id, endpoint_id=endpoint_id, status="pending")
    session.add(delivery)
    session.flush()
    enqueue(
        session,
        "payments.jobs.deliver_webhook_job",
        delivery.id,
        job_id=f"webhook:{delivery.id}:1",
        queue="low",
        max_attempts=3,
    )


# PostgreSQL: the whole batch as one JSON parameter (the statement text never changes).
_INSERT_EVENTS = text(
    "INSERT INTO merchant_events (event_id, merchant_id, type, payload, created_at)"
    " SELECT event_id, merchant_id, type, payload, created_at"
    " FROM json_populate_recordset(NULL::merchant_events, CAST(:rows AS json))"
    " RETURNING id, event_id"
)


def record_merchant_events(
    session: Session, events: Sequence[tuple[int, str, dict[str, Any]]]
) -> list[int]:
    """`record_merchant_event` for many `(merchant_id, type, data)` at once, in order: the
    same rows and deliveries in one INSERT and one endpoint look-up. Returns the event ids."""
    if any(type_ not in EVENT_TYPES for _, type_, _ in events):
        raise ValueError("unknown event type")
    if not events:
        return []
    now = utcnow()
    rows = [
        {
            "event_id": f"msg_{secrets.token_hex(12)}",
            "merchant_id": merchant_id,
            "type": type_,
            "created_at": now.isoformat(),
            "payload": {"type": type_, "timestamp": now.isoformat(), "data": data},
        }
        for merchant_id, type_, data in events
    ]
    if session.get_bind().dialect.name == "postgresql":
        found = session.execute(_INSERT_EVENTS, {"rows": json.dumps(rows)})
        by_event = {event_id: row_id for row_id, event_id in found}
        ids = [by_event[row["event_id"]] for row in rows]
    else:
        stmt = insert(MerchantEvent).returning(MerchantEvent.id, sort_by_parameter_order=True)
        ids = list(session.scalars(stmt, [{**row, "created_at": now} for row in rows]))
    _deliver_all(session, ids, [merchant_id for merchant_id, _, _ in events])
    return ids


def _deliver_all(session: Session, ids: list[int], merchants: list[int]) -> None:
    """One delivery (an outbox job) per event and active endpoint of its merchant."""
    endpoints: dict[int, list[int]] = {}
    for endpoint_id, merchant_id in session.execute(
        select(WebhookEndpoint.id, WebhookEndpoint.merchant_id)
        .where(
            WebhookEndpoint.merchant_id.in_(sorted(set(merchants))),
            WebhookEndpoint.active.is_(True),
        )
        .order_by(WebhookEndpoint.id)
    ):
        endpoints.setdefault(merchant_id, []).append(endpoint_id)
    for event_id, merchant_id in zip(ids, merchants, strict=True):
        for endpoint_id in endpoints.get(merchant_id, ()):
            _deliver(session, event_id, endpoint_id)
