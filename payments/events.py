"""Events for merchants: stored for the catch-up list and delivered to their webhooks.

`record_merchant_event` runs in the money transaction; deliveries are outbox jobs, so an
event is never sent for a payment that rolled back, and never lost if Redis is down.
"""

from __future__ import annotations

import secrets
from typing import Any

from sqlalchemy import select
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
        delivery = WebhookDelivery(event_id=event.id, endpoint_id=endpoint_id, status="pending")
        session.add(delivery)
        session.flush()
        enqueue(
            session,
            "payments.jobs.deliver_webhook_job",
            delivery.id,
            job_id=f"webhook:{delivery.id}:1",
            queue="low",
            max_attempts=1,
        )
    return event
