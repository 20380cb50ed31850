"""RQ entry points of reconciliation. Each takes ids (or a day), re-reads state and is safe
to run twice; none needs a Flask app."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from core.queue import get_runner


def _config() -> Any:
    from reconciliation.service import ReconConfig

    return ReconConfig.from_settings(get_runner().settings)


def import_statement_job(statement_id: int) -> dict[str, Any]:
    """Import one spooled statement (all of its valid lines, or none)."""
    from reconciliation.service import import_statement

    statement = import_statement(get_runner().db, _config(), statement_id)
    return {"statement_id": statement.id, "status": statement.status}


def run_reconciliation_job(run_id: int) -> dict[str, Any]:
    """Match and classify one run; a retry after a crash starts the run afresh."""
    from reconciliation.service import execute_run

    return execute_run(get_runner().db, _config(), run_id)


def nightly_reconciliation_job(today: str) -> list[int]:
    """Scheduled once per business day (job id `reconcile-previous-day:<today>`): reconcile
    the previous business day of every collection account. A run already under way for that
    day is reused, so a second firing adds nothing."""
    from reconciliation.errors import DayClosed
    from reconciliation.service import start_run

    cfg = _config()
    day = date.fromisoformat(today) - timedelta(days=1)
    started = []
    for account in cfg.accounts:
        try:
            run, _created = start_run(
                get_runner().db, cfg, day=day, account_number=account, actor="scheduler"
            )
        except DayClosed:
            continue
        started.append(run.id)
    return started
