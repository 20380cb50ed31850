"""The daily close and its signed report (SPEC §9 "Daily close", §13 "Runs and close").

A day closes when every collection account has a finished latest run and no item of it waits
for a resolution. Closing marks the day closed in the ledger (`payments.ledger.close_day`;
from then on the database refuses postings dated in it), and stores the close report as CSV
and XLSX with a detached ES256 JWS (RFC 7515 appendix F) made with the platform's "report"
key, so that a downloaded report can be verified later against the published report keys.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import jwt
from sqlalchemy import Select, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core import audit
from core.clock import utcnow
from core.db import Database
from core.errors import invalid
from core.keys import KeyRing, LoadedKey, Purpose, jwks
from payments import ledger
from reconciliation.categories import MATCHED_CATEGORIES, OWN_KIND_PREFIX
from reconciliation.errors import DayNotReconciled
from reconciliation.models import (
    DayClose,
    Item,
    Resolution,
    Run,
    RunStatus,
    Statement,
    StatementLine,
)
from reconciliation.reports import (
    CSV_MIMETYPE,
    XLSX_MIMETYPE,
    DailyReport,
    render_csv,
    render_xlsx,
)
from reconciliation.service import ReconConfig, unresolved_count

SIGNATURE_HEADER = "X-Report-Signature"


@dataclass(frozen=True)
class ReportFile:
    content: bytes
    mimetype: str
    filename: str
    signature: str


def close_business_day(
    db: Database, keyring: KeyRing, cfg: ReconConfig, day: date, actor: str
) -> DayClose:
    """Close a business day once every account's latest run is done and fully resolved.

    Idempotent: closing a closed day returns the first close. Raises DayNotReconciled (409)
    listing what is missing. In one transaction: the ledger's closed day, the stored and
    signed report, and the audit record.
    """
    key = keyring.current(Purpose.REPORT)  # before our transaction: it may create the key
    with db.transaction() as session:
        found = session.get(DayClose, day)
        if found is not None:
            return found
        runs = latest_runs(session, cfg, day)
        problems = close_blockers(session, cfg, runs)
        if problems:
            raise DayNotReconciled("; ".join(problems), extra={"problems": problems})
        now = utcnow()
        report = gather(session, cfg, day, status="closed", closed_by=actor, now=now)
        close = _stored_close(report, key, actor, now)
        try:
            with session.begin_nested():
                session.add(close)
                session.flush()
        except IntegrityError:  # a concurrent close won
            return session.get(DayClose, day)  # type: ignore[return-value]
        ledger.close_day(session, day, actor)
        audit.record(
            session,
            actor=actor,
            action="reconciliation.day.close",
            entity_type="business_day",
            entity_id=day.isoformat(),
            before={"closed": False},
            after={"closed": True, **close.summary},
        )
        return close


def latest_runs(session: Session, cfg: ReconConfig, day: date) -> dict[str, Run | None]:
    """Each collection account's most recent run of the day (None when there is none)."""
    return {
        account: session.scalars(
            select(Run)
            .where(Run.account_number == account, Run.business_date == day)
            .order_by(Run.attempt.desc())
            .limit(1)
        ).first()
        for account in cfg.accounts
    }


def close_blockers(session: Session, cfg: ReconConfig, runs: dict[str, Run | None]) -> list[str]:
    """Why the day cannot close yet, account by account (empty when it can)."""
    problems = []
    for account, run in runs.items():
        if run is None:
            problems.append(f"account {account}: no reconciliation run")
        elif run.status != RunStatus.DONE:
            problems.append(f"account {account}: run {run.id} is {run.status}")
        elif unresolved := unresolved_count(session, run.id):
            problems.append(f"account {account}: {unresolved} unresolved item(s) in run {run.id}")
        else:
            problems += [f"account {account}: {why}" for why in arrived_since(session, run)]
    return problems


def arrived_since(session: Session, run: Run) -> list[str]:
    """What the run cannot have seen: statement lines of its day and account imported, or
    bank-clearing ledger lines of its day posted (reconciliation's own excepted), after it
    started. Either means the day must be reconciled again before it closes."""
    started, day = run.started_at, run.business_date
    if started is None:
        return []
    why = []
    late_statements = select(Statement.id).where(
        Statement.account_number == run.account_number, Statement.finished_at > started
    )
    line = session.scalar(
        select(StatementLine.statement_id)
        .where(
            StatementLine.statement_id.in_(late_statements),
            StatementLine.account_number == run.account_number,
            StatementLine.business_date == day,
        )
        .limit(1)
    )
    if line is not None:
        why.append(
            f"statement {line} with lines of this day was imported after run {run.id} "
            "started; run the day again"
        )
    cl = ledger.clearing_lines().subquery()
    posted = session.scalar(
        select(cl.c.external_key)
        .where(
            cl.c.business_date == day,
            cl.c.created_at > started,
            cl.c.kind.not_like(OWN_KIND_PREFIX + "%"),
        )
        .limit(1)
    )
    if posted is not None:
        why.append(
            f"ledger line {posted} of this day was posted after run {run.id} started; "
            "run the day again"
        )
    return why


