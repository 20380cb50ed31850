"""HTTP adapters of the ticketing package: thin views over service functions."""

from __future__ import annotations

from flask_smorest import Blueprint

blp = Blueprint(
    "ticketing", __name__, url_prefix="/api/v1", description="Fare products, tickets, validation"
)
