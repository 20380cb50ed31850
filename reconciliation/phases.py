# ruff: noqa: S608 - SQL is assembled from module constants only; every value is a bind parameter
"""The matching phases of a run: set-based SQL, no Python loop over rows (SPEC §9).

Everything happens inside the caller's transaction, in temporary work tables that die with it:
`recon_wl` (statement lines of the day and its neighbours), `recon_wp` (bank-clearing ledger
lines, read only through `payments.ledger.clearing_lines()`), `recon_txn` (pairs by bank id),
`recon_pair` (what each phase confirmed: created by the reference phase with the bulk of the
day), `recon_ol` and `recon_op` (the lines and ledger lines still open once the bulk is paired:
the later phases read only these, and every pair made removes its two from them), `recon_mem`
(members of batch lines) and `recon_amb` (lines and ledger lines that had more than one
candidate and wait for a human). The last phase writes `recon_items`.

A phase only considers what earlier phases left unpaired, and every ordering is total, so the
same data always gives the same pairs: re-running an unchanged day gives identical results.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Integer,
    bindparam,
    case,
    cast,
    column,
    func,
    literal,
    select,
    table,
    union,
)
from sqlalchemy import text as sql_text
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from payments import ledger
from reconciliation.categories import (
    AMOUNT_MISMATCH_SUSPENSE_REASONS,
    DUPLICATE_SUSPENSE_REASONS,
    MAX_FEE_BASIS_POINTS,
    NEIGHBOUR_DAYS,
    OWN_KIND_PREFIX,
    PAYOUT_PREFIX,
    TIME_WINDOW_SECONDS,
    Category,
    Method,
    Phase,
    suspense_memos,
)
from reconciliation.lines import normalise

_DATES = ("d", "lo", "hi")
# Work tables that the big joins read: unlogged on PostgreSQL so that those joins may use
# parallel workers (scans of temporary tables never do); the others stay temporary, which
# is cheaper to write.
SHARED_WORK = frozenset({"recon_wl", "recon_wp", "recon_txn", "recon_pair"})
# The run's work tables (and the indexes on them): one set per run on PostgreSQL.
_WORK_NAME = re.compile(
    r"\b(?:recon_(?:wl|wp|txn|pair|ol|op|new|repeat|rep_rows|rl|rp|amb|cand|mem|left|left_p|named|dup))\b"
)
# A pair carries what its item needs, so writing a million items joins nothing.
PAIR_COLUMNS = (
    "line_id, posting_id, method, line_day, posting_day, line_amount, ledger_amount, kind, memo"
)


def pair_select(method: Method, line: str = "l", posting: str = "p") -> str:
    """SELECT of PAIR_COLUMNS from a work line and a work ledger line (FROM … is the caller's)."""
    return (
        f"SELECT {line}.id AS line_id, {posting}.posting_id, '{method}' AS method, "
        f"{line}.business_date AS line_day, {posting}.business_date AS posting_day, "
        f"{line}.signed_amount AS line_amount, {posting}.amount AS ledger_amount, "
        f"{posting}.kind, {posting}.memo "
    )


WP_COLUMNS = (
    "posting_id",
    "business_date",
    "amount",
    "kind",
    "bank_txn",
    "payment_reference",
    "stall_reference",
    "norm_label",
    "norm_memo",
    "memo",
    "created_epoch",
    "purpose",
    "merchant_id",
)


class Work:
    """One run's SQL context: the session, the dialect and the parameters every phase uses."""

    def __init__(self, session: Session, run_id: int, account: str, day: date) -> None:
        self.session = session
        self.postgres = session.get_bind().dialect.name == "postgresql"
        span = timedelta(days=NEIGHBOUR_DAYS)
        self.created: list[str] = []  # work tables, dropped by `drop_all`
        self.txn_pairs = 0  # pairs by bank id (phase 1)
        self.counted: dict[str, int] = {}  # items written, by category (PostgreSQL)
        self.params: dict[str, Any] = {
            "run": run_id,
            "acct": account,
            "d": day,
            "lo": day - span,
            "hi": day + span,
            "win": TIME_WINDOW_SECONDS,
            "bp": MAX_FEE_BASIS_POINTS,
        }

    def scoped(self, statement: str) -> str:
        """On PostgreSQL, work-table names get the run's suffix (see `temp`)."""
        if not self.postgres:
            return statement
        return _WORK_NAME.sub(lambda m: f"{m.group(0)}_r{self.params['run']}", statement)

    def sql(self, statement: str, **extra: Any) -> Any:
        statement = self.scoped(statement)
        params = {**self.params, **extra}
        clause = sql_text(statement)
        used = [name for name in params if f":{name}" in statement]
        clause = clause.bindparams(
            *(bindparam(name, type_=Date()) for name in used if name in _DATES)
        )
        return self.session.execute(clause, {name: params[name] for name in used})

    def temp(self, name: str, select_sql: str, analyze: bool = True, **extra: Any) -> int:
        """CREATE TABLE name AS select, a work table of this run; returns its row count.

        SQLite: a temporary table. PostgreSQL: an UNLOGGED table named for the run (the
        `_r<run id>` suffix), because the scans and joins of temporary tables never use
        parallel workers and a run's joins are a million rows on each side. It is created
        inside the run's transaction, so it is dropped with it on any failure, and
        `drop_all` drops it before the commit; no other session ever sees it.
        """
        self.created.append(name)
        rows = self.sql(f"CREATE {self._kind(name)} TABLE {name} AS {select_sql}", **extra).rowcount
        if analyze:
            self.analyze(name)
        return int(rows)

    def drop(self, name: str) -> None:
        self.sql(f"DROP TABLE {name}")
        self.created.remove(name)

    def pair(self, select_sql: str) -> None:
        """Add the pairs a phase confirms (a select of PAIR_COLUMNS, see `pair_select`) and
        take their lines and ledger lines out of the open ones (`recon_ol`, `recon_op`).

        A phase selects from the open lines and ledger lines only, so nothing is paired
        twice; the selection is kept in a table of its own while the open sets shrink.
        """
        self.temp("recon_new", select_sql, analyze=False)
        self.sql(f"INSERT INTO recon_pair ({PAIR_COLUMNS}) SELECT {PAIR_COLUMNS} FROM recon_new")
        self.sql("DELETE FROM recon_ol WHERE id IN (SELECT line_id FROM recon_new)")
        self.sql(
            "DELETE FROM recon_op WHERE posting_id IN "
            "(SELECT posting_id FROM recon_new WHERE posting_id IS NOT NULL)"
        )
        self.drop("recon_new")

    def write_items(self, insert_sql: str, bulk: bool = False) -> None:
        """Run an `INSERT INTO recon_items (… category …) SELECT …`; on PostgreSQL, count
        what it wrote per category on the way (`counted`): through RETURNING, or for the
        `bulk` insert (the first of the run; mostly `matched`, never `matched_with_fee`),
        as its row count less what it wrote in the other categories, which the partial
        index of open items finds (collecting a million returned rows, or reading them
        again, costs more)."""
        if not self.postgres:
            self.sql(insert_sql)
            return
        if bulk:
            written = int(self.sql(insert_sql).rowcount)
            rows = self.sql(
                "SELECT category, count(*) FROM recon_items WHERE run_id = :run "
                f"AND category NOT IN ('{Category.MATCHED}', '{Category.MATCHED_WITH_FEE}') "
                "GROUP BY category"
            ).all()
            rows.append((Category.MATCHED.value, written - sum(int(n) for _, n in rows)))
        else:
            rows = self.sql(
                f"WITH written AS ({insert_sql} RETURNING category) "
                "SELECT category, count(*) FROM written GROUP BY category"
            ).all()
        for name, n in rows:
            self.counted[str(name)] = self.counted.get(str(name), 0) + int(n)

    def create(self, name: str, columns: str) -> None:
        """CREATE TABLE name (columns), a work table of this run (see `temp`)."""
        self.created.append(name)
        self.sql(f"CREATE {self._kind(name)} TABLE {name} ({columns})")

    def _kind(self, name: str) -> str:
        return "UNLOGGED" if self.postgres and name in SHARED_WORK else "TEMP"

    def analyze(self, name: str) -> None:
        # Work tables are too young for autovacuum's statistics; without them PostgreSQL
        # plans the anti-joins below as nested loops over a million rows.
        if self.postgres:
            self.sql(f"ANALYZE {name}")

    def contains(self, haystack: str, needle: str) -> str:
        return (
            f"strpos({haystack}, {needle}) > 0"
            if self.postgres
            else f"instr({haystack}, {needle}) > 0"
        )

    def drop_all(self) -> None:
        """Drop every work table still there (call before the run's transaction commits)."""
        for name in reversed(self.created):
            self.sql(f"DROP TABLE IF EXISTS {name}")
        self.created.clear()


# -- load -------------------------------------------------------------------------------------
def load(work: Work) -> int:
    """Copy the run's universe into work tables; returns how many lines the day has (its
    ledger lines are counted by `ledger_totals`)."""
    if not work.postgres:
        _register_sqlite_functions(work.session)
    epoch = (
        "CAST(extract(epoch FROM booked_at) AS bigint)"
        if work.postgres
        else "CAST(strftime('%s', booked_at) AS INTEGER)"
    )
    work.temp(
        "recon_wl",
        f"SELECT id, business_date, {epoch} AS booked_epoch, "
        "CASE WHEN direction = 'CR' THEN amount ELSE -amount END AS signed_amount, "
        "bank_txn_id, reference, direction, ref_count, "
        # The bulk (lines naming a charge) never needs its text again: keep only the rest's.
        "CASE WHEN reference LIKE 'HC%' THEN NULL ELSE norm_description END "
        "AS norm_description FROM recon_statement_lines "
        "WHERE account_number = :acct AND business_date BETWEEN :lo AND :hi",
    )
    _load_postings(work)
    work.create("recon_amb", "subject text, subject_id bigint, n bigint")
    return int(work.sql("SELECT count(*) FROM recon_wl WHERE business_date = :d").scalar_one())


def _register_sqlite_functions(session: Session) -> None:
    driver = session.connection().connection.driver_connection
    assert driver is not None
    driver.create_function("recon_norm", 1, lambda v: normalise(v or ""), deterministic=True)


def _norm(work: Work, expr: ColumnElement[Any]) -> ColumnElement[Any]:
    if work.postgres:
        return func.regexp_replace(func.upper(func.coalesce(expr, "")), "[^A-Z0-9]", "", "g")
    return func.recon_norm(expr)


def _epoch(work: Work, expr: ColumnElement[Any]) -> ColumnElement[Any]:
    if work.postgres:
        return cast(func.extract("epoch", expr), BigInteger)
    return cast(func.strftime("%s", expr), Integer)


def _in_universe(work: Work, cl: Any) -> tuple[ColumnElement[bool], ...]:
    """Which clearing lines a run considers (`recon_wp`): its days, not its own postings."""
    return (
        cl.c.business_date.between(work.params["lo"], work.params["hi"]),
        cl.c.kind.not_like(OWN_KIND_PREFIX + "%"),
    )


def _load_postings(work: Work) -> None:
    cl = ledger.clearing_lines().subquery("cl")
    static = cl.c.stall_reference.is_not(None)
    query = select(
        cl.c.posting_id,
        cl.c.business_date,
        cl.c.amount,
        cl.c.kind,
        case((cl.c.external_key.like("bank:%"), func.substr(cl.c.external_key, 6))),
        cl.c.payment_reference,
        cl.c.stall_reference,
        case((static, _norm(work, cl.c.terminal_label))),
        case((cl.c.kind == "payout", _norm(work, cl.c.memo))),
        case((cl.c.kind.in_(["bank_credit_suspense", "payout"]), cl.c.memo)),
        case((static, _epoch(work, cl.c.payment_created_at))),
        cl.c.purpose,
        cl.c.merchant_id,
    ).where(*_in_universe(work, cl))
    # CREATE TABLE AS (not INSERT … SELECT) so that PostgreSQL may read the ledger with
    # parallel workers; the values are literals here (dates and constants only).
    columns = [
        column.label(name) for column, name in zip(query.selected_columns, WP_COLUMNS, strict=True)
    ]
    compiled = query.with_only_columns(*columns).compile(
        dialect=work.session.get_bind().dialect, compile_kwargs={"literal_binds": True}
    )
    work.temp("recon_wp", str(compiled))


def ledger_totals(work: Work) -> list[list[Any]]:
    """The day's ledger lines of `recon_wp` grouped as the daily report groups them
    (`closing.day_totals`): [kind, purpose, merchant_id, count, amount] rows, in order."""
    rows = work.sql(
        "SELECT kind, purpose, merchant_id, count(*), sum(amount) FROM recon_wp "
        "WHERE business_date = :d GROUP BY kind, purpose, merchant_id"
    ).all()
    return sorted(
        (
            [kind, purpose, merchant, int(n), int(total)]
            for kind, purpose, merchant, n, total in rows
        ),
        key=lambda row: (row[0], row[1] or "", row[2] or 0),
    )


# -- phases 1 to 5 ----------------------------------------------------------------------------
def by_transaction_id(work: Work) -> None:
    """The statement line's bank id is the id the bank notified us with (one to one: both ids
    are unique). Kept in `recon_txn` until the reference phase creates `recon_pair`."""
    work.txn_pairs = work.temp(
        "recon_txn",
        pair_select(Method.TXN_ID) + ", CAST(NULL AS text) AS reference, l.booked_epoch "
        "FROM recon_wl l JOIN recon_wp p ON p.bank_txn = l.bank_txn_id "
        # Explicit, so that ledger lines without a notified id are left out of the hash.
        "WHERE p.bank_txn IS NOT NULL AND (p.amount > 0) = (l.signed_amount > 0)",
    )


def by_reference(work: Work) -> None:
    """Our charge reference in the description; creates `recon_pair` (with phase 1's pairs).

    A reference held by exactly one line and one ledger line pairs them at once (the bulk
    of a day: one hash join written straight into the pair table). Where a reference
    repeats on either side, its rows are taken out again, and its lines and ledger lines
    are paired in time order, equal amounts first; what is left over is classified later
    (a second line for a matched entry is a `duplicate`).
    """
    unpaired = (
        "AND NOT EXISTS (SELECT 1 FROM recon_txn x WHERE x.line_id = l.id) "
        "AND NOT EXISTS (SELECT 1 FROM recon_txn x WHERE x.posting_id = p.posting_id)"
        if work.txn_pairs
        else ""
    )
    work.temp(
        "recon_pair",
        f"SELECT {PAIR_COLUMNS}, reference, booked_epoch FROM recon_txn UNION ALL "
        + pair_select(Method.REFERENCE)
        + ", l.reference, l.booked_epoch FROM recon_wl l "
        "JOIN recon_wp p ON p.payment_reference = l.reference "
        "WHERE l.reference LIKE 'HC%' AND l.signed_amount > 0 AND p.amount > 0 " + unpaired,
    )
    work.drop("recon_txn")
    # A reference held by two lines or two ledger lines joins twice: it appears twice here.
    repeats = _repeated_references(work)
    if repeats:
        # The few lines and ledger lines of repeated references, with what pairing them needs,
        # taken out of the pairs.
        repeated = "reference IN (SELECT reference FROM recon_repeat)"
        if work.postgres:  # one pass over the pairs: what the DELETE removes is kept
            work.temp("recon_rep_rows", "SELECT * FROM recon_pair WHERE false", analyze=False)
            work.sql(
                f"WITH taken AS (DELETE FROM recon_pair WHERE {repeated} RETURNING *) "
                "INSERT INTO recon_rep_rows SELECT * FROM taken"
            )
        else:
            work.temp("recon_rep_rows", f"SELECT * FROM recon_pair WHERE {repeated}")
            work.sql(f"DELETE FROM recon_pair WHERE {repeated}")
        work.temp(
            "recon_rl",
            "SELECT DISTINCT line_id AS id, line_day AS business_date, "
            "line_amount AS signed_amount, booked_epoch, reference FROM recon_rep_rows",
        )
        work.temp(
            "recon_rp",
            "SELECT DISTINCT posting_id, posting_day AS business_date, ledger_amount AS amount, "
            "kind, memo, reference AS payment_reference FROM recon_rep_rows",
        )
        work.drop("recon_rep_rows")
    work.drop("recon_repeat")
    _open_sets(work)
    if repeats:
        for with_amount in (True, False):
            _pair_in_time_order(work, with_amount)
        work.drop("recon_rl")
        work.drop("recon_rp")


def _repeated_references(work: Work) -> int:
    """`recon_repeat`: the references that appear in more than one pair; returns how many.

    PostgreSQL: grouped by sorting under the "C" collation (byte order, abbreviated keys,
    sorted by parallel workers), which is quicker than hashing a million distinct
    references; equality, all that is asked of the result, is the same in every collation.
    """
    if not work.postgres:
        return work.temp(
            "recon_repeat",
            "SELECT reference FROM recon_pair WHERE reference IS NOT NULL "
            "GROUP BY reference HAVING count(*) > 1",
        )
    work.sql("SET LOCAL enable_hashagg = off")
    found = work.temp(
        "recon_repeat",
        'SELECT reference COLLATE "C" AS reference FROM recon_pair '
        "WHERE reference IS NOT NULL GROUP BY 1 HAVING count(*) > 1",
    )
    work.sql("RESET enable_hashagg")
    return found


def _open_sets(work: Work) -> None:
    """What the bulk left open: a few thousand lines and ledger lines, where the day has a
    million. Two anti-joins, once; from here on every phase reads these small tables."""
    work.temp(
        "recon_ol",
        "SELECT * FROM recon_wl l WHERE NOT EXISTS "
        "(SELECT 1 FROM recon_pair x WHERE x.line_id = l.id)",
    )
    work.temp(
        "recon_op",
        "SELECT * FROM recon_wp p WHERE NOT EXISTS "
        "(SELECT 1 FROM recon_pair x WHERE x.posting_id = p.posting_id)",
    )


def _pair_in_time_order(work: Work, with_amount: bool) -> None:
    """One pass over the lines and ledger lines of repeated references (recon_rl, recon_rp):
    the n-th line in time order pairs with the n-th ledger line. Nothing in them is paired
    before the first pass (with equal amounts); the second pass skips what the first took."""
    extra = ", signed_amount" if with_amount else ""
    extra_p = ", amount" if with_amount else ""
    on_amount = " AND up.amount = ul.signed_amount" if with_amount else ""
    open_line = "1 = 1" if with_amount else "l.id IN (SELECT id FROM recon_ol)"
    open_posting = "1 = 1" if with_amount else "p.posting_id IN (SELECT posting_id FROM recon_op)"
    work.pair(
        pair_select(Method.REFERENCE) + "FROM "
        f"(SELECT l.id, l.reference, l.signed_amount, ROW_NUMBER() OVER "
        f"(PARTITION BY l.reference{extra} ORDER BY l.booked_epoch, l.id) AS rn "
        f"FROM recon_rl l WHERE {open_line}) ul JOIN "
        "(SELECT p.posting_id, p.payment_reference, p.amount, ROW_NUMBER() OVER "
        f"(PARTITION BY p.payment_reference{extra_p} ORDER BY "
        "CASE WHEN p.kind = 'bank_credit' THEN 0 ELSE 1 END, p.posting_id) AS rn "
        f"FROM recon_rp p WHERE {open_posting}) up "
        f"ON up.payment_reference = ul.reference AND up.rn = ul.rn{on_amount} "
        "JOIN recon_rl l ON l.id = ul.id JOIN recon_rp p ON p.posting_id = up.posting_id"
    )


def by_amount_and_time(work: Work) -> None:
    """Static stall QR: same amount, booked within the window of the ledger line, naming the
    stall (its reference or its terminal label). Confirmed only when the line and the ledger
    line are each other's only candidate; anything else waits for a human."""
    label = work.contains("l.norm_description", "p.norm_label")
    work.temp(
        "recon_cand",
        "SELECT l.id AS line_id, p.posting_id FROM recon_ol l "
        "JOIN recon_op p ON p.amount = l.signed_amount "
        "WHERE l.signed_amount > 0 AND p.kind = 'bank_credit' "
        "AND p.payment_reference IS NULL AND p.stall_reference IS NOT NULL "
        f"AND (l.reference = p.stall_reference OR (p.norm_label <> '' AND {label})) "
        "AND p.created_epoch BETWEEN l.booked_epoch - :win AND l.booked_epoch + :win",
    )
    _confirm_unique(work, "recon_cand", Method.AMOUNT_TIME)
    _record_ambiguous(work, "recon_cand")
    work.drop("recon_cand")


def _confirm_unique(work: Work, candidates: str, method: Method, where: str = "1 = 1") -> None:
    """Pair the candidates that are their line's and their ledger line's only candidate
    (among those matching `where`), if both are still open."""
    work.pair(
        pair_select(method) + f"FROM {candidates} c JOIN recon_ol l ON l.id = c.line_id "
        f"JOIN recon_op p ON p.posting_id = c.posting_id WHERE {where} "
        f"AND c.line_id IN (SELECT line_id FROM {candidates} WHERE {where} "
        "GROUP BY line_id HAVING count(*) = 1) "
        f"AND c.posting_id IN (SELECT posting_id FROM {candidates} WHERE {where} "
        "GROUP BY posting_id HAVING count(*) = 1)"
    )


def _record_ambiguous(work: Work, candidates: str) -> None:
    work.sql(
        "INSERT INTO recon_amb (subject, subject_id, n) "
        f"SELECT 'line', c.line_id, count(*) FROM {candidates} c "
        "WHERE c.line_id IN (SELECT id FROM recon_ol) GROUP BY c.line_id"
    )
    work.sql(
        "INSERT INTO recon_amb (subject, subject_id, n) "
        f"SELECT 'posting', c.posting_id, count(*) FROM {candidates} c "
        "WHERE c.posting_id IN (SELECT posting_id FROM recon_op) GROUP BY c.posting_id"
    )


def by_batch(work: Work) -> None:
    """One line naming several payments (references or bank ids) settles all of them.

    A ledger line named by two batch lines belongs to the first one.
    """
    named = []
    for key in ("payment_reference", "bank_txn"):
        named.append(
            "SELECT r.line_id, p.posting_id FROM recon_line_refs r "
            "JOIN recon_ol l ON l.id = r.line_id "
            f"JOIN recon_op p ON p.{key} = r.ref "
            "WHERE l.ref_count > 1 AND l.signed_amount > 0 AND p.amount > 0"
        )
    work.temp(
        "recon_mem",
        "SELECT line_id, posting_id FROM (SELECT line_id, posting_id, ROW_NUMBER() OVER "
        "(PARTITION BY posting_id ORDER BY line_id) AS rn FROM ("
        + " UNION ".join(named)
        + ") named) ranked WHERE rn = 1",
    )
    work.pair(
        "SELECT DISTINCT l.id AS line_id, CAST(NULL AS bigint) AS posting_id, "
        f"'{Method.BATCH}' AS method, l.business_date AS line_day, "
        "CAST(NULL AS date) AS posting_day, l.signed_amount AS line_amount, "
        "CAST(NULL AS bigint) AS ledger_amount, CAST(NULL AS text) AS kind, "
        "CAST(NULL AS text) AS memo FROM recon_mem m JOIN recon_ol l ON l.id = m.line_id"
    )


def by_payout(work: Work) -> None:
    """A DR line `PAYOUT <day> <merchant>` pays one payout batch of the same amount.

    A ledger line whose memo is the line's note is a strong candidate and is tried first;
    then amount alone, still only when the line and the payout are each other's only fit.
    """
    work.temp(
        "recon_cand",
        "SELECT l.id AS line_id, p.posting_id, "
        "CASE WHEN p.norm_memo = l.norm_description THEN 1 ELSE 0 END AS strong "
        "FROM recon_ol l JOIN recon_op p ON p.amount = l.signed_amount "
        f"WHERE l.direction = 'DR' AND l.norm_description LIKE '{PAYOUT_PREFIX}%' "
        "AND p.kind = 'payout'",
    )
    _confirm_unique(work, "recon_cand", Method.PAYOUT, "strong = 1")
    _confirm_unique(work, "recon_cand", Method.PAYOUT)
    _record_ambiguous(work, "recon_cand")
    work.drop("recon_cand")


PHASES: list[tuple[Phase, Callable[[Work], None]]] = [
    (Phase.TXN_ID, by_transaction_id),
    (Phase.REFERENCE, by_reference),
    (Phase.AMOUNT_TIME, by_amount_and_time),
    (Phase.BATCH, by_batch),
    (Phase.PAYOUT, by_payout),
]


# -- classification ---------------------------------------------------------------------------
def _quoted(values: list[str]) -> str:
    return ", ".join("'" + value.replace("'", "''") + "'" for value in values)


def _pair_category() -> str:
    """Precedence: amounts differ; what the ledger parked in suspense; another day; matched."""
    suspense = "x.kind = 'bank_credit_suspense'"
    mismatch = _quoted(suspense_memos(AMOUNT_MISMATCH_SUSPENSE_REASONS))
    duplicate = _quoted(suspense_memos(DUPLICATE_SUSPENSE_REASONS))
    return (
        f"CASE WHEN x.line_amount <> x.ledger_amount THEN '{Category.AMOUNT_MISMATCH}' "
        f"WHEN {suspense} AND x.memo IN ({mismatch}) THEN '{Category.AMOUNT_MISMATCH}' "
        f"WHEN {suspense} AND x.memo IN ({duplicate}) THEN '{Category.DUPLICATE}' "
        f"WHEN {suspense} THEN '{Category.MISSING_IN_LEDGER}' "
        f"WHEN x.line_day <> x.posting_day THEN '{Category.OTHER_DAY}' "
        f"ELSE '{Category.MATCHED}' END"
    )


def classify(work: Work) -> dict[str, int]:
    """Write the run's items: pairs, batches, duplicates, then what is missing on each side.

    Only what concerns the run's day is written: its lines, its ledger lines, and pairs that
    join one of them to a neighbouring day (`other_day`). Returns the count per category.
    """
    _write_pairs(work)
    _write_batches(work)
    # What is left of the day: its open lines, and its open ledger lines that no batch took.
    work.temp(
        "recon_left",
        "SELECT id, reference, signed_amount FROM recon_ol WHERE business_date = :d",
    )
    work.temp(
        "recon_left_p",
        "SELECT p.posting_id, p.amount FROM recon_op p WHERE p.business_date = :d "
        "AND NOT EXISTS (SELECT 1 FROM recon_mem m WHERE m.posting_id = p.posting_id)",
    )
    _write_unpaired_lines(work)
    _write_unpaired_postings(work)
    counts = {category.value: 0 for category in Category}
    if work.postgres:  # counted as they were written: a million-row run is not read again
        for name, n in work.counted.items():
            counts[name] += n
        return counts
    rows = work.sql(
        "SELECT category, count(*) FROM recon_items WHERE run_id = :run GROUP BY category"
    ).all()
    counts.update({str(name): int(n) for name, n in rows})
    return counts


def _write_pairs(work: Work) -> None:
    work.write_items(
        "INSERT INTO recon_items (run_id, category, method, statement_line_id, posting_id, "
        "member_count, line_amount, ledger_amount, reason) "
        f"SELECT :run, {_pair_category()}, x.method, x.line_id, x.posting_id, 1, "
        "x.line_amount, x.ledger_amount, "
        "CASE WHEN x.kind = 'bank_credit_suspense' THEN x.memo END FROM recon_pair x "
        "WHERE x.posting_id IS NOT NULL AND (x.line_day = :d OR x.posting_day = :d)",
        bulk=True,
    )


def _write_batches(work: Work) -> None:
    fits_fee = (
        "(s.total > l.signed_amount AND (s.total - l.signed_amount) * 10000 <= s.total * :bp)"
    )
    work.write_items(
        "INSERT INTO recon_items (run_id, category, method, statement_line_id, member_count, "
        "line_amount, ledger_amount, fee) "
        f"SELECT :run, CASE WHEN s.total <> l.signed_amount AND NOT {fits_fee} "
        f"THEN '{Category.AMOUNT_MISMATCH}' WHEN s.other > 0 THEN '{Category.OTHER_DAY}' "
        f"WHEN s.total = l.signed_amount THEN '{Category.MATCHED}' "
        f"ELSE '{Category.MATCHED_WITH_FEE}' END, '{Method.BATCH}', l.id, s.n, "
        f"l.signed_amount, s.total, CASE WHEN {fits_fee} THEN s.total - l.signed_amount END "
        "FROM recon_wl l JOIN (SELECT m.line_id, count(*) AS n, sum(p.amount) AS total, "
        "sum(CASE WHEN p.business_date <> ml.business_date THEN 1 ELSE 0 END) AS other, "
        "max(CASE WHEN p.business_date = :d THEN 1 ELSE 0 END) AS has_day "
        "FROM recon_mem m JOIN recon_wp p ON p.posting_id = m.posting_id "
        "JOIN recon_wl ml ON ml.id = m.line_id GROUP BY m.line_id) s ON s.line_id = l.id "
        "WHERE l.business_date = :d OR s.has_day = 1"
    )
    work.sql(
        "INSERT INTO recon_item_members (run_id, posting_id, item_id) "
        "SELECT :run, m.posting_id, i.id FROM recon_mem m "
        "JOIN recon_items i ON i.run_id = :run AND i.statement_line_id = m.line_id"
    )


def _write_unpaired_lines(work: Work) -> None:
    """A leftover line naming an entry another line already matched is a `duplicate`."""
    # What each leftover line names (its reference, or a batch line's references), then
    # which ledger lines those are: index lookups in the ledger for a few names (the work
    # table of ledger lines has no index, and scanning it costs more than the lookups).
    work.temp(
        "recon_named",
        "SELECT f.id AS line_id, f.reference AS ref FROM recon_left f "
        "WHERE f.reference IS NOT NULL "
        "UNION SELECT r.line_id, r.ref FROM recon_left f "
        "JOIN recon_line_refs r ON r.line_id = f.id",
    )
    work.temp("recon_dup", _named_entries(work))
    # Keep the entries another line took: paired (no longer open) or in a batch.
    work.sql(
        "DELETE FROM recon_dup WHERE posting_id IN (SELECT posting_id FROM recon_op) "
        "AND posting_id NOT IN (SELECT posting_id FROM recon_mem)"
    )
    work.write_items(
        "INSERT INTO recon_items (run_id, category, method, statement_line_id, "
        "related_posting_id, member_count, line_amount, reason) "
        f"SELECT :run, CASE WHEN d.posting_id IS NULL THEN '{Category.MISSING_IN_LEDGER}' "
        f"ELSE '{Category.DUPLICATE}' END, '{Method.NONE}', f.id, d.posting_id, 0, "
        "f.signed_amount, CASE WHEN d.posting_id IS NOT NULL "
        "THEN 'another bank id for an entry that is already matched' "
        "WHEN a.n IS NOT NULL THEN 'ambiguous: ' || a.n || ' candidate(s); confirm by hand' "
        "END FROM recon_left f "
        "LEFT JOIN (SELECT line_id, min(posting_id) AS posting_id FROM recon_dup "
        "GROUP BY line_id) d ON d.line_id = f.id "
        "LEFT JOIN recon_amb a ON a.subject = 'line' AND a.subject_id = f.id"
    )


def _named_entries(work: Work) -> str:
    """SELECT (line_id, posting_id) of every credit of the run's ledger lines (`recon_wp`)
    that a line of `recon_named` names, by our reference or by the bank id it was notified
    with; read from the ledger, whose indexes find a few names at once."""
    cl = ledger.clearing_lines().subquery("cl")
    named = table("recon_named", column("line_id"), column("ref")).alias("n")
    query = union(
        *(
            select(named.c.line_id, cl.c.posting_id)
            .join(cl, on)
            .where(cl.c.amount > 0, *_in_universe(work, cl))
            for on in (
                cl.c.payment_reference == named.c.ref,
                cl.c.external_key == literal("bank:") + named.c.ref,
            )
        )
    )
    dialect = work.session.get_bind().dialect
    return str(query.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))


