"""Background jobs: an outbox written in the caller's transaction, handed to a queue after commit.

With `REDIS_URL`, jobs go to RQ (queues `high`, `default`, `low`, JSON serializer, RQ retries,
the outbox id as RQ's unique job id) and schedules run under `rq cron` with
TZ=Asia/Ho_Chi_Minh. Without it, an in-process thread pool runs jobs and a scheduler thread
fires the schedules. Either way a job is a dotted path to a function taking JSON primitives;
the function re-reads state and is safe to run twice. The sweeper re-sends rows that were never
handed over (Redis down) and re-runs rows whose heartbeat stopped (a killed worker).
"""

from __future__ import annotations

import importlib
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Protocol

from sqlalchemy import String, Text, func, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Mapped, Session, mapped_column

from core.clock import HCM, business_date, utcnow
from core.db import Base, Database

log = logging.getLogger(__name__)

QUEUES = ("high", "default", "low")
# Only these packages may be named as job functions: a row in the outbox is data, not code.
ALLOWED_PREFIXES = (
    "core.",
    "payments.",
    "ticketing.",
    "merchants.",
    "reconciliation.",
    "cashless.",
)
HEARTBEAT_SECONDS = 10
STALE_HEARTBEAT = timedelta(seconds=60)
UNSENT_GRACE = timedelta(seconds=20)
LOST_AFTER = timedelta(minutes=15)
BACKOFF = (5, 30, 120, 600, 1800, 3600, 7200, 21600, 43200, 86400)


class JobStatus(StrEnum):
    PENDING = "pending"
    SENT = "sent"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class OutboxJob(Base):
    """One job: written with the business change, handed to the queue after commit."""

    __tablename__ = "outbox_jobs"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    func: Mapped[str] = mapped_column(String(200))
    args: Mapped[str] = mapped_column(Text, default="[]")
    queue: Mapped[str] = mapped_column(String(20), default="default")
    status: Mapped[str] = mapped_column(String(20), default=JobStatus.PENDING, index=True)
    attempts: Mapped[int] = mapped_column(default=0)
    max_attempts: Mapped[int] = mapped_column(default=4)
    not_before: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    result: Mapped[str | None] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)


def enqueue(
    session: Session,
    func: str,
    *args: Any,
    job_id: str | None = None,
    queue: str = "default",
    max_attempts: int = 4,
    delay: timedelta | None = None,
) -> str:
    """Write a job into the outbox of the caller's transaction; it is sent after commit.

    Idempotent by `job_id`: a second enqueue with the same id adds nothing (this is what makes
    a double click or a double schedule run a job once).
    """
    if not func.startswith(ALLOWED_PREFIXES):
        raise ValueError(f"job function {func!r} is outside the allowed packages")
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    job_id = job_id or uuid.uuid4().hex
    values = {
        "id": job_id,
        "func": func,
        "args": json.dumps(list(args)),
        "queue": queue,
        "status": JobStatus.PENDING,
        "attempts": 0,
        "max_attempts": max_attempts,
        "created_at": utcnow(),
        "not_before": utcnow() + delay if delay else None,
    }
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(insert(OutboxJob).values(**values).on_conflict_do_nothing())
    session.info.setdefault("outbox", []).append(job_id)
    return job_id


class Dispatcher(Protocol):
    def send(self, jobs: list[OutboxJob], restart: bool = False) -> list[str]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True)
class Schedule:
    """A recurring job. `cron` is read in Asia/Ho_Chi_Minh; `interval` is in seconds."""

    name: str
    func: str
    queue: str = "default"
    cron: str | None = None
    interval: int | None = None
    per_business_day: bool = False


