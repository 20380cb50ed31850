"""Pages speak Vietnamese by default, English on request (Flask-Babel).

Catalogues are `.po` files in the source tree; they are compiled into the instance folder at
start-up, so no binary `.mo` file is committed and no build step is needed.
"""

from __future__ import annotations

import os
from pathlib import Path

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, request
from flask_babel import Babel

from core.money import format_vnd

LANGUAGES = ("vi", "en")
DEFAULT_LANGUAGE = "vi"
LANG_COOKIE = "lang"


def select_locale() -> str:
    """`?lang=` wins, then the language cookie, then Vietnamese."""
    asked = request.args.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGUAGES else DEFAULT_LANGUAGE


def compile_catalogues(source: Path, target: Path) -> None:
    """Compile every `<lang>/LC_MESSAGES/messages.po` under `source` into `target`."""
    for po_path in source.glob("*/LC_MESSAGES/messages.po"):
        mo_path = target / po_path.relative_to(source).with_suffix(".mo")
        if mo_path.exists() and mo_path.stat().st_mtime >= po_path.stat().st_mtime:
            continue
        mo_path.parent.mkdir(parents=True, exist_ok=True)
        with po_path.open("rb") as handle:
            catalogue = read_po(handle, locale=po_path.parts[-3])
        # Several gunicorn workers may compile at once on a fresh instance: own temp file each.
        tmp = mo_path.with_suffix(f".{os.getpid()}.tmp")
        with tmp.open("wb") as handle:
            write_mo(handle, catalogue)
        tmp.replace(mo_path)


def init_i18n(app: Flask, catalogue_source: Path, instance_path: Path) -> Babel:
    target = instance_path / "translations"
    compile_catalogues(catalogue_source, target)
    app.config["BABEL_DEFAULT_LOCALE"] = DEFAULT_LANGUAGE
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(target)
    babel = Babel(app, locale_selector=select_locale)
    app.jinja_env.filters["vnd"] = format_vnd

    @app.after_request
    def _remember_language(response):  # type: ignore[no-untyped-def]
        asked = request.args.get("lang")
        if asked in LANGUAGES:
            response.set_cookie(LANG_COOKIE, asked, max_age=365 * 86400, samesite="Lax")
        return response

    @app.context_processor
    def _language() -> dict[str, object]:
        return {"current_language": select_locale(), "languages": LANGUAGES}

    return babel
