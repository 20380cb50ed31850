"""The commuter's ticket page (`/ticket`): buy with the wallet, see tickets, show the live QR.

Server-rendered in Vietnamese by default; the page's own JavaScript (static/ticketing/) registers
the phone's WebCrypto key, signs the QR every 30 s and keeps working offline.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, render_template, send_from_directory, url_for
from flask_babel import gettext as _

from core.auth import current_principal
from core.clock import utcnow
from core.errors import Forbidden
from core.http import services
from ticketing import service
from ticketing.schemas import TicketSummarySchema

bp = Blueprint(
    "ticketing_pages",
    __name__,
    template_folder="templates",
    static_folder="static/ticketing",
    static_url_path="/static/ticketing",
)


def _messages() -> dict[str, str]:
    """What the page's script says, in the page's language."""
    return {
        "buy": _("Buy"),
        "buying": _("Buying…"),
        "bought": _("Ticket bought."),
        "insufficient_funds": _("Not enough money in your wallet."),
        "offline": _("Offline: your ticket keeps working."),
        "expired": _("This code has expired: go online to refresh it."),
        "move_here": _("Use on this phone"),
        "moved": _("The ticket now works on this phone."),
        "other_phone": _("This ticket is on another phone."),
        "show": _("Show QR"),
        "no_ticket": _("You have no ticket yet."),
        "no_webcrypto": _("This browser cannot sign tickets; showing pre-signed codes."),
        "error": _("Something went wrong. Try again."),
        "valid_until": _("Valid until"),
        "active": _("Valid"),
        "revoked": _("Revoked"),
        "consumed": _("Used"),
    }


@bp.get("/ticket")
def ticket_page() -> str | Response:
    """The commuter's page; anyone else is sent to log in."""
    principal = current_principal(optional=True)
    if principal is None:
        return redirect(url_for("site.login", next="/ticket"))  # type: ignore[return-value]
    if not principal.has("commuter"):
        raise Forbidden("this page is for commuters", code="forbidden_role")
    page: dict[str, Any] = service.page_data(services().db, principal.user_id)
    tickets = TicketSummarySchema(many=True)
    return render_template(
        "ticketing/ticket.html",
        principal=principal,
        boot={
            "user": principal.user_id,
            "server_time_ms": int(utcnow().timestamp() * 1000),
            "tickets": tickets.dump(page["tickets"]),
            "messages": _messages(),
        },
        **page,
    )


@bp.get("/ticket-sw.js")
def service_worker() -> Response:
    """The offline cache of the ticket page, served from the root so its scope covers /ticket."""
    response = send_from_directory(bp.static_folder or "", "sw.js", mimetype="text/javascript")
    response.headers["Service-Worker-Allowed"] = "/"
    response.headers["Cache-Control"] = "no-cache"
    return response
