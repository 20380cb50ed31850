"""Every recurring job and when it runs. Cron strings are read in Asia/Ho_Chi_Minh."""

from __future__ import annotations

from core.queue import Schedule


def all_schedules() -> list[Schedule]:
    """The schedules of every package (core knows none of them; the application does)."""
    return [
        Schedule("sweeper", "core.queue.sweep_job", queue="high", interval=60),
        Schedule("expire-payments", "payments.jobs.expire_payments_job", queue="high",
                 interval=60),
        # 03:30 Asia/Ho_Chi_Minh, once per business day (the job id carries the day).
        Schedule("idempotency-purge", "core.idempotency.purge_expired_job", queue="low",
                 cron="30 3 * * *", per_business_day=True),
    ]
