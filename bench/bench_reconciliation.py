"""Benchmark: reconcile a million statement lines against a million ledger entries (PostgreSQL).

Run from the repository root (never by the test suite; PostgreSQL at 127.0.0.1:5432):

    .venv/bin/python bench/bench_reconciliation.py [--lines 1000000] [--pg URL] [--keep]

It creates its own database (`cashless_bench_recon_*`, dropped at the end unless `--keep`),
migrates it, posts the ledger day set-based (COPY of the references, then `generate`-style
INSERT … SELECT with the ledger triggers off: tests/scenarios.py BULK_LEDGER_SQL) and writes the
statement CSV to disk (tests/scenarios.py write_bulk_statement). Then, timed:

- **service** — a separate worker process does what the jobs do: `submit_statement` (spool the
  file), `import_statement` (stream, validate, COPY into staging, set-based insert),
  `start_run` + `execute_run` (every matching phase, classification, items), and the summary
  report (`closing.daily_report`, CSV). Its peak memory is `resource.getrusage` in the worker.
- **floor** — the same file and the same ledger, by hand in psql: `\\copy` into a table, one
  statement that extracts the reference with SQL regular expressions, joins the clearing lines
  and classifies (matched / amount_mismatch / missing either side), and a count per category.

Goals (issue 7): service ≤ 15 s, ≤ 2.5 × the floor, worker peak memory < 300 MB.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

ACCOUNT = "0011001234567"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def _admin(pg: str) -> Any:
    from sqlalchemy import create_engine

    return create_engine(pg, isolation_level="AUTOCOMMIT")


def create_database(pg: str) -> str:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from cashless.cli import run_migrations

    name = f"cashless_bench_recon_{os.getpid()}"
    with _admin(pg).connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg).set(database=name).render_as_string(hide_password=False)
    run_migrations(url)
    return url


def drop_database(pg: str, url: str) -> None:
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    name = make_url(url).database
    with _admin(pg).connect() as conn:
        conn.execute(
            text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))


def post_ledger(url: str, n: int, day: date) -> float:
    """The ledger day, set-based; returns the seconds it took (not part of the figures)."""
    from sqlalchemy import text

    from core.db import Database
    from payments import ledger
    from tests.scenarios import BULK_LEDGER_SQL, bulk_reference

    started = time.perf_counter()
    db = Database(url)
    with db.transaction() as session:
        for code in ("bank_clearing", "transit_revenue"):
            ledger.ensure_account(session, code)
        session.execute(text("CREATE TEMP TABLE bulk_refs (i bigint, ref text) ON COMMIT DROP"))
        driver = session.connection().connection.driver_connection
        with driver.cursor() as cursor, cursor.copy("COPY bulk_refs (i, ref) FROM STDIN") as copy:
            for i in range(n):
                copy.write_row((i, bulk_reference(i)))
        t0 = datetime.combine(day, datetime.min.time(), UTC).replace(hour=3)
        sql = "\n".join(x for x in BULK_LEDGER_SQL.splitlines() if not x.startswith("--"))
        for statement in filter(str.strip, sql.split(";")):
            session.execute(text(statement), {"day": day, "t0": t0})
    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(text("VACUUM ANALYZE"))
        # The setup's dirty pages are written now, not by a checkpoint that the timed steps
        # (floor and service alike) would share the disk with.
        conn.execute(text("CHECKPOINT"))
    db.dispose()
    return time.perf_counter() - started


# -- the worker: what the jobs do, timed, in its own process ----------------------------------
def worker(url: str, csv_path: str, day: str, spool: str) -> None:
    import resource

    from core.db import Database
    from core.keys import KeyRing, Purpose
    from reconciliation import closing, service

    db = Database(url)
    cfg = service.ReconConfig(accounts=(ACCOUNT,), spool_dir=Path(spool), sandbox=False)
    keyring = KeyRing(db, "bench-key-encryption")
    keyring.current(Purpose.REPORT)  # key creation is not part of the figure
    times: dict[str, float] = {}
    started = time.perf_counter()
    with open(csv_path, "rb") as stream:
        statement = service.submit_statement(
            db,
            cfg,
            account_number=ACCOUNT,
            fmt="csv",
            filename="bulk.csv",
            stream=stream,
            actor="bench",
        )
    statement = service.import_statement(db, cfg, statement.id)
    times["import"] = time.perf_counter() - started
    mark = time.perf_counter()
    run, _ = service.start_run(
        db, cfg, day=date.fromisoformat(day), account_number=ACCOUNT, actor="bench"
    )
    service.execute_run(db, cfg, run.id)
    times["match"] = time.perf_counter() - mark
    mark = time.perf_counter()
    report = closing.daily_report(db, keyring, cfg, date.fromisoformat(day), "csv")
    times["report"] = time.perf_counter() - mark
    times["total"] = time.perf_counter() - started
    run = service.get_run(db, run.id)
    print(
        json.dumps(
            {
                "times": times,
                "statement": {
                    "accepted": statement.lines_accepted,
                    "rejected": statement.lines_rejected,
                    "status": statement.status,
                },
                "counts": run.counts,
                "report_bytes": len(report.content),
                "maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            }
        )
    )


# -- the floor ---------------------------------------------------------------------------------
FLOOR_SQL = r"""
\set ON_ERROR_STOP 1
CREATE TEMP TABLE floor_lines (bank_txn_id text, booked_at timestamptz, value_date date,
  amount bigint, direction text, description text, counterparty_account text,
  counterparty_name text);