def _stored_close(report: DailyReport, key: LoadedKey, actor: str, now: datetime) -> DayClose:
    csv_bytes, xlsx_bytes = render_csv(report), render_xlsx(report)
    return DayClose(
        business_date=report.business_date,
        closed_at=now,
        closed_by=actor,
        summary={
            "match_rate": report.match_rate,
            "runs": [
                {k: r[k] for k in ("account_number", "run_id", "counts")} for r in report.runs
            ],
            "items": len(report.items),
            "csv_sha256": hashlib.sha256(csv_bytes).hexdigest(),
            "xlsx_sha256": hashlib.sha256(xlsx_bytes).hexdigest(),
            "kid": key.kid,
        },
        report_csv=csv_bytes,
        report_xlsx=xlsx_bytes,
        signature_csv=sign(key, csv_bytes),
        signature_xlsx=sign(key, xlsx_bytes),
    )


# -- the report -------------------------------------------------------------------------------
def daily_report(
    db: Database, keyring: KeyRing, cfg: ReconConfig, day: date, fmt: str
) -> ReportFile:
    """The close report of a day: as stored at the close, or provisional (signed now) before.

    Never moves anything; reading it twice after the close gives the same bytes.
    """
    if fmt not in ("csv", "xlsx"):
        raise invalid("format", "format must be csv or xlsx")
    key = keyring.current(Purpose.REPORT)
    with db.reader() as session:
        close = session.get(DayClose, day)
        if close is not None:
            content = close.report_csv if fmt == "csv" else close.report_xlsx
            signature = close.signature_csv if fmt == "csv" else close.signature_xlsx
        else:
            report = gather(session, cfg, day, status="provisional", closed_by=None, now=utcnow())
            content = render_csv(report) if fmt == "csv" else render_xlsx(report)
            signature = sign(key, content)
    mimetype = CSV_MIMETYPE if fmt == "csv" else XLSX_MIMETYPE
    return ReportFile(content, mimetype, f"daily-report-{day.isoformat()}.{fmt}", signature)


def gather(
    session: Session,
    cfg: ReconConfig,
    day: date,
    *,
    status: str,
    closed_by: str | None,
    now: datetime,
) -> DailyReport:
    """Everything the report shows, read set-based from runs, items and clearing lines."""
    runs = [run for run in latest_runs(session, cfg, day).values() if run is not None]
    channels, merchants = day_totals(session, day, runs)
    return DailyReport(
        business_date=day,
        status=status,
        generated_at=now,
        closed_by=closed_by,
        runs=[_run_row(run) for run in runs],
        channels=channels,
        merchants=merchants,
        items=_report_items(session, [run.id for run in runs if run.status == RunStatus.DONE]),
    )


def _run_row(run: Run) -> dict[str, Any]:
    counts = dict(run.counts or {})
    return {
        "account_number": run.account_number,
        "run_id": run.id,
        "attempt": run.attempt,
        "status": run.status,
        "counts": counts,
        "matched": sum(counts.get(c.value, 0) for c in MATCHED_CATEGORIES),
        "total": sum(counts.values()),
    }


def channel_name(kind: str, purpose: str | None) -> str:
    """`vietqr:<purpose>` for attributed bank credits, else the ledger kind (payout, …)."""
    return f"vietqr:{purpose}" if kind == "bank_credit" and purpose else kind


