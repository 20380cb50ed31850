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
        # 00:30 Asia/Ho_Chi_Minh: pay every merchant for the business day that just ended.
        Schedule("merchant-payouts", "merchants.jobs.run_payouts_job", queue="default",
                 cron="30 0 * * *", per_business_day=True),
        # 05:00 Asia/Ho_Chi_Minh, after the banks' overnight statements: reconcile the previous
        # business day of every collection account (job id `reconcile-previous-day:<today>`).
        Schedule("reconcile-previous-day",
                 "reconciliation.jobs.nightly_reconciliation_job", queue="default",
                 cron="0 5 * * *", per_business_day=True),
    ]
