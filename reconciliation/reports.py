"""The daily close report as CSV and XLSX (openpyxl). Pure: no Flask, no database.

The same `DailyReport` renders both files. Amounts are integers of VND everywhere (SPEC §2);
the XLSX writes them as integer cells with a thousands format, never floats. Both renderings
are deterministic for one report (the XLSX carries the report's own timestamp, not "now"),
so a stored report and its signature can be checked later byte for byte.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

CSV_MIMETYPE = "text/csv; charset=utf-8"
XLSX_MIMETYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"

ITEM_COLUMNS = (
    "item_id",
    "category",
    "account_number",
    "bank_txn_id",
    "booked_at",
    "description",
    "ledger_key",
    "line_amount",
    "ledger_amount",
    "fee",
    "reason",
    "resolution",
    "note",
    "resolved_by",
    "resolved_at",
)


@dataclass
class DailyReport:
    business_date: date
    status: str  # "closed" or "provisional"
    generated_at: datetime
    closed_by: str | None = None
    runs: list[dict[str, Any]] = field(default_factory=list)
    channels: list[dict[str, Any]] = field(default_factory=list)
    merchants: list[dict[str, Any]] = field(default_factory=list)
    items: list[dict[str, Any]] = field(default_factory=list)

    @property
    def match_rate(self) -> str:
        matched = sum(r["matched"] for r in self.runs)
        total = sum(r["total"] for r in self.runs)
        return rate_text(matched, total)


def rate_text(matched: int, total: int) -> str:
    """A percentage with two decimals computed in integers (no float in a report)."""
    if total == 0:
        return "n/a"
    basis = matched * 10_000 // total
    return f"{basis // 100}.{basis % 100:02d} %"


def _sections(report: DailyReport) -> list[tuple[str, list[str], list[list[Any]]]]:
    items = [[i.get(c) if i.get(c) is not None else "" for c in ITEM_COLUMNS] for i in report.items]
    return [
        ("Summary", ["field", "value"], _summary(report)),
        ("Runs", RUN_COLUMNS, [_run_row(r) for r in report.runs]),
        (
            "Channels",
            ["channel", "count", "amount"],
            [[c["channel"], c["count"], c["amount"]] for c in report.channels],
        ),
        (
            "Merchants",
            ["merchant_id", "count", "amount"],
            [[m["merchant_id"], m["count"], m["amount"]] for m in report.merchants],
        ),
        ("Items", list(ITEM_COLUMNS), items),
    ]


def _summary(report: DailyReport) -> list[list[Any]]:
    return [
        ["business_date", report.business_date.isoformat()],
        ["status", report.status],
        ["generated_at", report.generated_at.isoformat()],
        ["closed_by", report.closed_by or ""],
        ["match_rate", report.match_rate],
        ["items", len(report.items)],
        ["items_resolved", sum(1 for i in report.items if i.get("resolution"))],
    ]


def _run_row(run: dict[str, Any]) -> list[Any]:
    counts = [run["counts"].get(category, 0) for category in _CATEGORIES]
    return [
        run["account_number"],
        run["run_id"],
        run["attempt"],
        run["status"],
        run["matched"],
        run["total"],
        rate_text(run["matched"], run["total"]),
        *counts,
    ]


_CATEGORIES = (
    "matched",
    "matched_with_fee",
    "amount_mismatch",
    "missing_in_bank",
    "missing_in_ledger",
    "duplicate",
    "other_day",
)
RUN_COLUMNS = [
    "account_number",
    "run_id",
    "attempt",
    "status",
    "matched",
    "total",
    "match_rate",
    *_CATEGORIES,
]


def render_csv(report: DailyReport) -> bytes:
    """UTF-8 CSV (RFC 4180, CRLF): one block per section, each under a `# <Section>` row."""
    out = io.StringIO()
    writer = csv.writer(out)
    for n, (title, header, rows) in enumerate(_sections(report)):
        if n:
            writer.writerow([])
        writer.writerow([f"# {title}"])
        writer.writerow(header)
        writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def render_xlsx(report: DailyReport) -> bytes:
    """One sheet per section; integer amounts formatted `#,##0`."""
    from openpyxl import Workbook

    book = Workbook()
    book.remove(book.active)
    for title, header, rows in _sections(report):
        sheet = book.create_sheet(title)
        sheet.append(header)
        for row in rows:
            sheet.append(row)
        for column in sheet.iter_cols(min_row=2):
            for cell in column:
                if isinstance(cell.value, int) and not isinstance(cell.value, bool):
                    cell.number_format = "#,##0"
    stamp = report.generated_at.replace(tzinfo=None, microsecond=0)
    book.properties.created = book.properties.modified = stamp
    book.properties.creator = "Hanoi Cashless"
    out = io.BytesIO()
    book.save(out)
    return _fixed_zip_times(out.getvalue(), stamp)


_MODIFIED = re.compile(rb"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def _fixed_zip_times(data: bytes, stamp: datetime) -> bytes:
    """Rewrite the archive with every member dated `stamp`, so equal reports are equal bytes.

    openpyxl stamps "modified" with the time of saving; the report's own time replaces it.
    """
    import zipfile

    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    iso = stamp.strftime("%Y-%m-%dT%H:%M:%SZ").encode()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            copy = zipfile.ZipInfo(info.filename, date_time=stamp.timetuple()[:6])
            copy.compress_type = zipfile.ZIP_DEFLATED
            member = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                member = _MODIFIED.sub(rb"\g<1>" + iso + rb"\g<2>", member)
            target.writestr(copy, member)
    return out.getvalue()
