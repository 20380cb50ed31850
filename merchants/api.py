"""HTTP adapters of the merchants package: thin views over service functions."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "merchants",
    __name__,
    url_prefix="/api/v1",
    description="Merchants, stalls, charges and parking",
)
