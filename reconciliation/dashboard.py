"""What the finance dashboard shows, and the sandbox's simulated statements.

Read-only except `import_sandbox_statement`, which submits a statement like an upload would.
"""

from __future__ import annotations

import csv
import io
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select

from core.clock import day_bounds_utc
from core.db import Database
from payments import ledger, statements_sim
from reconciliation import charts
from reconciliation.categories import MATCHED_CATEGORIES
from reconciliation.closing import channel_name
from reconciliation.errors import SandboxOnly
from reconciliation.lines import VIETNAM
from reconciliation.models import Run, RunStatus, Statement
from reconciliation.service import ReconConfig, submit_statement
from reconciliation.statements import CSV_COLUMNS

CHART_DAYS = 30


def volume_by_channel(
    db: Database, today: date, days: int = CHART_DAYS
) -> tuple[list[date], dict[str, list[int]]]:
    """Money into the collection account per business day and channel, oldest day first."""
    first = today - timedelta(days=days - 1)
    span = [first + timedelta(days=n) for n in range(days)]
    cl = ledger.clearing_lines().subquery()
    with db.reader() as session:
        rows = session.execute(
            select(cl.c.business_date, cl.c.kind, cl.c.purpose, func.sum(cl.c.amount))
            .where(
                cl.c.business_date.between(first, today),
                cl.c.amount > 0,
                cl.c.kind.not_like("recon_%"),
            )
            .group_by(cl.c.business_date, cl.c.kind, cl.c.purpose)
        ).all()
    series: dict[str, list[int]] = {}
    for day, kind, purpose, total in rows:
        values = series.setdefault(channel_name(kind, purpose), [0] * days)
        values[(day - first).days] += int(total or 0)
    return span, series


def match_rates(
    db: Database, today: date, days: int = CHART_DAYS
) -> tuple[list[date], list[int | None]]:
    """Per business day, the share of items matched by its latest finished runs (basis
    points), or None when the day has no finished run."""
    first = today - timedelta(days=days - 1)
    span = [first + timedelta(days=n) for n in range(days)]
    with db.reader() as session:
        runs = session.scalars(
            select(Run)
            .where(Run.business_date.between(first, today), Run.status == RunStatus.DONE)
            .order_by(Run.attempt)
        ).all()
    latest = {(run.business_date, run.account_number): run for run in runs}
    matched = [0] * days
    total = [0] * days
    for (day, _account), run in latest.items():
        counts = run.counts or {}
        matched[(day - first).days] += sum(counts.get(c.value, 0) for c in MATCHED_CATEGORIES)
        total[(day - first).days] += sum(counts.values())
    return span, [m * 10_000 // t if t else None for m, t in zip(matched, total, strict=True)]


def overview(db: Database, today: date, titles: dict[str, str]) -> dict[str, Any]:
    """The dashboard: the two charts as SVG, recent statements and runs."""
    days, series = volume_by_channel(db, today)
    rate_days, rates = match_rates(db, today)
    with db.reader() as session:
        statements = list(session.scalars(select(Statement).order_by(Statement.id.desc()).limit(8)))
        runs = list(session.scalars(select(Run).order_by(Run.id.desc()).limit(8)))
    return {
        "volume_svg": charts.volume_chart(titles["volume"], days, series),
        "rate_svg": charts.rate_chart(titles["rate"], rate_days, rates),
        "statements": statements,
        "runs": runs,
    }


# -- sandbox ----------------------------------------------------------------------------------
def sandbox_statement_csv(
    db: Database, cfg: ReconConfig, day: date, account_number: str | None
) -> str:
    """The statement the simulated bank would send for one business day, in our CSV format
    (the first collection account unless another is named)."""
    if not cfg.sandbox:
        raise SandboxOnly("simulated statements exist only in the sandbox (CASHLESS_SANDBOX)")
    account = cfg.check_account(account_number or cfg.accounts[0])
    start, end = day_bounds_utc(day)
    with db.reader() as session:
        entries = statements_sim.sandbox_entries(session, account, start, end)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in entries:
        booked = entry.booked_at.astimezone(VIETNAM)
        writer.writerow(
            [
                entry.transaction_id,
                booked.isoformat(timespec="seconds"),
                booked.date().isoformat(),
                entry.amount,
                entry.direction,
                entry.description,
                entry.counterparty_account,
                entry.counterparty_name,
            ]
        )
    return out.getvalue()


def import_sandbox_statement(
    db: Database, cfg: ReconConfig, day: date, account_number: str | None, actor: str
) -> Statement:
    """Submit the simulated bank's statement of `day` for import, as an upload would."""
    text = sandbox_statement_csv(db, cfg, day, account_number)
    return submit_statement(
        db,
        cfg,
        account_number=account_number or cfg.accounts[0],
        fmt="csv",
        filename=f"sandbox-{day.isoformat()}.csv",
        stream=io.BytesIO(text.encode("utf-8")),
        actor=actor,
    )