class JobRunner:
    """Owns the database and the dispatcher of one process; runs and sweeps jobs."""

    def __init__(
        self, db: Database, dispatcher: Dispatcher | None = None, settings: Any = None
    ) -> None:
        self.db = db
        self.settings = settings
        self.dispatcher: Dispatcher = dispatcher or InProcessDispatcher(self)
        self.schedules: dict[str, Schedule] = {}
        db.after_commit_hooks.append(self._after_commit)

    # -- handing over -------------------------------------------------------------------------
    def _after_commit(self, session: Session) -> None:
        ids = session.info.pop("outbox", [])
        if ids:
            self.send(ids)

    def send(self, ids: Iterable[str], restart: bool = False, resend: bool = False) -> None:
        """Hand rows to the queue; a failure leaves them pending for the sweeper (never raises).

        `restart`: the rows' worker died (heartbeat stopped), so a copy the queue still holds
        as started is stale and is replaced.
        """
        with self.db.reader() as session:
            jobs = list(session.scalars(select(OutboxJob).where(OutboxJob.id.in_(list(ids)))))
        wanted = (JobStatus.PENDING, JobStatus.SENT) if resend else (JobStatus.PENDING,)
        jobs = [job for job in jobs if job.status in wanted]
        if not jobs:
            return
        try:
            sent = self.dispatcher.send(jobs, restart)
        except Exception:  # Redis down: the sweeper re-sends later
            log.warning("queue unavailable; %d job(s) stay in the outbox", len(jobs), exc_info=True)
            return
        if sent:
            with self.db.transaction() as session:
                session.execute(
                    update(OutboxJob)
                    .where(OutboxJob.id.in_(sent), OutboxJob.status.in_(wanted))
                    .values(status=JobStatus.SENT, sent_at=utcnow())
                )

    # -- running ------------------------------------------------------------------------------
    def run(self, job_id: str) -> Any:
        """Run one job by id. Safe to call twice: a finished job is not run again."""
        job = self._claim(job_id)
        if job is None:
            return None
        stop = threading.Event()
        beat = threading.Thread(target=self._heartbeat, args=(job_id, stop), daemon=True)
        beat.start()
        try:
            result = resolve(job.func)(*json.loads(job.args))
        except Exception as exc:
            stop.set()
            self._finish(job_id, error=f"{type(exc).__name__}: {exc}"[:2000])
            raise
        stop.set()
        self._finish(job_id, result=result)
        return result

    def _claim(self, job_id: str) -> OutboxJob | None:
        with self.db.transaction() as session:
            job = session.scalars(
                select(OutboxJob).where(OutboxJob.id == job_id).with_for_update()
            ).first()
            if job is None or job.status in (JobStatus.DONE, JobStatus.FAILED):
                return None
            if (
                job.status == JobStatus.RUNNING
                and job.heartbeat_at
                and (utcnow() - job.heartbeat_at < STALE_HEARTBEAT)
            ):
                return None  # another worker is on it and alive
            job.status = JobStatus.RUNNING
            job.attempts += 1
            job.heartbeat_at = utcnow()
            session.flush()
            session.expunge(job)
            return job

    def _heartbeat(self, job_id: str, stop: threading.Event) -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                with self.db.transaction() as session:
                    session.execute(
                        update(OutboxJob)
                        .where(OutboxJob.id == job_id, OutboxJob.status == JobStatus.RUNNING)
                        .values(heartbeat_at=utcnow())
                    )
            except Exception:
                log.warning("heartbeat of job %s failed", job_id)

    def _finish(self, job_id: str, *, result: Any = None, error: str | None = None) -> None:
        with self.db.transaction() as session:
            job = session.get(OutboxJob, job_id, with_for_update=True)
            if job is None:
                return
            job.finished_at = utcnow()
            if error is None:
                job.status = JobStatus.DONE
                job.result = json.dumps(result, default=str)
                job.error = None
            else:
                job.error = error
                job.status = (
                    JobStatus.FAILED if job.attempts >= job.max_attempts else JobStatus.SENT
                )

    # -- sweeping -----------------------------------------------------------------------------
    def sweep(self) -> dict[str, int]:
        """Re-send unsent rows and re-run rows whose worker died. Returns what it did."""
        now = utcnow()
        with self.db.transaction() as session:
            unsent = list(
                session.scalars(
                    select(OutboxJob.id).where(
                        OutboxJob.status == JobStatus.PENDING,
                        OutboxJob.created_at < now - UNSENT_GRACE,
                    )
                )
            )
            dead = list(
                session.scalars(
                    select(OutboxJob.id).where(
                        OutboxJob.status == JobStatus.RUNNING,
                        OutboxJob.heartbeat_at < now - STALE_HEARTBEAT,
                    )
                )
            )
            # Handed over long ago but never started: the queue lost it (Redis without
            # persistence restarted, or the embedded process restarted with timers pending).
            lost = list(
                session.scalars(
                    select(OutboxJob.id).where(
                        OutboxJob.status == JobStatus.SENT,
                        func.coalesce(OutboxJob.not_before, OutboxJob.sent_at) < now - LOST_AFTER,
                    )
                )
            )
            if dead:
                session.execute(
                    update(OutboxJob).where(OutboxJob.id.in_(dead)).values(status=JobStatus.PENDING)
                )
        if unsent:
            self.send(unsent)
        if lost:
            self.send(lost, resend=True)
        if dead:
            log.warning("restarting %d job(s) whose worker stopped beating", len(dead))
            self.send(dead, restart=True)
        return {"resent": len(unsent) + len(lost), "restarted": len(dead)}

    # -- schedules ----------------------------------------------------------------------------
    def add_schedule(self, schedule: Schedule) -> None:
        self.schedules[schedule.name] = schedule

    def fire_schedule(self, name: str, at: datetime | None = None) -> str:
        """Enqueue one occurrence of a schedule. Daily jobs get one row per business day."""
        schedule = self.schedules[name]
        at = at or utcnow()
        if schedule.per_business_day:
            day = business_date(at).isoformat()
            job_id = f"{name}:{day}"
            args: tuple[Any, ...] = (day,)
        else:
            job_id = f"{name}:{int(at.timestamp())}"
            args = ()
        with self.db.transaction() as session:
            enqueue(session, schedule.func, *args, job_id=job_id, queue=schedule.queue)
        return job_id


