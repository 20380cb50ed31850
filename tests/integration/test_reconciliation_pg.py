"""Reconciliation on PostgreSQL: COPY imports, the generated scenario classified exactly,
identical re-runs, one run per day under concurrency, the closed day refused by the database,
camt.053 samples never partially imported, and a worker killed with SIGKILL mid-run."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update
from sqlalchemy.exc import DBAPIError

from core.clock import business_date, utcnow
from payments import ledger
from payments.errors import DayClosed
from payments.ledger import Leg
from payments.references import new_charge_reference
from payments.service import PaymentsConfig
from reconciliation import closing, loading, resolutions, service
from reconciliation.categories import Action
from reconciliation.models import Item, Run, StatementLine
from tests.api.test_reconciliation_api import camt_samples
from tests.conftest import ROOT, wait_for
from tests.integration.conftest import WorkerProcess
from tests.scenarios import Scenario, build_scenario

pytestmark = pytest.mark.integration


def svc(app: Any) -> Any:
    return app.extensions["cashless"]


def configs(app: Any) -> tuple[PaymentsConfig, service.ReconConfig]:
    settings = svc(app).settings
    return PaymentsConfig.from_settings(settings), service.ReconConfig.from_settings(settings)


def a_past_day() -> Any:
    return business_date(utcnow()) - timedelta(days=3)


def import_file(app: Any, data: bytes, fmt: str = "csv", timeout: float = 30) -> Any:
    _, cfg = configs(app)
    statement = service.submit_statement(
        svc(app).db,
        cfg,
        account_number=cfg.accounts[0],
        fmt=fmt,
        filename=f"s.{fmt}",
        stream=io.BytesIO(data),
        actor="finance1",
    )
    return wait_for(
        lambda: (s := service.get_statement(svc(app).db, statement.id)).status != "pending" and s,
        timeout=timeout,
    )


def run_and_wait(app: Any, day: Any, timeout: float = 60) -> Run:
    _, cfg = configs(app)
    run, _created = service.start_run(
        svc(app).db, cfg, day=day, account_number=cfg.accounts[0], actor="finance1"
    )
    return wait_for(  # type: ignore[no-any-return]
        lambda: (r := service.get_run(svc(app).db, run.id)).status in ("done", "failed") and r,
        timeout=timeout,
    )


def items_of(app: Any, run_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = resolutions.list_items(
            svc(app).db, run_id, category=None, limit=500, starting_after=cursor
        )
        found += page["data"]
        if not page["has_more"]:
            return found
        cursor = page["next_cursor"]


def check_classified(sc: Scenario, items: list[dict[str, Any]]) -> None:
    lines = {i["statement_line"].bank_txn_id: i for i in items if i["statement_line"]}
    assert {txn: i["category"] for txn, i in lines.items()} == sc.expected.lines
    ledger_only = {
        i["ledger_line"]["external_key"]: i["category"]
        for i in items
        if i["statement_line"] is None
    }
    assert ledger_only == sc.expected.postings
    assert {txn: lines[txn]["fee"] for txn in sc.expected.fees} == sc.expected.fees


def test_scenario_is_classified_exactly_and_reruns_identically(pg_committed: Any) -> None:
    pay_cfg, _ = configs(pg_committed)
    sc = build_scenario(svc(pg_committed).db, pay_cfg, a_past_day(), scale=3)
    statement = import_file(pg_committed, sc.csv_bytes)
    assert statement.status == "done"
    assert {e["line"] for e in statement.errors} == set(sc.expected.rejected)
    assert statement.lines_skipped == sc.expected.skipped

    first = run_and_wait(pg_committed, sc.day)
    assert first.status == "done", first.error
    items = items_of(pg_committed, first.id)
    check_classified(sc, items)
    assert sum(first.counts.values()) == len(items)

    second = run_and_wait(pg_committed, sc.day)
    assert second.counts == first.counts and second.attempt == 2
    shape = {
        (
            i["category"],
            i["statement_line_id"],
            i["posting_id"],
            i["related_posting_id"],
            i["fee"],
            i["member_count"],
        )
        for i in items
    }
    assert shape == {
        (
            i["category"],
            i["statement_line_id"],
            i["posting_id"],
            i["related_posting_id"],
            i["fee"],
            i["member_count"],
        )
        for i in items_of(pg_committed, second.id)
    }


def test_report_totals_from_the_run_equal_a_fresh_read_of_the_ledger(pg_committed: Any) -> None:
    db = svc(pg_committed).db
    pay_cfg, cfg = configs(pg_committed)
    sc = build_scenario(db, pay_cfg, a_past_day(), scale=2)
    import_file(pg_committed, sc.csv_bytes)
    run = run_and_wait(pg_committed, sc.day)
    assert run.status == "done" and run.ledger_totals

    def both() -> tuple[Any, Any, Any]:
        with db.reader() as session:
            runs = [r for r in closing.latest_runs(session, cfg, sc.day).values() if r]
            return (
                closing._totals_of_a_run(session, sc.day, runs),
                closing.day_totals(session, sc.day, runs),
                closing.day_totals(session, sc.day),  # the ledger, read again
            )

    reused, from_run, from_ledger = both()
    assert reused is not None and from_run == from_ledger
    # Reconciliation's own postings made after the run (write-offs, adjustments) count.
    items = items_of(pg_committed, run.id)
    for item in items:
        if item["category"] == "amount_mismatch" and item["line_amount"] != item["ledger_amount"]:
            action = resolutions.Decision(Action.WRITE_OFF, "bank fee")
        elif item["category"] == "missing_in_bank":
            action = resolutions.Decision(Action.ADJUST, "fix", amount=-item["ledger_amount"])
        else:
            continue
        resolutions.resolve_item(
            db, item["id"], action, actor="finance1", idempotency_key=f"k{item['id']}"
        )
    reused, from_run, from_ledger = both()
    assert reused is not None and from_run == from_ledger
    assert any(row["channel"] == "recon_write_off" for row in from_ledger[0])
    assert any(row["channel"] == "recon_adjustment" for row in from_ledger[0])
    before = from_ledger
    # A bank credit of the day posted after the run: the run's totals are stale, not used.
    with db.transaction() as session:
        ledger.post(
            session,
            external_key="bank:late-credit",
            kind="bank_credit_suspense",
            business_date=sc.day,
            legs=[Leg("bank_clearing", 7000), Leg("suspense", -7000)],
        )
    reused, from_run, from_ledger = both()
    assert reused is None and from_run == from_ledger != before


def test_concurrent_starts_make_one_run(pg_committed: Any) -> None:
    _, cfg = configs(pg_committed)
    svc(pg_committed).runner.dispatcher.send = lambda jobs: []  # keep the run unfinished
    day, results = a_past_day(), []
    barrier = threading.Barrier(6)

    def start() -> None:
        barrier.wait()
        run, created = service.start_run(
            svc(pg_committed).db, cfg, day=day, account_number=cfg.accounts[0], actor="finance1"
        )
        results.append((run.id, created))

    threads = [threading.Thread(target=start) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({run_id for run_id, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    with svc(pg_committed).db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1


def test_closed_day_refuses_postings(pg_committed: Any) -> None:
    db = svc(pg_committed).db
    pay_cfg, cfg = configs(pg_committed)
    sc = build_scenario(db, pay_cfg, a_past_day())
    import_file(pg_committed, sc.csv_bytes)
    run = run_and_wait(pg_committed, sc.day)
    for item in items_of(pg_committed, run.id):
        if item["category"] not in ("matched", "matched_with_fee"):
            resolutions.resolve_item(
                db,
                item["id"],
                resolutions.Decision(Action.ACCEPT, "ok"),
                actor="finance1",
                idempotency_key=None,
            )
    close = closing.close_business_day(db, svc(pg_committed).keyring, cfg, sc.day, "finance1")
    assert closing.verify(svc(pg_committed).keyring, close.report_csv, close.signature_csv)

    with pytest.raises(DayClosed), db.transaction() as session:
        ledger.post(
            session,
            external_key="into-closed-day",
            kind="test",
            business_date=sc.day,
            legs=[Leg("bank_clearing", 500), Leg("suspense", -500)],
        )
    with pytest.raises(DBAPIError, match="closed"), db.engine.begin() as conn:  # the trigger
        conn.execute(
            text(
                "INSERT INTO postings (transaction_id, account_id, amount, business_date, "
                "created_at) "
                "SELECT transaction_id, account_id, amount, business_date, now() FROM postings "
                "WHERE business_date = :d LIMIT 1"
            ),
            {"d": sc.day},
        )


def test_camt053_samples_are_never_partially_imported(pg_committed: Any) -> None:
    for sample in camt_samples():
        statement = import_file(pg_committed, sample.read_bytes(), "camt053")
        assert statement.status == "done" and statement.lines_accepted == 0, sample.name
        assert statement.lines_rejected == statement.lines_total, sample.name
    with svc(pg_committed).db.reader() as session:
        assert session.scalar(select(func.count()).select_from(StatementLine)) == 0


def test_xml_breaking_half_way_imports_nothing(pg_committed: Any) -> None:
    data = (ROOT / "tests" / "unit" / "data" / "camt053_vnd.xml").read_bytes()
    cut = data.index(b"</Ntry>") + len(b"</Ntry>") + 40  # one good entry, then garbage
    statement = import_file(pg_committed, data[:cut] + b"<<<not xml")
    assert statement.status == "failed"
    assert statement.message is not None and statement.lines_accepted == 0
    good = import_file(pg_committed, data, "camt053")
    assert good.status == "done" and good.lines_accepted > 0
    with svc(pg_committed).db.reader() as session:
        stored = session.scalar(select(func.count()).select_from(StatementLine))
    assert stored == good.lines_accepted


def test_copy_straight_in_then_overlapping_file_falls_back_and_skips(pg_committed: Any) -> None:
    """A fresh file is COPYed straight into the lines table; a file repeating bank ids we hold
    takes the staging path, which skips them; refs of batch lines are stored by both."""
    first_ref, second_ref = new_charge_reference(), new_charge_reference()
    header = "bank_txn_id,booked_at,value_date,amount,direction,description,"
    header += "counterparty_account,counterparty_name\n"
    rows = [
        f"CP1,2026-11-20T09:00:00+07:00,,15000,CR,{first_ref} ve,,\n",
        f"CP2,2026-11-20T09:01:00+07:00,,30000,CR,QUYET TOAN {first_ref} {second_ref},,\n",
        "CP3,2026-11-20T23:59:00+07:00,,9000,DR,chuyển\ttiền \\ ok,,Trần\n",
        "CP4,not a time,,1,CR,x,,\n",
    ]
    first = import_file(pg_committed, (header + "".join(rows)).encode())
    assert (first.lines_accepted, first.lines_rejected, first.lines_skipped) == (3, 1, 0)
    more = [f"CP5,2026-11-21T00:00:01+07:00,,15000,CR,{second_ref},,\n"]
    second = import_file(pg_committed, (header + "".join(rows + more)).encode())
    assert (second.lines_accepted, second.lines_rejected, second.lines_skipped) == (1, 1, 3)
    with svc(pg_committed).db.reader() as session:
        stored = session.execute(
            text(
                "SELECT bank_txn_id, statement_id, description, reference, ref_count, "
                "business_date::text FROM recon_statement_lines ORDER BY bank_txn_id"
            )
        ).all()
        refs = session.execute(
            text(
                "SELECT l.bank_txn_id, r.ref FROM recon_line_refs r "
                "JOIN recon_statement_lines l ON l.id = r.line_id ORDER BY 1, 2"
            )
        ).all()
    assert [tuple(row) for row in stored] == [
        ("CP1", first.id, f"{first_ref} ve", first_ref, 0, "2026-11-20"),
        ("CP2", first.id, f"QUYET TOAN {first_ref} {second_ref}", None, 2, "2026-11-20"),
        ("CP3", first.id, "chuyển\ttiền \\ ok", None, 0, "2026-11-20"),
        ("CP5", second.id, second_ref, second_ref, 0, "2026-11-21"),
    ]
    assert [tuple(row) for row in refs] == sorted([("CP2", first_ref), ("CP2", second_ref)])


def test_a_large_import_refreshes_the_statistics_the_run_plans_by(
    pg_committed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without them the run would plan its read of a million fresh lines for an empty table
    (autovacuum comes later, or, on this machine, never)."""
    monkeypatch.setattr(loading, "ANALYZE_AFTER", 3)
    header = "bank_txn_id,booked_at,value_date,amount,direction,description,"
    header += "counterparty_account,counterparty_name\n"

    def file(*ids: str) -> bytes:
        rows = [f"{i},2026-11-20T09:00:00+07:00,,15000,CR,note {i},,\n" for i in ids]
        return (header + "".join(rows)).encode()

    def estimated_rows() -> float:
        with svc(pg_committed).db.reader() as session:
            return float(
                session.scalar(
                    text("SELECT reltuples FROM pg_class WHERE relname = 'recon_statement_lines'")
                )
            )

    assert import_file(pg_committed, file("ST1", "ST2")).lines_accepted == 2
    assert estimated_rows() != 2  # below the threshold: not analysed
    assert import_file(pg_committed, file("ST3", "ST4", "ST5", "ST6")).lines_accepted == 4
    assert estimated_rows() == 6


