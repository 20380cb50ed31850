"""RQ entry points of merchants. Each takes JSON primitives, re-reads state, is safe to run
twice, and needs no Flask app."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from core.queue import get_runner


def run_payouts_job(run_day: str) -> dict[str, Any]:
    """Scheduled after midnight Asia/Ho_Chi_Minh: pay every merchant for the previous business
    day. `run_day` is the business day the schedule fired on (its job id carries it), so a
    second firing of the same night is one outbox row, and a re-run adds no batch."""
    from merchants.payouts import run_payouts

    day = date.fromisoformat(run_day) - timedelta(days=1)
    from payments.service import PaymentsConfig

    runner = get_runner()
    cfg = PaymentsConfig.from_settings(runner.settings) if runner.settings else None
    run = run_payouts(runner.db, day, actor="scheduler", cfg=cfg)
    return {
        "business_date": day.isoformat(),
        "batches": len(run.batches),
        "paid": sum(batch.net_amount for batch in run.batches),
    }