def next_cron_run(cron: str, after: datetime) -> datetime:
    """The next instant after `after` matching `cron` read in Asia/Ho_Chi_Minh (as `rq cron`
    does when its process runs with TZ=Asia/Ho_Chi_Minh)."""
    from croniter import croniter

    result: datetime = croniter(cron, after.astimezone(HCM)).get_next(datetime)
    return result


def resolve(path: str) -> Callable[..., Any]:
    """Import a job function from its dotted path (only from the allowed packages)."""
    if not path.startswith(ALLOWED_PREFIXES):
        raise ValueError(f"job function {path!r} is outside the allowed packages")
    module, _, name = path.rpartition(".")
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


class InProcessDispatcher:
    """The embedded default: a thread pool runs jobs, a thread fires schedules and sweeps."""

    def __init__(self, runner: JobRunner, workers: int = 4) -> None:
        self.runner = runner
        self.pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    def send(self, jobs: list[OutboxJob], restart: bool = False) -> list[str]:
        if self._stop.is_set():
            return []
        for job in jobs:
            delay = (job.not_before - utcnow()).total_seconds() if job.not_before else 0
            if delay > 0:
                timer = threading.Timer(delay, self._submit, args=(job.id,))
                timer.daemon = True
                timer.start()
                self._timers.append(timer)
            else:
                self._submit(job.id)
        return [job.id for job in jobs]

    def _submit(self, job_id: str) -> None:
        if not self._stop.is_set():
            self.pool.submit(self._run_with_retry, job_id)

    def _run_with_retry(self, job_id: str) -> None:
        try:
            self.runner.run(job_id)
        except Exception:
            log.exception("job %s failed", job_id)
            with self.runner.db.reader() as session:
                job = session.get(OutboxJob, job_id)
                attempts = job.attempts if job else 0
                retry = job is not None and job.status == JobStatus.SENT
            if retry:
                timer = threading.Timer(
                    BACKOFF[min(attempts, len(BACKOFF)) - 1], self._submit, args=(job_id,)
                )
                timer.daemon = True
                timer.start()
                self._timers.append(timer)

    def start(self) -> None:
        """Start the scheduler thread (called by `cashless serve`, not by tests or the CLI)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        next_due: dict[str, float] = {}
        while not self._stop.wait(1.0):
            now = time.time()
            for schedule in list(self.runner.schedules.values()):
                due = next_due.get(schedule.name)
                if due is None:
                    if schedule.interval:
                        next_due[schedule.name] = now + schedule.interval
                    else:
                        after = datetime.fromtimestamp(now, HCM)
                        next_due[schedule.name] = next_cron_run(
                            str(schedule.cron), after
                        ).timestamp()
                    continue
                if now >= due:
                    next_due.pop(schedule.name)
                    try:
                        self.runner.fire_schedule(schedule.name)
                    except Exception:
                        log.exception("schedule %s failed to fire", schedule.name)

    def stop(self) -> None:
        self._stop.set()
        for timer in self._timers:
            timer.cancel()
        self.pool.shutdown(wait=False, cancel_futures=True)


def rq_job_id(outbox_id: str) -> str:
    """RQ allows only letters, digits, '_' and '-' in ids; keep it readable and unique."""
    import hashlib
    import re

    safe = re.sub(r"[^A-Za-z0-9_-]", "_", outbox_id)[:80]
    return f"{safe}-{hashlib.sha256(outbox_id.encode()).hexdigest()[:10]}"


class RQDispatcher:
    """Hands outbox rows to RQ. The RQ job id is the outbox id, so RQ refuses duplicates."""

    def __init__(self, redis_url: str) -> None:
        from redis import Redis

        self.redis = Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)

    def queue(self, name: str) -> Any:
        from rq import Queue

        return Queue(name, connection=self.redis, serializer=WorkerSerializer)

    def send(self, jobs: list[OutboxJob], restart: bool = False) -> list[str]:
        from rq import Retry
        from rq.exceptions import DuplicateJobError
        from rq.job import Job
        from rq.job import JobStatus as RQStatus

        sent = []
        for job in jobs:
            rq_id = rq_job_id(job.id)
            existing = Job.fetch_many([rq_id], connection=self.redis, serializer=WorkerSerializer)[
                0
            ]
            if existing is not None:
                live = (RQStatus.QUEUED, RQStatus.SCHEDULED, RQStatus.DEFERRED) + (
                    () if restart else (RQStatus.STARTED,)
                )
                if existing.get_status(refresh=True) in live:
                    sent.append(job.id)
                    continue
                existing.delete()
            queue = self.queue(job.queue)
            retries = max(job.max_attempts - 1, 0)
            options: dict[str, Any] = {
                "job_id": rq_id,
                "unique": True,
                "result_ttl": 3600,
                "failure_ttl": 7 * 86400,
                "job_timeout": 1800,
            }
            if retries:
                options["retry"] = Retry(max=retries, interval=list(BACKOFF[:retries]))
            try:
                if job.not_before and job.not_before > utcnow():
                    queue.enqueue_at(job.not_before, "core.queue.run_job", job.id, **options)
                else:
                    queue.enqueue("core.queue.run_job", job.id, **options)
            except DuplicateJobError:
                pass
            sent.append(job.id)
        return sent

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self.redis.close()


# -- process-wide runtime: jobs need no Flask app --------------------------------------------
_runtime: JobRunner | None = None
_runtime_lock = threading.Lock()


def set_runner(runner: JobRunner | None) -> None:
    global _runtime
    _runtime = runner


def get_runner() -> JobRunner:
    """The runner of this process: set by create_app, or built from the environment (workers)."""
    global _runtime
    with _runtime_lock:
        if _runtime is None:
            from core.config import load_settings

            settings = load_settings()
            db = Database(settings.database_url)
            dispatcher = RQDispatcher(settings.redis_url) if settings.redis_url else None
            _runtime = JobRunner(db, dispatcher, settings)
            _install_schedules(_runtime)
        return _runtime


_schedule_provider: Callable[[], list[Schedule]] | None = None


def set_schedule_provider(provider: Callable[[], list[Schedule]]) -> None:
    """`cashless/` tells core which schedules exist (core knows no domain)."""
    global _schedule_provider
    _schedule_provider = provider


def _install_schedules(runner: JobRunner) -> None:
    if _schedule_provider is not None:
        for schedule in _schedule_provider():
            runner.add_schedule(schedule)


def run_job(job_id: str) -> Any:
    """The RQ entry point: run one outbox job in a worker process."""
    return get_runner().run(job_id)


def run_schedule(name: str) -> str:
    """The `rq cron` entry point: enqueue one occurrence of a named schedule via the outbox."""
    return get_runner().fire_schedule(name)


def sweep_job() -> dict[str, int]:
    """Scheduled: re-send unsent outbox rows and re-run jobs whose heartbeat stopped."""
    return get_runner().sweep()


class WorkerSerializer:
    """JSON for our jobs; RQ's own pickle only for what `rq cron` enqueues.

    `rq cron` enqueues with RQ's default (pickle) serializer and offers no option to change it,
    while our outbox hands jobs over as JSON. The worker reads both; it writes JSON.
    """

    @staticmethod
    def dumps(obj: Any) -> bytes:
        return json.dumps(obj).encode("utf-8")

    @staticmethod
    def loads(data: bytes) -> Any:
        try:
            return json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            import pickle

            return pickle.loads(data)  # noqa: S301 - written by rq cron into our own Redis