\copy floor_lines FROM '{csv}' WITH (FORMAT csv, HEADER true)
SET work_mem = '128MB';
CREATE TEMP TABLE floor_items AS
SELECT CASE WHEN l.bank_txn_id IS NULL THEN 'missing_in_bank'
            WHEN c.posting_id IS NULL THEN 'missing_in_ledger'
            WHEN l.signed <> c.amount THEN 'amount_mismatch' ELSE 'matched' END AS category
  FROM (SELECT bank_txn_id, CASE direction WHEN 'CR' THEN amount ELSE -amount END AS signed,
               substring(regexp_replace(upper(description), '[^A-Z0-9]', '', 'g')
                         FROM 'H[CS][0-9A-HJKMNP-TV-Z]{{9}}') AS ref
          FROM floor_lines WHERE (booked_at AT TIME ZONE 'Asia/Ho_Chi_Minh')::date = '{day}') l
  FULL JOIN (SELECT p.id AS posting_id, p.amount, pay.reference
               FROM postings p JOIN journal_transactions t ON t.id = p.transaction_id
               JOIN ledger_accounts a ON a.id = p.account_id AND a.code = 'bank_clearing'
               LEFT JOIN payments pay ON pay.id = t.payment_id
              WHERE p.business_date = '{day}') c ON c.reference = l.ref;
SELECT category, count(*) FROM floor_items GROUP BY category ORDER BY category;
"""


def floor(url: str, csv_path: Path, day: date) -> tuple[float, str]:
    from sqlalchemy.engine import make_url

    parts = make_url(url)
    script = Path(tempfile.mkstemp(suffix=".sql")[1])
    script.write_text(FLOOR_SQL.format(csv=csv_path, day=day.isoformat()))
    command = [
        "psql",
        "-X",
        "-q",
        "-h",
        parts.host or "127.0.0.1",
        "-p",
        str(parts.port or 5432),
        "-U",
        parts.username or "postgres",
        "-d",
        parts.database or "",
        "-f",
        str(script),
    ]
    started = time.perf_counter()
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    script.unlink()
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lines", type=int, default=1_000_000)
    parser.add_argument("--pg", default=os.environ.get("CASHLESS_BENCH_PG", DEFAULT_PG))
    parser.add_argument("--keep", action="store_true", help="keep the scratch database")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    from tests.scenarios import bulk_day, write_bulk_statement

    day = bulk_day()
    url = create_database(args.pg)
    work = Path(tempfile.mkdtemp(prefix="bench-recon-"))
    try:
        setup = post_ledger(url, args.lines, day)
        csv_path = work / "statement.csv"
        expected = write_bulk_statement(csv_path, args.lines, day)
        print(
            f"setup: ledger of {args.lines:,} entries in {setup:.1f} s; statement "
            f"{csv_path.stat().st_size / 1e6:.0f} MB",
            flush=True,
        )
        floor_s, floor_out = floor(url, csv_path, day)
        result = json.loads(
            subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--worker",
                    url,
                    str(csv_path),
                    day.isoformat(),
                    str(work / "spool"),
                ],
                check=True,
                capture_output=True,
                text=True,
                cwd=ROOT,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        report(args.lines, result, expected, floor_s, floor_out)
    finally:
        if not args.keep:
            drop_database(args.pg, url)
        for path in sorted(work.rglob("*"), reverse=True):
            path.unlink() if path.is_file() else path.rmdir()
        work.rmdir()


def report(
    n: int, result: dict[str, Any], expected: dict[str, int], floor_s: float, floor_out: str
) -> None:
    times, counts = result["times"], result["counts"]
    ratio = times["total"] / floor_s
    load = os.getloadavg()
    print(
        f"\n{n:,} statement lines against {n:,} ledger entries, PostgreSQL "
        f"(load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f})\n"
    )
    print("| step | seconds |\n| --- | ---: |")
    for name in ("import", "match", "report", "total"):
        print(f"| service: {name} | {times[name]:.2f} |")
    print(f"| floor: \\copy + one join + classification (psql) | {floor_s:.2f} |")
    print(f"| ratio service / floor | {ratio:.2f} |")
    print(f"| worker peak memory (MB) | {result['maxrss_mb']:.0f} |\n")
    print("| category | service | expected |\n| --- | ---: | ---: |")
    for category, count in sorted(counts.items()):
        print(f"| {category} | {count:,} | {expected.get(category, 0):,} |")
    print(f"\nstatement: {result['statement']}; floor counts:\n{floor_out.strip()}")
    goals = [times["total"] <= 15, ratio <= 2.5, result["maxrss_mb"] < 300]
    wrong = [c for c, v in expected.items() if counts.get(c) != v]
    print(f"\ngoals (≤ 15 s, ≤ 2.5× floor, < 300 MB): {goals}; counts as expected: {not wrong}")


if __name__ == "__main__":
    main()
