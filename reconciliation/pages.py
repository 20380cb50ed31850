"""The finance dashboard (`/finance`): statements, runs with a live progress bar, items and
their resolution, the daily close, reports, and SVG charts rendered on the server.

Vietnamese by default; the page's script (static/reconciliation/finance.js) calls the JSON
API with the session cookie and the CSRF token.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Blueprint, Response, redirect, render_template, url_for
from flask_babel import gettext as _
from markupsafe import Markup

from core.auth import current_principal
from core.clock import business_date, utcnow
from core.errors import Forbidden
from core.http import services
from reconciliation import dashboard
from reconciliation.service import ReconConfig

bp = Blueprint(
    "reconciliation_pages",
    __name__,
    template_folder="templates",
    static_folder="static/reconciliation",
    static_url_path="/static/reconciliation",
)


def category_names() -> dict[str, str]:
    return {
        "matched": _("Matched"),
        "matched_with_fee": _("Matched net of a fee"),
        "amount_mismatch": _("Amount mismatch"),
        "missing_in_bank": _("Missing in the bank statement"),
        "missing_in_ledger": _("Missing in our ledger"),
        "duplicate": _("Duplicate"),
        "other_day": _("Another business day"),
    }


def _messages() -> dict[str, str]:
    """What the page's script says, in the page's language."""
    return {
        "uploading": _("Uploading…"),
        "importing": _("Importing…"),
        "imported": _("Imported"),
        "failed": _("Failed"),
        "accepted": _("accepted"),
        "rejected": _("rejected"),
        "skipped": _("already imported"),
        "line": _("Line"),
        "queued": _("Queued"),
        "running": _("Running"),
        "done": _("Done"),
        "no_items": _("No items in this category."),
        "resolve": _("Resolve"),
        "resolved": _("Resolved"),
        "note_required": _("A note is required."),
        "closed": _("The day is closed."),
        "error": _("Something went wrong. Try again."),
        "statement": _("Statement"),
        "ledger": _("Ledger"),
        "phase_queued": _("waiting for a worker"),
        "phase_load": _("reading statement and ledger"),
        "phase_txn_id": _("matching by bank transaction id"),
        "phase_reference": _("matching by payment reference"),
        "phase_amount_time": _("matching static QR payments"),
        "phase_batch": _("matching batch settlements"),
        "phase_payout": _("matching payouts"),
        "phase_classify": _("classifying"),
        "phase_done": _("finished"),
        "phase_failed": _("failed"),
    }


@bp.get("/finance")
def finance_page() -> str | Response:
    """The finance dashboard; anyone else is sent to log in or refused."""
    principal = current_principal(optional=True)
    if principal is None:
        return redirect(url_for("site.login", next="/finance"))  # type: ignore[return-value]
    if not principal.has("finance"):
        raise Forbidden("this page is for finance staff", code="forbidden_role")
    cfg = ReconConfig.from_settings(services().settings)
    today = business_date(utcnow())
    data: dict[str, Any] = dashboard.overview(
        services().db,
        today,
        {"volume": _("Daily volume by channel"), "rate": _("Match rate")},
    )
    return render_template(
        "reconciliation/finance.html",
        principal=principal,
        accounts=cfg.accounts,
        sandbox=cfg.sandbox,
        yesterday=(today - timedelta(days=1)).isoformat(),
        categories=category_names(),
        volume_svg=Markup(data["volume_svg"]),  # noqa: S704 - built by charts.py, labels escaped
        rate_svg=Markup(data["rate_svg"]),  # noqa: S704
        statements=data["statements"],
        runs=data["runs"],
        boot={"messages": _messages(), "categories": category_names()},
    )
