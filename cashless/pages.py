"""The site's own pages: home, log in, log out (Vietnamese by default, English on request)."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, request, url_for
from flask_babel import gettext as _
from werkzeug.wrappers import Response

from core import users
from core.auth import check_csrf, current_principal, login_session, logout_session
from core.errors import Unauthorized
from core.http import services
from core.ratelimit import limiter

bp = Blueprint(
    "site",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static/site",
)

HOME_BY_ROLE = {
    "commuter": "/ticket",
    "vendor": "/vendor",
    "attendant": "/parking",
    "finance": "/finance",
    "admin": "/",
}


@bp.get("/")
def index() -> str:
    return render_template("index.html", principal=current_principal(optional=True))


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(lambda: services().settings.login_rate_limit, methods=["POST"])
def login() -> str | Response:
    error = None
    if request.method == "POST":
        check_csrf()
        try:
            user = users.authenticate(
                services().db, request.form.get("username", ""), request.form.get("password", "")
            )
        except Unauthorized:
            error = _("Wrong username or password.")
        else:
            login_session(user)
            target = request.args.get("next", "")
            if not target.startswith("/") or target.startswith("//"):
                target = next(
                    (HOME_BY_ROLE[r] for r in sorted(user.role_set) if r in HOME_BY_ROLE), "/"
                )
            return redirect(target)
    return render_template("login.html", error=error)


@bp.post("/logout")
def logout() -> Response:
    check_csrf()
    logout_session()
    return redirect(url_for("site.index"))