# -- a worker killed mid-run ------------------------------------------------------------------
def kill_tree(worker: WorkerProcess) -> None:
    """SIGKILL the worker and its work horse (RQ forks it into its own process group)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == worker.proc.pid:
            os.kill(int(stat.parent.name), signal.SIGKILL)
    worker.kill()


@pytest.fixture
def slow_workers(
    pg_redis_app: Any, pg_url: str, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> Any:
    """Start `cashless worker` processes whose runs pause after each phase (test setting)."""
    monkeypatch.setenv("CASHLESS_RECON_PHASE_DELAY", "1.0")
    started: list[WorkerProcess] = []

    def start() -> WorkerProcess:
        worker = WorkerProcess(svc(pg_redis_app).settings.instance_path, pg_url, redis_url)
        started.append(worker)
        time.sleep(0.5)  # let it open its log before the next one truncates the file
        return worker

    yield start
    for worker in started:
        worker.stop()


def test_worker_killed_mid_run_completes_once(
    pg_redis_app: Any, slow_workers: Any, redis_url: str
) -> None:
    from redis import Redis
    from rq import Queue
    from rq.registry import StartedJobRegistry
    from rq.scheduler import SCHEDULER_LOCKING_KEY_TEMPLATE

    from core.queue import OutboxJob, WorkerSerializer

    app, db = pg_redis_app, svc(pg_redis_app).db
    pay_cfg, cfg = configs(app)
    sc = build_scenario(db, pay_cfg, a_past_day())
    first_worker = slow_workers()
    assert import_file(app, sc.csv_bytes).status == "done"
    run, _ = service.start_run(db, cfg, day=sc.day, account_number=cfg.accounts[0], actor="t")
    wait_for(lambda: service.get_run(db, run.id).progress >= 30, timeout=30)

    kill_tree(first_worker)
    time.sleep(0.5)
    stuck = service.get_run(db, run.id)
    assert stuck.status == "running" and stuck.executions == 1
    with db.reader() as session:  # the killed transaction left nothing behind
        assert session.scalar(select(func.count()).where(Item.run_id == run.id)) == 0

    # Move time forward a minute: the dead worker's heartbeat goes stale (so the job may be
    # claimed again), its RQ scheduler lock expires ...
    with db.transaction() as session:
        session.execute(
            update(OutboxJob)
            .where(OutboxJob.id == f"recon-run:{run.id}")
            .values(heartbeat_at=utcnow() - timedelta(minutes=2))
        )
    redis = Redis.from_url(redis_url)
    redis.delete(*(SCHEDULER_LOCKING_KEY_TEMPLATE % name for name in ("high", "default", "low")))
    slow_workers()
    # ... and RQ notices the abandoned job (its heartbeat stopped) and schedules its retry.
    queue = Queue("default", connection=redis, serializer=WorkerSerializer)
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 3600)
    done = wait_for(lambda: (r := service.get_run(db, run.id)).status == "done" and r, timeout=90)
    assert done.executions == 2
    items = items_of(app, run.id)
    check_classified(sc, items)
    lines = [i["statement_line_id"] for i in items if i["statement_line_id"]]
    assert len(lines) == len(set(lines)) and sum(done.counts.values()) == len(items)
    with db.reader() as session:
        assert session.scalar(select(func.count()).select_from(Run)) == 1