def day_totals(
    session: Session, day: date, runs: Sequence[Run] = ()
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Totals of the day's clearing lines by channel and, for merchants' bank credits, by
    merchant, summed up here from grouped rows: those a finished run of `runs` read of the
    ledger day, while nothing has arrived since it started, with reconciliation's own
    postings of the day added; otherwise one pass over the ledger day.
    """
    rows = _totals_of_a_run(session, day, runs)
    if rows is None:
        rows = _grouped_clearing_lines(session, day)
    channels: dict[tuple[str, str | None], list[int]] = {}
    merchants: dict[int, list[int]] = {}
    for kind, purpose, merchant_id, n, total in rows:
        channel = channels.setdefault((kind, purpose), [0, 0])
        channel[0] += int(n)
        channel[1] += int(total or 0)
        if kind == "bank_credit" and merchant_id is not None:
            merchant = merchants.setdefault(int(merchant_id), [0, 0])
            merchant[0] += int(n)
            merchant[1] += int(total or 0)
    return (
        [
            {"channel": channel_name(kind, purpose), "count": n, "amount": amount}
            for (kind, purpose), (n, amount) in sorted(
                channels.items(), key=lambda kv: (kv[0][0], kv[0][1] is None, kv[0][1] or "")
            )
        ],
        [
            {"merchant_id": merchant_id, "count": n, "amount": amount}
            for merchant_id, (n, amount) in sorted(merchants.items())
        ],
    )


def _totals_of_a_run(
    session: Session, day: date, runs: Sequence[Run]
) -> Sequence[Sequence[Any]] | None:
    """The grouped rows of the ledger day without reading it again, or None.

    A run's `ledger_totals` hold every clearing line of its day but reconciliation's own;
    they are still the ledger's when no such line has been posted since the run started
    (`arrived_since`). Reconciliation's own lines of the day are exactly the postings of
    its resolutions of that day (each under its `journal_key`), read here by those keys.
    """
    for run in runs:
        if (
            run.status == RunStatus.DONE
            and run.business_date == day
            and run.ledger_totals is not None
            and not arrived_since(session, run)
        ):
            keys = select(Resolution.journal_key).where(
                Resolution.business_date == day, Resolution.journal_key.is_not(None)
            )
            own = _grouped_clearing_lines(session, day, keys)
            return [*run.ledger_totals, *own]
    return None


def _grouped_clearing_lines(
    session: Session, day: date, external_keys: Select[Any] | None = None
) -> Sequence[Sequence[Any]]:
    """The day's clearing lines (only those of `external_keys`, if given) as [kind, purpose,
    merchant_id, count, amount] rows, grouped as the report and `ledger_totals` group them."""
    cl = ledger.clearing_lines().subquery()
    query = select(
        cl.c.kind, cl.c.purpose, cl.c.merchant_id, func.count(), func.sum(cl.c.amount)
    ).where(cl.c.business_date == day)
    if external_keys is not None:
        query = query.where(cl.c.external_key.in_(external_keys))
    return session.execute(query.group_by(cl.c.kind, cl.c.purpose, cl.c.merchant_id)).all()


def _report_items(session: Session, run_ids: list[int]) -> list[dict[str, Any]]:
    if not run_ids:
        return []
    cl = ledger.clearing_lines().subquery()
    rows = session.execute(
        select(Item, StatementLine, Resolution, cl.c.external_key, Run.account_number)
        .join(Run, Run.id == Item.run_id)
        .outerjoin(StatementLine, StatementLine.id == Item.statement_line_id)
        .outerjoin(Resolution, Resolution.id == Item.resolution_id)
        .outerjoin(cl, cl.c.posting_id == func.coalesce(Item.posting_id, Item.related_posting_id))
        .where(
            Item.run_id.in_(run_ids), Item.category.not_in([c.value for c in MATCHED_CATEGORIES])
        )
        .order_by(Item.id)
    ).all()
    return [_report_item(*row) for row in rows]


def _report_item(
    item: Item, line: StatementLine | None, res: Resolution | None, key: str | None, account: str
) -> dict[str, Any]:
    return {
        "item_id": item.id,
        "category": item.category,
        "account_number": account,
        "bank_txn_id": line.bank_txn_id if line else None,
        "booked_at": line.booked_at.isoformat() if line else None,
        "description": line.description if line else None,
        "ledger_key": key,
        "line_amount": item.line_amount,
        "ledger_amount": item.ledger_amount,
        "fee": item.fee,
        "reason": item.reason,
        "resolution": res.action if res else None,
        "note": res.note if res else None,
        "resolved_by": res.actor if res else None,
        "resolved_at": res.created_at.isoformat() if res else None,
    }


# -- signatures -------------------------------------------------------------------------------
def sign(key: LoadedKey, content: bytes) -> str:
    """A detached compact JWS (`header..signature`) over the exact bytes of a report."""
    return jwt.api_jws.encode(
        content,
        key.private_key,
        algorithm="ES256",
        headers={"kid": str(key.kid), "typ": "JOSE", "cty": "cashless-daily-report"},
        is_payload_detached=True,
    )


def verify(keyring: KeyRing, content: bytes, signature: str) -> bool:
    """True when `signature` is a report key's signature of exactly `content`."""
    try:
        kid = int(jwt.get_unverified_header(signature)["kid"])
        key = keyring.verifying(Purpose.REPORT, kid)
        if key is None:
            return False
        jwt.api_jws.decode_complete(
            signature, key.public_key, algorithms=["ES256"], detached_payload=content
        )
    except (jwt.PyJWTError, KeyError, ValueError):
        return False
    return True


def report_keys(keyring: KeyRing) -> dict[str, Any]:
    """The public JWKS that verifies report signatures (current and previous keys)."""
    return jwks(keyring, Purpose.REPORT)
