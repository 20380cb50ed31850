"""HTTP adapters of the reconciliation package: thin views over service functions."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "reconciliation",
    __name__,
    url_prefix="/api/v1",
    description="Statements, matching, resolutions and daily close",
)