def _write_unpaired_postings(work: Work) -> None:
    work.write_items(
        "INSERT INTO recon_items (run_id, category, method, posting_id, member_count, "
        "ledger_amount, reason) "
        f"SELECT :run, '{Category.MISSING_IN_BANK}', '{Method.NONE}', f.posting_id, 1, f.amount, "
        "CASE WHEN a.n IS NOT NULL THEN 'ambiguous: ' || a.n || ' candidate(s); "
        "confirm by hand' END FROM recon_left_p f "
        "LEFT JOIN recon_amb a ON a.subject = 'posting' AND a.subject_id = f.posting_id"
    )


def attach_resolutions(work: Work) -> None:
    """Items a finance decision already answered (same subject, same category) keep it."""
    work.sql(
        "UPDATE recon_items SET resolution_id = (SELECT r.id FROM recon_resolutions r "
        "WHERE r.account_number = :acct AND r.business_date = :d "
        "AND r.category = recon_items.category AND ("
        "(r.subject = 'line' AND r.subject_id = recon_items.statement_line_id) OR "
        "(r.subject = 'posting' AND recon_items.statement_line_id IS NULL "
        "AND r.subject_id = recon_items.posting_id))) "
        f"WHERE run_id = :run AND category NOT IN ('{Category.MATCHED}', "
        f"'{Category.MATCHED_WITH_FEE}')"
    )
