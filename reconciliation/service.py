"""Reconciliation use cases: import statements, run reconciliations, read runs and items.

Functions taking a `db` own their transaction. Statement imports and runs are jobs (outbox):
the request stores what to do and answers 202; the job does it and can run twice safely.
Resolutions are in `reconciliation/resolutions.py`, the daily close and its report in
`reconciliation/closing.py`.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.clock import business_date, utcnow
from core.config import Settings
from core.db import Database
from core.errors import Conflict, invalid
from core.queue import enqueue
from payments import ledger
from payments.errors import DayClosed as LedgerDayClosed
from reconciliation import phases
from reconciliation.categories import NEEDS_RESOLUTION, PROGRESS, Phase
from reconciliation.errors import (
    DayClosed,
    FutureDay,
    RunNotFound,
    StatementNotFound,
    UnknownAccount,
)
from reconciliation.loading import load_lines
from reconciliation.models import (
    UNFINISHED_RUN,
    DayClose,
    Item,
    Run,
    RunStatus,
    Statement,
    StatementStatus,
)
from reconciliation.statements import StatementFormatError

log = logging.getLogger(__name__)
FORMATS = ("csv", "camt053")
MAX_EXECUTIONS = 4  # a run that fails this often is marked failed (RQ stops retrying)
CHUNK = 1 << 20
_LOCK_NAMESPACE = 0x7265636F << 24  # "reco": keeps our advisory locks apart from others'


@dataclass(frozen=True)
class ReconConfig:
    """What reconciliation needs from the settings (handed in; services never read Flask)."""

    accounts: tuple[str, ...]
    spool_dir: Path
    sandbox: bool
    phase_delay: float = 0.0  # tests only: seconds to wait after each phase

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str] | None = None) -> ReconConfig:
        env = os.environ if env is None else env
        delay = settings.extra.get("recon_phase_delay") or env.get("CASHLESS_RECON_PHASE_DELAY")
        return cls(
            accounts=(settings.collection_account,),
            spool_dir=settings.instance_path / "spool" / "statements",
            sandbox=settings.sandbox,
            phase_delay=float(delay or 0),
        )

    def check_account(self, account_number: str) -> str:
        account = (account_number or "").strip()
        if account not in self.accounts:
            raise UnknownAccount(
                f"{account_number!r} is not one of our collection accounts",
                extra={"accounts": list(self.accounts)},
            )
        return account


# -- statements -------------------------------------------------------------------------------
def submit_statement(
    db: Database,
    cfg: ReconConfig,
    *,
    account_number: str,
    fmt: str,
    filename: str,
    stream: IO[bytes],
    actor: str,
) -> Statement:
    """Spool an uploaded statement to disk and queue its import (202).

    Guarantees: the file is copied in 1 MiB chunks (never whole in memory) and the statement
    row, the spooled file and the import job appear together or not at all.
    """
    account = cfg.check_account(account_number)
    if fmt not in FORMATS:
        raise invalid("format", "format must be csv or camt053")
    with db.transaction() as session:
        statement = Statement(
            account_number=account, format=fmt, filename=filename[:255], created_by=actor
        )
        session.add(statement)
        session.flush()
        path = spool_path(cfg, statement.id)
        statement.size_bytes, statement.sha256 = _spool(stream, path)
        enqueue(
            session,
            "reconciliation.jobs.import_statement_job",
            statement.id,
            job_id=f"recon-statement:{statement.id}",
            queue="default",
        )
        return statement


def spool_path(cfg: ReconConfig, statement_id: int) -> Path:
    return cfg.spool_dir / f"{statement_id}.upload"


def _spool(stream: IO[bytes], path: Path) -> tuple[int, str]:
    path.parent.mkdir(parents=True, exist_ok=True)
    digest, size = hashlib.sha256(), 0
    try:
        with path.open("wb") as out:
            while chunk := stream.read(CHUNK):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    return size, digest.hexdigest()


def import_statement(db: Database, cfg: ReconConfig, statement_id: int) -> Statement:
    """Import a spooled statement: every valid line or none (one transaction).

    Idempotent: a finished statement is returned as it is, and lines whose bank transaction id
    we already hold are skipped. A file that is unusable as a whole (wrong header, not camt.053,
    unsafe XML) marks the statement failed with the reason and imports nothing.
    """
    path = spool_path(cfg, statement_id)
    try:
        with db.transaction() as session:
            statement = _lock_statement(session, statement_id)
            if statement.status != StatementStatus.PENDING:
                return statement
            if not path.exists():
                raise StatementFormatError("the uploaded file is missing; upload it again")
            loaded = load_lines(
                session,
                statement.id,
                statement.account_number,
                statement.format,
                lambda: path.open("rb"),
            )
            statement.lines_total, statement.lines_accepted = loaded.total, loaded.accepted
            statement.lines_rejected, statement.lines_skipped = loaded.rejected, loaded.skipped
            statement.errors = loaded.errors
            statement.status, statement.finished_at = StatementStatus.DONE, utcnow()
    except StatementFormatError as exc:
        statement = _fail_statement(db, statement_id, str(exc))
    path.unlink(missing_ok=True)
    return statement


def _lock_statement(session: Session, statement_id: int) -> Statement:
    statement = session.get(Statement, statement_id, with_for_update=True)
    if statement is None:
        raise StatementNotFound("no such statement")
    return statement


def _fail_statement(db: Database, statement_id: int, message: str) -> Statement:
    with db.transaction() as session:
        statement = _lock_statement(session, statement_id)
        statement.status, statement.message = StatementStatus.FAILED, message
        statement.lines_total = statement.lines_accepted = 0
        statement.lines_rejected = statement.lines_skipped = 0
        statement.errors = [{"line": None, "message": message}]
        statement.finished_at = utcnow()
        return statement


def get_statement(db: Database, statement_id: int) -> Statement:
    with db.reader() as session:
        statement = session.get(Statement, statement_id)
        if statement is None:
            raise StatementNotFound("no such statement")
        return statement


def list_statements(db: Database, limit: int, starting_after: int | None) -> dict[str, Any]:
    """Statements, newest first (cursor: ids below `starting_after`)."""
    with db.reader() as session:
        stmt = select(Statement)
        if starting_after is not None:
            stmt = stmt.where(Statement.id < starting_after)
        rows = list(session.scalars(stmt.order_by(Statement.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return {
        "data": rows[:limit],
        "has_more": more,
        "next_cursor": rows[limit - 1].id if more else None,
    }


# -- runs -------------------------------------------------------------------------------------
def start_run(
    db: Database, cfg: ReconConfig, *, day: date, account_number: str, actor: str
) -> tuple[Run, bool]:
    """Start reconciling (day, account), or return the run already under way.

    Returns (run, created). Guarantees at most one unfinished run per (day, account): the
    partial unique index decides between two concurrent starts, and the loser gets the
    winner's run. The job id derives from the run id, so the run is queued once.
    """
    account = cfg.check_account(account_number)
    if day > business_date(utcnow()):
        raise FutureDay(f"{day.isoformat()} has not happened yet")
    with db.transaction() as session:
        check_open(session, day)
        found = _unfinished_run(session, account, day)
        if found is not None:
            return found, False
        run = _new_attempt(session, account, day, actor)
        if run is None:  # a concurrent start won the unique index: return its run
            found = _unfinished_run(session, account, day)
            if found is None:  # … which has even finished already
                raise Conflict("a run of this day just started; ask again", code="run_race")
            return found, False
        enqueue(
            session,
            "reconciliation.jobs.run_reconciliation_job",
            run.id,
            job_id=f"recon-run:{run.id}",
            queue="default",
            max_attempts=MAX_EXECUTIONS,
        )
        return run, True


def _new_attempt(session: Session, account: str, day: date, actor: str) -> Run | None:
    attempt = session.scalar(
        select(func.coalesce(func.max(Run.attempt), 0)).where(
            Run.account_number == account, Run.business_date == day
        )
    )
    run = Run(
        account_number=account,
        business_date=day,
        attempt=int(attempt or 0) + 1,
        created_by=actor,
        counts={},
        phase=Phase.QUEUED,
    )
    try:
        with session.begin_nested():
            session.add(run)
            session.flush()
    except IntegrityError:
        return None
    return run


def check_open(session: Session, day: date) -> None:
    try:
        ledger.check_day_open(session, day)
    except LedgerDayClosed as exc:
        raise DayClosed(exc.detail) from exc


def _unfinished_run(session: Session, account: str, day: date) -> Run | None:
    return session.scalars(
        select(Run).where(
            Run.account_number == account,
            Run.business_date == day,
            Run.status.in_(list(UNFINISHED_RUN)),
        )
    ).first()


def execute_run(db: Database, cfg: ReconConfig, run_id: int) -> dict[str, Any]:
    """Run the matching phases and classify (the job body). Safe to run twice.

    Guarantees: all items of a run are written in one transaction together with its `done`
    status, so a worker killed half-way leaves nothing behind and the retry starts afresh;
    concurrent executions of one run are serialised (an advisory lock on PostgreSQL, SQLite's
    write lock), and a finished run is never run again. Progress is visible while it runs
    on PostgreSQL (written on a second connection). After MAX_EXECUTIONS failures the run is
    marked failed instead of retried.
    """
    executions = _begin_execution(db, run_id)
    if executions is None:
        return {"run_id": run_id, "status": "finished"}
    try:
        return _reconcile(db, cfg, run_id)
    except DayClosed as exc:  # closed meanwhile: retrying cannot help
        _record_failure(db, run_id, exc, MAX_EXECUTIONS)
        return {"run_id": run_id, "status": RunStatus.FAILED}
    except Exception as exc:
        if _record_failure(db, run_id, exc, executions):
            return {"run_id": run_id, "status": RunStatus.FAILED}
        raise


def _begin_execution(db: Database, run_id: int) -> int | None:
    with db.transaction() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise RunNotFound("no such run")
        if run.status not in UNFINISHED_RUN:
            return None
        run.status, run.phase, run.progress = RunStatus.RUNNING, Phase.LOAD, 0
        run.executions += 1
        run.started_at = utcnow()
        return run.executions


def _record_failure(db: Database, run_id: int, exc: Exception, executions: int) -> bool:
    final = executions >= MAX_EXECUTIONS
    log.warning("reconciliation run %s failed (execution %d)", run_id, executions, exc_info=exc)
    with db.transaction() as session:
        values: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
        if final:
            values.update(status=RunStatus.FAILED, phase="failed", finished_at=utcnow())
        session.execute(
            update(Run).where(Run.id == run_id, Run.status == RunStatus.RUNNING).values(**values)
        )
    return final


def _reconcile(db: Database, cfg: ReconConfig, run_id: int) -> dict[str, Any]:
    with db.transaction() as session:
        postgres = session.get_bind().dialect.name == "postgresql"
        if postgres:
            session.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LOCK_NAMESPACE + run_id}
            )
            session.execute(text("SET LOCAL work_mem = '128MB'"))
            # Reading the day out of the lines and the ledger (CREATE TABLE AS over durable
            # tables) may use parallel workers; the default tuple cost assumes few rows cross.
            session.execute(text("SET LOCAL parallel_tuple_cost = 0.001"))
            # Work tables need row counts and distinct counts, not fine histograms: a tenth
            # of the default sample is ten times quicker to take and plans the same.
            session.execute(text("SET LOCAL default_statistics_target = 10"))
        run = session.get(Run, run_id, populate_existing=True)
        if run is None or run.status not in UNFINISHED_RUN:
            return {"run_id": run_id, "status": "finished"}
        check_open(session, run.business_date)
        progress = _progress(db, session, run_id, postgres, cfg.phase_delay)
        work = phases.Work(session, run_id, run.account_number, run.business_date)
        # `run` is only written at the end: an earlier UPDATE would lock its row against
        # the progress writer on the second connection (a self-deadlock).
        lines = phases.load(work)
        totals = phases.ledger_totals(work)
        postings = sum(row[3] for row in totals)
        progress(Phase.LOAD)
        for phase, match in phases.PHASES:
            match(work)
            progress(phase)
        counts = phases.classify(work)
        phases.attach_resolutions(work)
        work.drop_all()
        run.status, run.phase, run.progress = RunStatus.DONE, Phase.DONE, 100
        run.counts, run.finished_at, run.error = counts, utcnow(), None
        run.lines_count, run.postings_count = lines, postings
        run.ledger_totals = totals
        return {"run_id": run_id, "status": RunStatus.DONE, "counts": counts}


def _progress(db: Database, session: Session, run_id: int, postgres: bool, delay: float) -> Any:
    """A callback that records a finished phase (and, in tests, waits a little)."""

    def report(phase: Phase) -> None:
        values = {"phase": phase.value, "progress": PROGRESS[phase]}
        if postgres:  # a second connection: others see it before this transaction commits
            with db.transaction() as side:
                side.execute(update(Run).where(Run.id == run_id).values(**values))
        else:  # SQLite has one writer at a time: it shows once the run commits
            session.execute(update(Run).where(Run.id == run_id).values(**values))
        if delay:
            time.sleep(delay)

    return report


def get_run(db: Database, run_id: int) -> Run:
    with db.reader() as session:
        run = session.get(Run, run_id)
        if run is None:
            raise RunNotFound("no such run")
        return run


def list_runs(
    db: Database, *, day: date | None, limit: int, starting_after: int | None
) -> dict[str, Any]:
    """Runs, newest first, optionally of one business day."""
    with db.reader() as session:
        stmt = select(Run)
        if day is not None:
            stmt = stmt.where(Run.business_date == day)
        if starting_after is not None:
            stmt = stmt.where(Run.id < starting_after)
        rows = list(session.scalars(stmt.order_by(Run.id.desc()).limit(limit + 1)))
    more = len(rows) > limit
    return {
        "data": rows[:limit],
        "has_more": more,
        "next_cursor": rows[limit - 1].id if more else None,
    }


def unresolved_count(session: Session, run_id: int) -> int:
    return int(
        session.scalar(
            select(func.count()).where(
                Item.run_id == run_id,
                Item.category.in_([c.value for c in NEEDS_RESOLUTION]),
                Item.resolution_id.is_(None),
            )
        )
        or 0
    )


def day_is_closed(session: Session, day: date) -> bool:
    return session.get(DayClose, day) is not None
