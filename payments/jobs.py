"""RQ entry points of payments. Each takes ids or nothing, re-reads state, is safe to run twice."""

from __future__ import annotations

from core.queue import get_runner


def expire_payments_job() -> int:
    """Scheduled every minute: expire pending VietQR payments past their deadline."""
    from payments.service import expire_due_payments

    return expire_due_payments(get_runner().db)


def deliver_sandbox_transfer_job(transfer_id: int) -> str:
    """The simulated bank sends its signed notification to our webhook over HTTP."""
    from payments.simulator import deliver_notification

    runner = get_runner()
    return deliver_notification(runner.db, runner.settings, transfer_id)


def deliver_webhook_job(delivery_id: int) -> str:
    """Deliver one merchant event to one endpoint; schedules its own retry on failure."""
    from payments.webhooks import deliver

    runner = get_runner()
    return deliver(runner.db, runner.settings.sandbox, delivery_id)
