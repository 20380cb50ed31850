"""The citizen's receipt page (server-rendered; Vietnamese by default, English with ?lang=en).

Reached with the page session or a short-lived signed token in the URL (the `receipt_url` an
application carries), so a citizen can open it from the app without logging in again.
"""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from core.auth import current_principal
from core.http import services
from payments.fees import service

bp = Blueprint("fees_pages", __name__, template_folder="templates")


@bp.get("/receipts/<receipt_no>")
def receipt(receipt_no: str) -> str | Response:
    """A receipt: service, channel, gross fee, waived amount, payable, legal basis, date."""
    principal = current_principal(optional=True, url_token=True)
    if principal is None:
        return redirect(url_for("site.login", next=request.path))
    application = service.receipt_for(services().db, receipt_no, principal.user_id, principal.roles)
    return render_template(
        "fees/receipt.html",
        application=application,
        principal=principal if principal.via == "session" else None,
    )
